"""Record codec kernels: validate a body of records at the append boundary, and index its records.

This module is the compiled half of the events layer (argus.events.codec): it imports nothing from
Argus but argus.errors, so the log may use it without reaching up into the reducers."""

import numpy as np

from libc.math cimport isfinite
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from argus.kernels.records cimport (
    RecordHeader, TradePayload, QuotePayload, BarPayload, FillPayload, OptionChainHead, OptionRow,
    ChunkHeader, HEADER_SIZE, NO_INSTRUMENT, T_MAX, T_INSTRUMENT_DEFINED, T_TRADE, T_QUOTE, T_BAR,
    T_FILL, T_CLOCK, T_OPTION_CHAIN_SNAPSHOT, payload_of,
)

from argus.errors import EventValidationError

# Highest schema version each type id accepts (index = type id). Bump an entry, never lower it.
cdef uint8_t[16] MAX_VERSION = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]

_TYPE_NAMES = ("UNSPECIFIED", "INSTRUMENT_DEFINED", "TRADE", "QUOTE", "BAR", "OPTION_CHAIN_SNAPSHOT",
               "EXTERNAL_METRIC", "CLOCK", "SIGNAL", "ORDER_SUBMITTED", "ORDER_ACCEPTED", "ORDER_REJECTED",
               "ORDER_CANCELED", "FILL", "CONFIG_RECORDED", "ANNOTATION")


cdef struct Failure:
    # Where validation stopped: the record index, the field, its value and the rule it broke.
    int64_t index
    int type
    const char* field
    const char* rule
    double value
    int64_t ivalue
    bint is_int


cdef inline bint fail_f(Failure* f, const char* field, double value, const char* rule) noexcept nogil:
    f.field = field
    f.value = value
    f.rule = rule
    f.is_int = False
    return False


cdef inline bint fail_i(Failure* f, const char* field, int64_t value, const char* rule) noexcept nogil:
    f.field = field
    f.ivalue = value
    f.rule = rule
    f.is_int = True
    return False


cdef inline bint positive(double x) noexcept nogil:
    # NaN and infinities fail every comparison-based rule here.
    return isfinite(x) and x > 0


cdef inline bint non_negative(double x) noexcept nogil:
    return isfinite(x) and x >= 0


cdef bint check_trade(const TradePayload* p, Failure* f) noexcept nogil:
    if not positive(p.price):
        return fail_f(f, b"price", p.price, b"finite and > 0")
    if not positive(p.size):
        return fail_f(f, b"size", p.size, b"finite and > 0")
    if p.aggressor > 2:
        return fail_i(f, b"aggressor", p.aggressor, b"an AggressorSide (0, 1 or 2)")
    return True


cdef bint check_quote(const QuotePayload* p, Failure* f) noexcept nogil:
    if not positive(p.bid):
        return fail_f(f, b"bid", p.bid, b"finite and > 0")
    if not positive(p.ask):
        return fail_f(f, b"ask", p.ask, b"finite and > 0")
    if p.ask < p.bid:
        return fail_f(f, b"ask", p.ask, b">= bid")
    if not non_negative(p.bid_size):
        return fail_f(f, b"bid_size", p.bid_size, b"finite and >= 0")
    if not non_negative(p.ask_size):
        return fail_f(f, b"ask_size", p.ask_size, b"finite and >= 0")
    return True


cdef bint check_bar(const BarPayload* p, Failure* f) noexcept nogil:
    if not positive(p.open):
        return fail_f(f, b"open", p.open, b"finite and > 0")
    if not positive(p.high):
        return fail_f(f, b"high", p.high, b"finite and > 0")
    if not positive(p.low):
        return fail_f(f, b"low", p.low, b"finite and > 0")
    if not positive(p.close):
        return fail_f(f, b"close", p.close, b"finite and > 0")
    if p.high < p.low or p.high < p.open or p.high < p.close:
        return fail_f(f, b"high", p.high, b">= open, low and close")
    if p.low > p.open or p.low > p.close:
        return fail_f(f, b"low", p.low, b"<= open and close")
    if not non_negative(p.volume):
        return fail_f(f, b"volume", p.volume, b"finite and >= 0")
    if p.interval_ns <= 0:
        return fail_i(f, b"interval_ns", p.interval_ns, b"> 0")
    return True


cdef bint check_fill(const FillPayload* p, Failure* f) noexcept nogil:
    if not positive(p.price):
        return fail_f(f, b"price", p.price, b"finite and > 0")
    if not isfinite(p.quantity) or p.quantity == 0:
        return fail_f(f, b"quantity", p.quantity, b"finite and != 0")
    if not isfinite(p.commission):
        return fail_f(f, b"commission", p.commission, b"finite")
    if p.liquidity > 2:
        return fail_i(f, b"liquidity", p.liquidity, b"a Liquidity (0, 1 or 2)")
    return True


cdef bint check_chain(const RecordHeader* h, Failure* f) noexcept nogil:
    cdef const OptionChainHead* head = <const OptionChainHead*>payload_of(h)
    cdef const OptionRow* rows
    cdef const OptionRow* r
    cdef uint32_t i
    if h.payload_len < sizeof(OptionChainHead):
        return fail_i(f, b"payload_len", h.payload_len, b">= the option chain head size")
    if h.payload_len != sizeof(OptionChainHead) + <uint64_t>head.n_rows * sizeof(OptionRow):
        return fail_i(f, b"n_rows", head.n_rows, b"matches payload_len")
    if not (positive(head.underlying_price) or head.underlying_price != head.underlying_price):
        return fail_f(f, b"underlying_price", head.underlying_price, b"> 0 or NaN (unknown)")
    rows = <const OptionRow*>((<const uint8_t*>head) + sizeof(OptionChainHead))
    for i in range(head.n_rows):
        r = rows + i
        if r.expiry_ns <= 0:
            return fail_i(f, b"rows.expiry_ns", r.expiry_ns, b"> 0")
        if not positive(r.strike):
            return fail_f(f, b"rows.strike", r.strike, b"finite and > 0")
        if r.right != 1 and r.right != 2:
            return fail_i(f, b"rows.right", r.right, b"CALL (1) or PUT (2)")
        if not non_negative(r.bid):
            return fail_f(f, b"rows.bid", r.bid, b"finite and >= 0")
        if not non_negative(r.ask):
            return fail_f(f, b"rows.ask", r.ask, b"finite and >= 0")
        if r.ask < r.bid:
            return fail_f(f, b"rows.ask", r.ask, b">= bid")
        if not (non_negative(r.open_interest) or r.open_interest != r.open_interest):
            return fail_f(f, b"rows.open_interest", r.open_interest, b"finite and >= 0, or NaN (unknown)")
        if not (non_negative(r.bid_size) and non_negative(r.ask_size)):
            return fail_f(f, b"rows.bid_size/ask_size", r.bid_size if not non_negative(r.bid_size) else r.ask_size,
                          b"finite and >= 0")
    return True


cdef inline int64_t fixed_payload_size(int t) noexcept nogil:
    if t == T_TRADE:
        return sizeof(TradePayload)
    if t == T_QUOTE:
        return sizeof(QuotePayload)
    if t == T_BAR:
        return sizeof(BarPayload)
    if t == T_FILL:
        return sizeof(FillPayload)
    if t == T_CLOCK:
        return 0
    return -1


cdef bint check_record(const RecordHeader* h, uint32_t* n_instruments, Failure* f) noexcept nogil:
    cdef int t = h.type
    cdef int64_t fixed
    if t == 0 or t > T_MAX:
        return fail_i(f, b"type", t, b"a known EventType id (1..15)")
    f.type = t
    if h.version == 0 or h.version > MAX_VERSION[t]:
        return fail_i(f, b"version", h.version, b"a schema version this build reads")
    if h.flags != 0:
        return fail_i(f, b"flags", h.flags, b"0 (reserved)")
    if h.payload_len > h.length - HEADER_SIZE or h.length - HEADER_SIZE - h.payload_len >= 8:
        return fail_i(f, b"payload_len", h.payload_len, b"fits the record length with < 8 bytes of padding")
    if h.ts_event <= 0:
        return fail_i(f, b"ts_event", h.ts_event, b"> 0 (ns since the Unix epoch)")
    if h.ts_recv <= 0:
        return fail_i(f, b"ts_recv", h.ts_recv, b"> 0 (ns since the Unix epoch)")
    # Instruments are dense: a definition takes the next id; every other reference is to an earlier one.
    if t == T_INSTRUMENT_DEFINED:
        if h.instrument_id != n_instruments[0]:
            return fail_i(f, b"instrument_id", h.instrument_id, b"the next dense instrument id")
        n_instruments[0] += 1
    elif h.instrument_id != NO_INSTRUMENT and h.instrument_id >= n_instruments[0]:
        return fail_i(f, b"instrument_id", h.instrument_id, b"an instrument defined earlier in the log")
    elif h.instrument_id == NO_INSTRUMENT and (t == T_TRADE or t == T_QUOTE or t == T_BAR
                                               or t == T_FILL or t == T_OPTION_CHAIN_SNAPSHOT):
        return fail_i(f, b"instrument_id", h.instrument_id, b"set for market data and fills")
    fixed = fixed_payload_size(t)
    if fixed >= 0 and h.payload_len != fixed:
        return fail_i(f, b"payload_len", h.payload_len, b"the fixed payload size of this type")
    if t == T_TRADE:
        return check_trade(<const TradePayload*>payload_of(h), f)
    if t == T_QUOTE:
        return check_quote(<const QuotePayload*>payload_of(h), f)
    if t == T_BAR:
        return check_bar(<const BarPayload*>payload_of(h), f)
    if t == T_FILL:
        return check_fill(<const FillPayload*>payload_of(h), f)
    if t == T_OPTION_CHAIN_SNAPSHOT:
        return check_chain(h, f)
    return True


def validate_body(const uint8_t[::1] body, uint32_t n_instruments):
    """Check every record of a body against the layout rules.

    Returns (count, n_instruments_after, min_ts_recv, max_ts_recv, variable) where variable holds the
    byte positions of the protobuf-payload records (parsed and checked by the Python codec). Raises
    EventValidationError naming the record, field, value and rule on the first bad record."""
    cdef Py_ssize_t n = body.shape[0]
    cdef Py_ssize_t pos = 0
    cdef int64_t count = 0
    cdef int64_t min_recv = 0x7FFFFFFFFFFFFFFF
    cdef int64_t max_recv = -0x7FFFFFFFFFFFFFFF
    cdef const uint8_t* base = &body[0] if n > 0 else NULL
    cdef const RecordHeader* h
    cdef Failure f
    cdef bint ok = True
    cdef int t
    cdef list variable = []
    f.index = -1
    f.type = 0
    with nogil:
        while pos < n:
            f.index = count
            if pos + HEADER_SIZE > n:
                ok = fail_i(&f, b"length", n - pos, b"a whole 32-byte header")
                break
            h = <const RecordHeader*>(base + pos)
            if h.length < HEADER_SIZE or (h.length & 7) != 0 or pos + h.length > n:
                ok = fail_i(&f, b"length", h.length, b">= 32, a multiple of 8 and within the body")
                break
            if not check_record(h, &n_instruments, &f):
                ok = False
                break
            t = h.type
            if fixed_payload_size(t) < 0 and t != T_OPTION_CHAIN_SNAPSHOT:
                with gil:
                    variable.append(pos)
            if h.ts_recv < min_recv:
                min_recv = h.ts_recv
            if h.ts_recv > max_recv:
                max_recv = h.ts_recv
            pos += h.length
            count += 1
    if not ok:
        value = f.ivalue if f.is_int else f.value
        raise EventValidationError(
            index=f.index, event_type=_TYPE_NAMES[f.type] if f.type <= T_MAX else str(f.type),
            field=f.field.decode(), value=value, rule=f.rule.decode())
    if count == 0:
        min_recv = max_recv = 0
    return count, n_instruments, min_recv, max_recv, np.asarray(variable, dtype=np.int64)


def index_records(const uint8_t[::1] body):
    """Byte positions of every record in a (validated) body, as an int64 array."""
    cdef Py_ssize_t n = body.shape[0]
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t count = 0
    cdef const RecordHeader* h
    while pos + HEADER_SIZE <= n:
        h = <const RecordHeader*>(&body[pos])
        if h.length < HEADER_SIZE:
            break
        pos += h.length
        count += 1
    out = np.empty(count, dtype=np.int64)
    cdef int64_t[::1] o = out
    cdef Py_ssize_t i = 0
    pos = 0
    with nogil:
        while i < count:
            o[i] = pos
            pos += (<const RecordHeader*>(&body[pos])).length
            i += 1
    return out


def layout_info():
    """Size and field offsets of every C struct, for the layout test against argus.events.layout."""
    cdef RecordHeader h
    cdef TradePayload tr
    cdef QuotePayload q
    cdef BarPayload b
    cdef FillPayload fl
    cdef OptionChainHead oh
    cdef OptionRow r
    cdef ChunkHeader c

    def off(size_t base, size_t field):
        return field - base

    return {
        "HEADER": (sizeof(RecordHeader), {
            "length": off(<size_t>&h, <size_t>&h.length), "type": off(<size_t>&h, <size_t>&h.type),
            "version": off(<size_t>&h, <size_t>&h.version), "flags": off(<size_t>&h, <size_t>&h.flags),
            "instrument_id": off(<size_t>&h, <size_t>&h.instrument_id),
            "payload_len": off(<size_t>&h, <size_t>&h.payload_len),
            "ts_event": off(<size_t>&h, <size_t>&h.ts_event), "ts_recv": off(<size_t>&h, <size_t>&h.ts_recv)}),
        "TRADE": (sizeof(TradePayload), {
            "price": off(<size_t>&tr, <size_t>&tr.price), "size": off(<size_t>&tr, <size_t>&tr.size),
            "trade_id": off(<size_t>&tr, <size_t>&tr.trade_id),
            "aggressor": off(<size_t>&tr, <size_t>&tr.aggressor),
            "_reserved": off(<size_t>&tr, <size_t>&tr._reserved)}),
        "QUOTE": (sizeof(QuotePayload), {
            "bid": off(<size_t>&q, <size_t>&q.bid), "ask": off(<size_t>&q, <size_t>&q.ask),
            "bid_size": off(<size_t>&q, <size_t>&q.bid_size), "ask_size": off(<size_t>&q, <size_t>&q.ask_size)}),
        "BAR": (sizeof(BarPayload), {
            "open": off(<size_t>&b, <size_t>&b.open), "high": off(<size_t>&b, <size_t>&b.high),
            "low": off(<size_t>&b, <size_t>&b.low), "close": off(<size_t>&b, <size_t>&b.close),
            "volume": off(<size_t>&b, <size_t>&b.volume), "interval_ns": off(<size_t>&b, <size_t>&b.interval_ns),
            "trade_count": off(<size_t>&b, <size_t>&b.trade_count)}),
        "FILL": (sizeof(FillPayload), {
            "price": off(<size_t>&fl, <size_t>&fl.price), "quantity": off(<size_t>&fl, <size_t>&fl.quantity),
            "commission": off(<size_t>&fl, <size_t>&fl.commission),
            "order_id": off(<size_t>&fl, <size_t>&fl.order_id), "fill_id": off(<size_t>&fl, <size_t>&fl.fill_id),
            "position_id": off(<size_t>&fl, <size_t>&fl.position_id),
            "account_id": off(<size_t>&fl, <size_t>&fl.account_id),
            "liquidity": off(<size_t>&fl, <size_t>&fl.liquidity)}),
        "OPTION_CHAIN_HEAD": (sizeof(OptionChainHead), {
            "underlying_price": off(<size_t>&oh, <size_t>&oh.underlying_price),
            "n_rows": off(<size_t>&oh, <size_t>&oh.n_rows), "source": off(<size_t>&oh, <size_t>&oh.source)}),
        "OPTION_ROW": (sizeof(OptionRow), {
            "expiry_ns": off(<size_t>&r, <size_t>&r.expiry_ns), "strike": off(<size_t>&r, <size_t>&r.strike),
            "bid": off(<size_t>&r, <size_t>&r.bid), "ask": off(<size_t>&r, <size_t>&r.ask),
            "bid_size": off(<size_t>&r, <size_t>&r.bid_size), "ask_size": off(<size_t>&r, <size_t>&r.ask_size),
            "open_interest": off(<size_t>&r, <size_t>&r.open_interest), "iv": off(<size_t>&r, <size_t>&r.iv),
            "delta": off(<size_t>&r, <size_t>&r.delta), "gamma": off(<size_t>&r, <size_t>&r.gamma),
            "vega": off(<size_t>&r, <size_t>&r.vega), "theta": off(<size_t>&r, <size_t>&r.theta),
            "right": off(<size_t>&r, <size_t>&r.right), "source": off(<size_t>&r, <size_t>&r.source),
            "contract_id": off(<size_t>&r, <size_t>&r.contract_id)}),
        "CHUNK_HEADER": (sizeof(ChunkHeader), {
            "magic": off(<size_t>&c, <size_t>&c.magic), "format_version": off(<size_t>&c, <size_t>&c.format_version),
            "flags": off(<size_t>&c, <size_t>&c.flags), "count": off(<size_t>&c, <size_t>&c.count),
            "body_len": off(<size_t>&c, <size_t>&c.body_len), "first_offset": off(<size_t>&c, <size_t>&c.first_offset),
            "min_ts_recv": off(<size_t>&c, <size_t>&c.min_ts_recv),
            "max_ts_recv": off(<size_t>&c, <size_t>&c.max_ts_recv),
            "body_checksum": off(<size_t>&c, <size_t>&c.body_checksum),
            "prev_hash": off(<size_t>&c, <size_t>&c.prev_hash), "_reserved": off(<size_t>&c, <size_t>&c._reserved)}),
    }


def ts_recv_range(const uint8_t[::1] body):
    """(min, max) ts_recv over the records of a (validated) body; (0, 0) when it is empty."""
    cdef Py_ssize_t n = body.shape[0]
    cdef Py_ssize_t pos = 0
    cdef int64_t lo = 0x7FFFFFFFFFFFFFFF
    cdef int64_t hi = -0x7FFFFFFFFFFFFFFF
    cdef const RecordHeader* h
    with nogil:
        while pos + HEADER_SIZE <= n:
            h = <const RecordHeader*>(&body[pos])
            if h.length < HEADER_SIZE:
                break
            if h.ts_recv < lo:
                lo = h.ts_recv
            if h.ts_recv > hi:
                hi = h.ts_recv
            pos += h.length
    if lo > hi:
        return 0, 0
    return lo, hi


def record_positions(const uint8_t[::1] body, int event_type):
    """Byte positions of the records of one type in a (validated) body, as an int64 array."""
    cdef Py_ssize_t n = body.shape[0]
    cdef Py_ssize_t pos = 0
    cdef const RecordHeader* h
    found = []
    while pos + HEADER_SIZE <= n:
        h = <const RecordHeader*>(&body[pos])
        if h.length < HEADER_SIZE:
            break
        if h.type == event_type:
            found.append(pos)
        pos += h.length
    return np.asarray(found, dtype=np.int64)
