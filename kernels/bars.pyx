"""Bars: time bars, exchange-session daily bars, volume and dollar bars from trades, and roll-ups of
provider bars. (The BarReducer is being written; this file holds the shared contract.)"""

from libc.stdint cimport int64_t, uint32_t, uint64_t
from argus.kernels.reducer cimport Reducer
from argus.kernels.bars cimport BarOut

# The numpy description of BarOut (one output row); tests/kernels check it against the struct.
BAR_FIELDS = (
    ("offset", "<u8"),
    ("instrument_id", "<u4"),
    ("spec", "<u4"),
    ("ts_start", "<i8"),
    ("ts_end", "<i8"),
    ("session", "<i8"),
    ("first_ts", "<i8"),
    ("last_ts", "<i8"),
    ("open", "<f8"),
    ("high", "<f8"),
    ("low", "<f8"),
    ("close", "<f8"),
    ("volume", "<f8"),
    ("vwap", "<f8"),
    ("trade_count", "<u8"),
    ("flags", "<u4"),
    ("_reserved", "<u4"),
)


cdef class BarListener(Reducer):
    """Base of reducers fed with closed bars (see bars.pxd)."""

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        pass


def bar_layout_info():
    """Size and field offsets of BarOut, for the layout test against BAR_FIELDS."""
    cdef BarOut b
    cdef size_t base = <size_t>&b
    return sizeof(BarOut), {
        "offset": <size_t>&b.offset - base, "instrument_id": <size_t>&b.instrument_id - base,
        "spec": <size_t>&b.spec - base, "ts_start": <size_t>&b.ts_start - base, "ts_end": <size_t>&b.ts_end - base,
        "session": <size_t>&b.session - base, "first_ts": <size_t>&b.first_ts - base,
        "last_ts": <size_t>&b.last_ts - base, "open": <size_t>&b.open - base, "high": <size_t>&b.high - base,
        "low": <size_t>&b.low - base, "close": <size_t>&b.close - base, "volume": <size_t>&b.volume - base,
        "vwap": <size_t>&b.vwap - base, "trade_count": <size_t>&b.trade_count - base,
        "flags": <size_t>&b.flags - base, "_reserved": <size_t>&b._reserved - base,
    }
