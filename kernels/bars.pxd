# Bars from trades (time, exchange-session daily, volume and dollar bars) and roll-ups of provider bars.
# The contract shared with the reducers that consume closed bars (indicators): BarOut and BarListener.
from libc.stdint cimport int64_t, uint32_t, uint64_t
from argus.kernels.reducer cimport Reducer

cdef enum BarKind:
    BAR_TIME = 1      # fixed interval_ns, aligned to origin_ns (multiples of seconds, minutes, hours, days)
    BAR_SESSION = 2   # one bar per exchange session (regular hours by default), from a session table
    BAR_VOLUME = 3    # closes when the traded volume reaches threshold
    BAR_DOLLAR = 4    # closes when the traded notional reaches threshold

cdef enum BarSource:
    SOURCE_TRADES = 0       # built from Trade events
    SOURCE_PROVIDER = 1     # rolled up from provider Bar events (e.g. 1m -> 5m, 1h, 1d)

cdef struct BarSpec:
    int kind                # BarKind
    int source              # BarSource
    int64_t interval_ns     # BAR_TIME
    int64_t origin_ns       # BAR_TIME alignment origin (bars start at origin + k * interval)
    double threshold        # BAR_VOLUME / BAR_DOLLAR

# One closed bar (an output row). Declared for numpy as BAR_FIELDS in bars.pyx; a test checks both.
cdef struct BarOut:
    uint64_t offset         # log offset of the event whose processing closed the bar
    uint32_t instrument_id
    uint32_t spec           # index of the BarSpec in the reducer's configuration
    int64_t ts_start        # interval start (time and session bars); first trade ts_event (volume, dollar)
    int64_t ts_end          # interval end, exclusive (time and session bars); last trade ts_event (volume, dollar)
    int64_t session         # open of the exchange session holding the bar, ns UTC; 0 when unknown
    int64_t first_ts        # ts_event of the first trade (or provider bar end) in the bar
    int64_t last_ts         # ts_event of the last trade (or provider bar end) in the bar
    double open
    double high
    double low
    double close
    double volume
    double vwap             # sum(price * size) / volume (for roll-ups: volume-weighted provider closes)
    uint64_t trade_count
    uint32_t flags          # data-quality flags, reserved (0) until the regimes issue
    uint32_t _reserved

# A reducer fed with closed bars instead of log records (indicators). The bar reducer calls
# on_bar_closed for every bar it emits, in emission order, inside the same dispatch, so a listener
# sees exactly what the bar output buffer receives, live or in replay.
cdef class BarListener(Reducer):
    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil
