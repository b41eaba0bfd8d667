# The chunk walker: the seam that reducers plug into. walk() iterates the records of a chunk body by
# pointer and dispatches each to one typed callback; a reducer subclasses ChunkWalker and overrides
# the callbacks it needs. The live path (one record) and the replay path (a chunk) both go through
# dispatch(), so they cannot drift.
from libc.stdint cimport int64_t, uint8_t, uint64_t
from argus.kernels.records cimport (
    RecordHeader, TradePayload, QuotePayload, BarPayload, FillPayload, OptionChainHead, OptionRow,
)

cdef class ChunkWalker:
    cdef void on_trade(self, uint64_t offset, const RecordHeader* h, const TradePayload* p) noexcept nogil
    cdef void on_quote(self, uint64_t offset, const RecordHeader* h, const QuotePayload* p) noexcept nogil
    cdef void on_bar(self, uint64_t offset, const RecordHeader* h, const BarPayload* p) noexcept nogil
    cdef void on_fill(self, uint64_t offset, const RecordHeader* h, const FillPayload* p) noexcept nogil
    cdef void on_clock(self, uint64_t offset, const RecordHeader* h) noexcept nogil
    cdef void on_option_chain(self, uint64_t offset, const RecordHeader* h, const OptionChainHead* head,
                              const OptionRow* rows) noexcept nogil
    # Variable (protobuf-payload) events: InstrumentDefined, ExternalMetric, Signal, Order*, Config, Annotation.
    cdef void on_other(self, uint64_t offset, const RecordHeader* h) noexcept nogil
    cdef void dispatch(self, uint64_t offset, const RecordHeader* h) noexcept nogil
    cdef uint64_t walk_ptr(self, const uint8_t* body, Py_ssize_t body_len, uint64_t first_offset,
                           uint64_t start, uint64_t stop) noexcept nogil


cdef class ScanCounter(ChunkWalker):
    cdef public uint64_t events
    cdef public uint64_t trades
    cdef public uint64_t quotes
    cdef public uint64_t bars
    cdef public uint64_t others
    cdef public double notional
    cdef public int64_t last_ts_recv
