"""Chunk walker: iterates a chunk's records by pointer and dispatches them by type, without creating a
Python object per record. The body was validated at append and its checksum verified at read, so the
walk trusts each record's length (a record of length 0 would stop the walk rather than loop)."""

from libc.stdint cimport int64_t, uint8_t, uint64_t
from argus.kernels.records cimport (
    RecordHeader, TradePayload, QuotePayload, BarPayload, FillPayload, OptionChainHead, OptionRow,
    HEADER_SIZE, T_TRADE, T_QUOTE, T_BAR, T_FILL, T_CLOCK, T_OPTION_CHAIN_SNAPSHOT, payload_of,
)


cdef class ChunkWalker:
    """Base class of everything that consumes records; the default callbacks ignore their record."""

    cdef void on_trade(self, uint64_t offset, const RecordHeader* h, const TradePayload* p) noexcept nogil:
        pass

    cdef void on_quote(self, uint64_t offset, const RecordHeader* h, const QuotePayload* p) noexcept nogil:
        pass

    cdef void on_bar(self, uint64_t offset, const RecordHeader* h, const BarPayload* p) noexcept nogil:
        pass

    cdef void on_fill(self, uint64_t offset, const RecordHeader* h, const FillPayload* p) noexcept nogil:
        pass

    cdef void on_clock(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        pass

    cdef void on_option_chain(self, uint64_t offset, const RecordHeader* h, const OptionChainHead* head,
                              const OptionRow* rows) noexcept nogil:
        pass

    cdef void on_other(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        pass

    cdef void dispatch(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        cdef const uint8_t* p = <const uint8_t*>payload_of(h)
        cdef int t = h.type
        if t == T_QUOTE:
            self.on_quote(offset, h, <const QuotePayload*>p)
        elif t == T_TRADE:
            self.on_trade(offset, h, <const TradePayload*>p)
        elif t == T_BAR:
            self.on_bar(offset, h, <const BarPayload*>p)
        elif t == T_CLOCK:
            self.on_clock(offset, h)
        elif t == T_FILL:
            self.on_fill(offset, h, <const FillPayload*>p)
        elif t == T_OPTION_CHAIN_SNAPSHOT:
            self.on_option_chain(offset, h, <const OptionChainHead*>p,
                                 <const OptionRow*>(p + sizeof(OptionChainHead)))
        else:
            self.on_other(offset, h)

    cdef uint64_t walk_ptr(self, const uint8_t* body, Py_ssize_t body_len, uint64_t first_offset,
                           uint64_t start, uint64_t stop) noexcept nogil:
        """Dispatch records with offsets in [start, stop); returns the offset after the last record seen."""
        cdef Py_ssize_t pos = 0
        cdef uint64_t offset = first_offset
        cdef const RecordHeader* h
        while pos + HEADER_SIZE <= body_len and offset < stop:
            h = <const RecordHeader*>(body + pos)
            if h.length < HEADER_SIZE:
                break
            if offset >= start:
                self.dispatch(offset, h)
            pos += h.length
            offset += 1
        return offset

    def walk(self, const uint8_t[::1] body, uint64_t first_offset, uint64_t start=0,
             uint64_t stop=0xFFFFFFFFFFFFFFFF):
        """Dispatch the records of a chunk body whose offsets lie in [start, stop).

        Returns the offset after the last record walked."""
        cdef uint64_t end = first_offset
        if body.shape[0] == 0:
            return end
        with nogil:
            end = self.walk_ptr(&body[0], body.shape[0], first_offset, start, stop)
        return end


cdef class ScanCounter(ChunkWalker):
    """Counts records by kind and sums trade notional: the benchmark's and `log info`'s scan."""

    cdef void on_trade(self, uint64_t offset, const RecordHeader* h, const TradePayload* p) noexcept nogil:
        self.events += 1
        self.trades += 1
        self.notional += p.price * p.size
        self.last_ts_recv = h.ts_recv

    cdef void on_quote(self, uint64_t offset, const RecordHeader* h, const QuotePayload* p) noexcept nogil:
        self.events += 1
        self.quotes += 1
        self.last_ts_recv = h.ts_recv

    cdef void on_bar(self, uint64_t offset, const RecordHeader* h, const BarPayload* p) noexcept nogil:
        self.events += 1
        self.bars += 1
        self.last_ts_recv = h.ts_recv

    cdef void on_fill(self, uint64_t offset, const RecordHeader* h, const FillPayload* p) noexcept nogil:
        self.events += 1
        self.others += 1
        self.last_ts_recv = h.ts_recv

    cdef void on_clock(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        self.events += 1
        self.others += 1
        self.last_ts_recv = h.ts_recv

    cdef void on_option_chain(self, uint64_t offset, const RecordHeader* h, const OptionChainHead* head,
                              const OptionRow* rows) noexcept nogil:
        self.events += 1
        self.others += 1
        self.last_ts_recv = h.ts_recv

    cdef void on_other(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        self.events += 1
        self.others += 1
        self.last_ts_recv = h.ts_recv
