# Bars from trades (time, exchange-session daily, volume and dollar bars) and roll-ups of provider bars.
# The contract shared with the reducers that consume closed bars (indicators): BarOut and BarListener.
from libc.stdint cimport int64_t, uint32_t, uint64_t
from argus.kernels.reducer cimport Reducer
from argus.kernels.outputs cimport OutputBuffer

cdef enum BarKind:
    BAR_TIME = 1      # fixed interval_ns, aligned to origin_ns (multiples of seconds, minutes, hours, days)
    BAR_SESSION = 2   # one bar per exchange session (regular hours by default), from a session table
    BAR_VOLUME = 3    # closes when the traded volume reaches threshold
    BAR_DOLLAR = 4    # closes when the traded notional reaches threshold

# Data-quality flags carried in BarOut.flags (a bar's flags are the OR of what its data showed).
cdef enum BarFlag:
    FLAG_GAP = 1                 # bars are missing between the previous bar and this one, in the same session
    FLAG_LOCKED_QUOTE = 2        # a quote of the instrument had ask == bid during the bar (crossed ones are refused at the log)
    FLAG_STALE_QUOTE = 4         # a trade arrived when the instrument's last quote was older than the stale threshold
    FLAG_OUTLIER = 8             # the bar's close-to-close return is a robust-z outlier against the trailing returns
    FLAG_RECV_BEFORE_EVENT = 16  # a trade with ts_recv < ts_event
    FLAG_OUT_OF_ORDER = 32       # a trade whose ts_event is earlier than the instrument's previous trade
    FLAG_LATE_DATA = 64          # trades for this bar's instrument and spec arrived after their bar had closed

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

# A bar listener whose state is one slot per (instrument, bar spec): dstride doubles and istride int64s,
# in two flat slot-major arrays grown together. The indicator, regime, BOCPD and HMM reducers are this.
cdef class SlottedListener(BarListener):
    cdef readonly uint32_t n_bar_specs  # bar specs per instrument (BarOut.spec < n_bar_specs)
    cdef Py_ssize_t dstride             # doubles of state per (instrument, bar spec) slot
    cdef Py_ssize_t istride             # int64s of state per slot
    cdef uint32_t cap                   # instruments the state arrays hold (>= n_instruments)
    cdef double* dstate                 # cap * n_bar_specs * dstride doubles, slot-major
    cdef int64_t* istate                # cap * n_bar_specs * istride int64s, slot-major
    cdef bint bad_spec                  # a bar named a spec >= n_bar_specs (self.failed is set too)
    cdef uint32_t bad_spec_value

    cdef int grow(self, uint32_t n) noexcept nogil
    cdef int slot_of(self, const BarOut* bar, double** d, int64_t** s) noexcept nogil

# Hands every closed bar to up to 8 listeners, in order (typed fields: no reference counting, and so no
# GIL, on the hot path). Only the listeners are reducers with state; the fan-out itself has none.
cdef class BarFanout(BarListener):
    cdef BarListener l0, l1, l2, l3, l4, l5, l6, l7
    cdef int n
    cdef readonly tuple listeners


# -- the bar reducer (bars.pyx) ------------------------------------------------------------------

cdef enum BarStateFlags:
    STATE_OPEN = 1        # a bar is open (has at least one trade or provider bar)
    STATE_FLOORED = 2     # `floor` is set: data earlier than it is late
    STATE_FRESH = 4       # the open bar has no data yet: the next trade (provider bar) sets open/high/low

# The open bar of one (instrument, spec), and what the reducer remembers between bars. 120 bytes with no
# padding, zeroed when allocated, so its raw bytes (the snapshot) are deterministic.
cdef struct BarState:
    int64_t ts_start        # as BarOut.ts_start (bucket/session start, or first trade ts for volume/dollar)
    int64_t ts_end          # as BarOut.ts_end (bucket/session end, exclusive, or last trade ts)
    int64_t session         # as BarOut.session
    int64_t first_ts        # as BarOut.first_ts
    int64_t last_ts         # as BarOut.last_ts
    int64_t floor           # earliest acceptable data time: open bar's start, else last closed bar's end
    int64_t session_index   # index of the last session looked up for this state (search hint)
    double open
    double high
    double low
    double close
    double volume
    double pv               # sum(price * size); for roll-ups sum(close * volume)
    uint64_t trade_count
    uint32_t flags          # BarStateFlags
    uint32_t quality        # BarFlag bits seen so far in the open bar (copied to BarOut.flags)

# Per-spec counters of data that went into no bar (part of the snapshot).
cdef struct SpecCounters:
    uint64_t late_count     # trades (provider bars for roll-ups) older than the open or last closed bar
    double late_volume      # their volume
    uint64_t outside_count  # trades (provider bars) outside every session, for session specs
    double outside_volume   # their volume

# Data-quality memory of one instrument (all specs). 24 bytes, no padding.
cdef enum InstrQualityBits:
    IQ_HAS_TRADE = 1
    IQ_HAS_QUOTE = 2

cdef struct InstrQuality:
    int64_t last_trade_ts   # ts_event of the instrument's previous trade
    int64_t last_quote_recv # ts_recv of the instrument's last quote
    uint32_t bits           # InstrQualityBits
    uint32_t _reserved

# Data-quality memory of one (instrument, spec) between bars (FLAG_GAP, FLAG_OUTLIER). 40 bytes, no padding.
cdef struct SpecQuality:
    int64_t prev_session    # session of the last closed bar
    double prev_close       # close of the last closed bar (valid when has_close)
    int64_t n_returns       # close-to-close log returns pushed into the ring so far
    int64_t has_close       # 1 once a bar of this state closed
    int64_t _reserved

cdef class BarReducer(Reducer):
    cdef InstrQuality* iquality     # n_instruments entries, grown in grow()
    cdef SpecQuality* squality      # like states: squality[iid * n_specs + spec]
    cdef double* returns            # ring of outlier_window returns per (iid, spec)
    cdef double* sorted_returns     # the same windows kept sorted (derived: rebuilt on restore, not snapshotted)
    cdef int64_t stale_quote_ns
    cdef double outlier_z
    cdef Py_ssize_t outlier_window
    cdef readonly dict quality      # the normalized quality settings
    cdef BarSpec* specs             # n_specs specs, malloc'ed
    cdef Py_ssize_t n_specs
    cdef BarState* states           # states[iid * n_specs + spec], calloc'ed/realloc'ed in grow()
    cdef Py_ssize_t state_cap       # instruments the states array has room for
    cdef SpecCounters* counters     # n_specs counters
    cdef int64_t* session_open      # n_sessions opens, sorted
    cdef int64_t* session_close     # n_sessions closes (exclusive)
    cdef Py_ssize_t n_sessions
    cdef readonly OutputBuffer out  # output "bars": one BAR_FIELDS row per closed bar
    cdef readonly BarListener listener  # fed every closed bar, or None
    cdef bint has_listener
    cdef readonly tuple spec_dicts  # the normalized specs, for configuration hashing and display
    cdef readonly object sessions   # the (n, 2) int64 session table, or None

    cdef void close_bar(self, BarState* st, uint32_t iid, uint32_t spec, uint64_t offset) noexcept nogil
    cdef void open_bar(self, BarState* st, const BarSpec* sp, int64_t start, int64_t end, int64_t key,
                       Py_ssize_t sidx) noexcept nogil
    cdef bint bucket_of(self, BarState* st, const BarSpec* sp, int64_t ts, int64_t* start, int64_t* end,
                        Py_ssize_t* sidx) noexcept nogil
    cdef void close_due(self, uint32_t iid, int64_t ts, uint64_t offset) noexcept nogil
