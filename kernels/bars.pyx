"""Bars: time bars, exchange-session bars, volume and dollar bars from trades, and roll-ups of provider
bars (BarReducer), plus the contract shared with the reducers fed with closed bars (bars.pxd).

Every rule below reads event fields only (ts_event, prices, sizes), never the wall clock, and the live
path (apply_record) and the replay path (apply_chunk) run the same callbacks, so both give the same
bytes. State is one BarState per (instrument, spec) in a single C array (index iid * n_specs + spec).

Time bars (kind "time", source "trades"). A trade belongs to the bucket
floor((ts_event - origin_ns) / interval_ns) (floor division, correct for times before the origin); the
bar is [start, end). There are no empty bars: a bucket without trades emits nothing.

Closing. A time or session bar closes (is pushed to the "bars" output and passed to the listener) while
processing the first event at or past its end: a Trade or Quote of the same instrument with
ts_event >= end, or a Clock event (of any instrument id) with ts_event >= end, which closes the due bars
of every instrument. BarOut.offset is the offset of that event. A provider Bar event closes the rolled
bars of its instrument when its start is at or past their end (see roll-ups). Trades do not close
bars of other instruments.

Late data. Each state keeps a floor: the start of its open bar, else the end of its last closed bar. A
trade with ts_event < floor belongs to a bar that was closed (or skipped): it is added nowhere and is
counted per spec (late_count, late_volume; `late_trades` sums the trade specs).

Session bars (kind "session"): one bar per session [open, close) of the session table; trades outside
every session are ignored by session specs (counted as outside_count, outside_volume). They close like
time bars, at the first event of the instrument, or Clock, at or past the session close. Each state
keeps the index of the last session looked up as a search hint (sessions advance monotonically; a
jump falls back to a binary search).

Volume and dollar bars: trades accumulate until the volume (or the sum of price * size) reaches
threshold; the trade that reaches it completes the bar, which closes at once (offset = that trade's).
Trades are never split. ts_start / ts_end are the first / last trade's ts_event. Quotes and Clock
events do not close them; nothing is late for them.

Provider roll-ups (source "provider", kind "time" or "session"): a Bar event at ts_event covers
[ts_event - interval_ns, ts_event) and goes into the target bucket (or session) of its start, even if it
straddles the target's end. open = first open, high = max, low = min, close = last close, volume = sum,
trade_count = sum, vwap = sum(close * volume) / sum(volume), first_ts / last_ts = ts_event (the end) of
the first / last provider bar. A rolled bar closes as soon as a provider bar ending at or past its end
is applied, or (like a time bar) at the first Trade, Quote or Clock at or past its end, or when a
provider bar starting at or past its end arrives. A provider bar starting before the floor is late.

BarOut. OHLC, volume, vwap = sum(price * size) / volume (the close when volume is 0), trade_count,
first_ts / last_ts. session = open of the session containing the bar's first data time (the first
trade's ts_event; the first provider bar's start), 0 without a session table or outside every session;
for session bars it is the bar's own session open.

Data-quality flags (BarOut.flags, the OR of the BarFlag bits below, per (instrument, spec)); the
thresholds come from the keyword argument quality = {"stale_quote_ns", "outlier_z", "outlier_window"}:
- FLAG_RECV_BEFORE_EVENT: a trade added to the bar had ts_recv < ts_event.
- FLAG_OUT_OF_ORDER: a trade added to the bar had ts_event < the ts_event of the instrument's previous
  trade (in log order, whatever the spec did with that trade).
- FLAG_STALE_QUOTE: a trade added to the bar arrived (ts_recv) more than stale_quote_ns after the
  ts_recv of the instrument's last quote; never before the instrument's first quote.
- FLAG_LOCKED_QUOTE: a quote of the instrument with ask == bid was applied while the bar was open
  (after the quote closed the due bars, so it marks the bars still open).
- FLAG_LATE_DATA: a late trade (provider bar) of the instrument was dropped by this spec while the bar
  was open.
- FLAG_GAP (time bars only): when the bar opens, its start is after the end of the previous closed bar
  of the state and both bars have the same nonzero session.
- FLAG_OUTLIER: at close, r = log(close / previous closed bar's close); once outlier_window earlier
  returns are held, z = (r - median) / (1.4826 * MAD) over them (median of an even count is the mean
  of the middle two; exact selection in a fixed buffer, so the values do not depend on the algorithm);
  |z| > outlier_z flags the bar; MAD == 0 never flags. r then joins the window (a ring). Returns are
  taken only when both closes are > 0.

Emission order is deterministic: within one event, bars close in spec order, then instrument order (a
Clock closes spec 0's due bars for instruments 0..n-1, then spec 1's, ...); a trade that both closes a
time bar and completes a volume bar emits them in spec order.
"""

import math

import numpy as np

cimport cython

from libc.math cimport log, fabs, INFINITY
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memset, memcpy, memmove
from argus.kernels.records cimport RecordHeader, TradePayload, QuotePayload, BarPayload
from argus.kernels.reducer cimport Reducer
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.bars cimport (
    BarOut, BarSpec, BarState, SpecCounters, BarListener, InstrQuality, SpecQuality,
    BAR_TIME, BAR_SESSION, BAR_VOLUME, BAR_DOLLAR, SOURCE_TRADES, SOURCE_PROVIDER,
    STATE_OPEN, STATE_FLOORED, STATE_FRESH, IQ_HAS_TRADE, IQ_HAS_QUOTE,
    FLAG_GAP, FLAG_LOCKED_QUOTE, FLAG_STALE_QUOTE, FLAG_OUTLIER, FLAG_RECV_BEFORE_EVENT, FLAG_OUT_OF_ORDER,
    FLAG_LATE_DATA,
)

from argus.kernels.reducer import SnapshotError

#: BarOut.flags bits by name (bars.pxd BarFlag).
BAR_FLAGS = {
    "gap": FLAG_GAP, "locked_quote": FLAG_LOCKED_QUOTE, "stale_quote": FLAG_STALE_QUOTE, "outlier": FLAG_OUTLIER,
    "recv_before_event": FLAG_RECV_BEFORE_EVENT, "out_of_order": FLAG_OUT_OF_ORDER, "late_data": FLAG_LATE_DATA,
}

#: Defaults of the `quality` argument of BarReducer.
QUALITY_DEFAULTS = {"stale_quote_ns": 60 * 1_000_000_000, "outlier_z": 8.0, "outlier_window": 50}
MAX_OUTLIER_WINDOW = 256

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
_BAR_DTYPE = np.dtype(list(BAR_FIELDS))


cdef class BarListener(Reducer):
    """Base of reducers fed with closed bars (see bars.pxd)."""

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        pass

    def feed_bars(self, bars):
        """Call on_bar_closed for each row of `bars` (a numpy array of BAR_FIELDS), in order. This feeds
        this reducer only: a reducer that reads others' state needs them fed the same bars first."""
        cdef Py_ssize_t i, n
        cdef const uint8_t[::1] raw
        cdef const uint8_t* base
        arr = np.asarray(bars)
        if arr.dtype != _BAR_DTYPE:
            raise ValueError(f"bars dtype = {arr.dtype} must be the BAR_FIELDS dtype (argus.kernels.bars)")
        arr = np.ascontiguousarray(arr.reshape(-1))
        n = arr.shape[0]
        if n == 0:
            return
        raw = arr.view(np.uint8)
        base = &raw[0]
        with nogil:
            for i in range(n):
                self.on_bar_closed(<const BarOut*>(base + i * sizeof(BarOut)))
        self._check()

    def apply_record(self, record, offset):
        raise TypeError(f"reducer '{self.name}' is fed closed bars (on_bar_closed, feed_bars), not log records")

    def apply_chunk(self, body, first_offset, start=0, stop=0xFFFFFFFFFFFFFFFF):
        raise TypeError(f"reducer '{self.name}' is fed closed bars (on_bar_closed, feed_bars), not log records")


cdef class BarFanout(BarListener):
    """Feeds each closed bar to several listeners in a fixed order (e.g. indicators, regimes, outcomes)."""

    def __init__(self, listeners):
        listeners = tuple(listeners)
        if len(listeners) > 8:
            raise ValueError(f"listeners = {len(listeners)} must be at most 8")
        for i, lst in enumerate(listeners):
            if not isinstance(lst, BarListener):
                raise TypeError(f"listeners[{i}] = {lst!r} must be a BarListener")
        Reducer.__init__(self, "fanout", b"\0" * 32)
        self.listeners = listeners
        self.n = len(listeners)
        padded = listeners + (None,) * (8 - len(listeners))
        self.l0, self.l1, self.l2, self.l3, self.l4, self.l5, self.l6, self.l7 = padded

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        if self.n > 0:
            self.l0.on_bar_closed(bar)
        if self.n > 1:
            self.l1.on_bar_closed(bar)
        if self.n > 2:
            self.l2.on_bar_closed(bar)
        if self.n > 3:
            self.l3.on_bar_closed(bar)
        if self.n > 4:
            self.l4.on_bar_closed(bar)
        if self.n > 5:
            self.l5.on_bar_closed(bar)
        if self.n > 6:
            self.l6.on_bar_closed(bar)
        if self.n > 7:
            self.l7.on_bar_closed(bar)

    def _check(self):
        for lst in self.listeners:
            lst._check()


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


# -- the bar reducer ------------------------------------------------------------------------------

cdef class SlottedListener(BarListener):
    """Base of bar listeners with one state slot per (instrument, bar spec) (see bars.pxd): growing the
    slot arrays, and their raw bytes in snapshots."""

    def __dealloc__(self):
        free(self.dstate)
        free(self.istate)

    cdef int grow(self, uint32_t n) noexcept nogil:
        """Hold at least n instruments (new slots zeroed); 0 on success."""
        cdef uint64_t new_cap, old_slots, new_slots
        cdef double* d
        cdef int64_t* s
        if n <= self.cap:
            return 0
        new_cap = 2 * <uint64_t>self.cap
        if new_cap < n:
            new_cap = n
        if new_cap > <uint64_t>0xFFFFFFFFU:
            new_cap = <uint64_t>0xFFFFFFFFU
        old_slots = <uint64_t>self.cap * self.n_bar_specs
        new_slots = new_cap * self.n_bar_specs
        d = <double*>realloc(self.dstate, new_slots * self.dstride * sizeof(double))
        if d == NULL:
            return -1
        self.dstate = d
        s = <int64_t*>realloc(self.istate, new_slots * self.istride * sizeof(int64_t))
        if s == NULL:
            return -1
        self.istate = s
        memset(d + old_slots * self.dstride, 0, (new_slots - old_slots) * self.dstride * sizeof(double))
        memset(s + old_slots * self.istride, 0, (new_slots - old_slots) * self.istride * sizeof(int64_t))
        self.cap = <uint32_t>new_cap
        return 0

    cdef int slot_of(self, const BarOut* bar, double** d, int64_t** s) noexcept nogil:
        """Point d and s at the state of the bar's (instrument, spec) slot, growing the arrays for a new
        instrument; -1 (nothing to do) once failed, for a spec >= n_bar_specs (remembered for _check) or
        when the arrays cannot grow."""
        cdef uint32_t iid = bar.instrument_id
        cdef uint64_t slot
        if self.failed:
            return -1
        if bar.spec >= self.n_bar_specs:
            self.bad_spec = True
            self.bad_spec_value = bar.spec
            self.failed = True
            return -1
        if iid >= self.n_instruments:
            if self.grow(iid + 1) != 0:
                self.failed = True
                return -1
            self.n_instruments = iid + 1
        slot = <uint64_t>iid * self.n_bar_specs + bar.spec
        d[0] = self.dstate + slot * self.dstride
        s[0] = self.istate + slot * self.istride
        return 0

    def _check(self):
        if self.bad_spec:
            raise ValueError(f"reducer '{self.name}': bar spec = {self.bad_spec_value} must be < "
                             f"n_bar_specs = {self.n_bar_specs}; the reducer stopped and must be rebuilt")
        Reducer._check(self)

    def slot_parts(self):
        """[doubles, int64s]: the slots of the n_instruments instruments, raw little-endian."""
        cdef Py_ssize_t slots = <Py_ssize_t>self.n_instruments * self.n_bar_specs
        cdef Py_ssize_t dn = slots * self.dstride * sizeof(double)
        cdef Py_ssize_t sn = slots * self.istride * sizeof(int64_t)
        return [(<char*>self.dstate)[:dn] if dn else b"", (<char*>self.istate)[:sn] if sn else b""]

    def check_slot_parts(self, dbytes, sbytes):
        """Refuse slot arrays whose sizes do not fit n_instruments (SnapshotError)."""
        cdef Py_ssize_t slots = <Py_ssize_t>self.n_instruments * self.n_bar_specs
        cdef Py_ssize_t dn = slots * self.dstride * sizeof(double)
        cdef Py_ssize_t sn = slots * self.istride * sizeof(int64_t)
        if len(dbytes) != dn or len(sbytes) != sn:
            raise SnapshotError(f"reducer '{self.name}': snapshot state = {len(dbytes)} + {len(sbytes)} bytes "
                                f"must be {dn} + {sn} for {self.n_instruments} instruments")

    def load_slot_parts(self, dbytes, sbytes):
        """Inverse of slot_parts() (sizes checked first); clears the bad-spec and failure flags."""
        cdef const uint8_t[::1] dview
        cdef const uint8_t[::1] sview
        self.check_slot_parts(dbytes, sbytes)
        if self.cap:
            memset(self.dstate, 0, <size_t>self.cap * self.n_bar_specs * self.dstride * sizeof(double))
            memset(self.istate, 0, <size_t>self.cap * self.n_bar_specs * self.istride * sizeof(int64_t))
        if len(dbytes):
            dview = bytes(dbytes)
            memcpy(self.dstate, &dview[0], len(dbytes))
        if len(sbytes):
            sview = bytes(sbytes)
            memcpy(self.istate, &sview[0], len(sbytes))
        self.bad_spec = False
        self.failed = False


KINDS = {"time": BAR_TIME, "session": BAR_SESSION, "volume": BAR_VOLUME, "dollar": BAR_DOLLAR}
SOURCES = {"trades": SOURCE_TRADES, "provider": SOURCE_PROVIDER}
_SPEC_KEYS = ("kind", "source", "interval_ns", "origin_ns", "threshold")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

#: numpy description of SpecCounters (spec_counters()).
COUNTER_FIELDS = (
    ("late_count", "<u8"),
    ("late_volume", "<f8"),
    ("outside_count", "<u8"),
    ("outside_volume", "<f8"),
)


@cython.cdivision(True)
cdef inline int64_t floor_div(int64_t a, int64_t b) noexcept nogil:
    """floor(a / b) for b > 0: C division truncates toward zero, so step down on a negative remainder."""
    cdef int64_t q = a // b
    if a % b < 0:
        q -= 1
    return q


cdef inline Py_ssize_t find_session(const int64_t* opens, Py_ssize_t n, int64_t ts, Py_ssize_t hint) noexcept nogil:
    """Index of the last session whose open <= ts, or -1. Tries the hint and the next session first:
    a state's data moves forward, so the answer is almost always one of them."""
    cdef Py_ssize_t lo, hi, mid
    if n == 0 or ts < opens[0]:
        return -1
    if 0 <= hint < n and opens[hint] <= ts:
        if hint + 1 == n or ts < opens[hint + 1]:
            return hint
        if hint + 2 == n or ts < opens[hint + 2]:
            return hint + 1
    # Binary search; invariant: opens[lo] <= ts and (hi == n or opens[hi] > ts).
    lo = 0
    hi = n
    while hi - lo > 1:
        mid = lo + (hi - lo) // 2
        if opens[mid] <= ts:
            lo = mid
        else:
            hi = mid
    return lo


cdef inline void add_trade(BarState* st, double price, double size, int64_t ts) noexcept nogil:
    if st.flags & STATE_FRESH:
        st.open = price
        st.high = price
        st.low = price
        st.first_ts = ts
        st.flags &= ~STATE_FRESH
    else:
        if price > st.high:
            st.high = price
        if price < st.low:
            st.low = price
    st.close = price
    st.volume += size
    st.pv += price * size
    st.trade_count += 1
    st.last_ts = ts


cdef inline void add_provider_bar(BarState* st, const BarPayload* p, int64_t ts) noexcept nogil:
    if st.flags & STATE_FRESH:
        st.open = p.open
        st.high = p.high
        st.low = p.low
        st.first_ts = ts
        st.flags &= ~STATE_FRESH
    else:
        if p.high > st.high:
            st.high = p.high
        if p.low < st.low:
            st.low = p.low
    st.close = p.close
    st.volume += p.volume
    st.pv += p.close * p.volume
    st.trade_count += p.trade_count
    st.last_ts = ts


cdef inline void fill_row(BarOut* row, const BarState* st, int kind) noexcept nogil:
    """Copy an open bar into an output row (the row is zeroed by OutputBuffer.push)."""
    row.ts_start = st.ts_start
    # Volume and dollar bars span their first to their last trade.
    row.ts_end = st.last_ts if (kind == BAR_VOLUME or kind == BAR_DOLLAR) else st.ts_end
    row.session = st.session
    row.first_ts = st.first_ts
    row.last_ts = st.last_ts
    row.open = st.open
    row.high = st.high
    row.low = st.low
    row.close = st.close
    row.volume = st.volume
    row.vwap = st.pv / st.volume if st.volume != 0.0 else st.close
    row.trade_count = st.trade_count
    row.flags = st.quality


cdef inline Py_ssize_t lower_bound(const double* a, Py_ssize_t n, double x) noexcept nogil:
    """First index i with a[i] >= x in a sorted a[0:n]."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline void sorted_insert(double* a, Py_ssize_t n, double x) noexcept nogil:
    """Insert x into the sorted a[0:n] (room for n + 1)."""
    cdef Py_ssize_t i = lower_bound(a, n, x)
    memmove(a + i + 1, a + i, (n - i) * sizeof(double))
    a[i] = x


cdef inline void sorted_remove(double* a, Py_ssize_t n, double x) noexcept nogil:
    """Remove one value equal to x from the sorted a[0:n] (x is present: it left the ring)."""
    cdef Py_ssize_t i = lower_bound(a, n, x)
    memmove(a + i, a + i + 1, (n - i - 1) * sizeof(double))


cdef double robust_z_sorted(const double* a, Py_ssize_t n, double r) noexcept nogil:
    """(r - median) / (1.4826 * MAD) of the sorted window a[0:n]; 0 when MAD == 0.

    The k smallest deviations |a[i] - median| are a contiguous run around the median, so they are
    taken in increasing order by walking outwards from it (two pointers); the values are exact, so
    this equals sorting the deviations."""
    cdef double med = a[n // 2] if n % 2 else 0.5 * (a[n // 2 - 1] + a[n // 2])
    cdef Py_ssize_t left = lower_bound(a, n, med) - 1  # last index with a[i] < med
    cdef Py_ssize_t right = left + 1
    cdef Py_ssize_t k = n // 2, taken = 0
    cdef double dev = 0.0, prev = 0.0, dl, dr, mad
    while taken <= k:
        prev = dev
        dl = med - a[left] if left >= 0 else INFINITY
        dr = a[right] - med if right < n else INFINITY
        if dl < dr:
            dev = dl
            left -= 1
        else:
            dev = dr
            right += 1
        taken += 1
    # dev is the (k+1)-th smallest deviation (index k); prev the k-th (index k - 1).
    mad = dev if n % 2 else 0.5 * (prev + dev)
    if mad == 0.0:
        return 0.0
    return (r - med) / (1.4826 * mad)


def _parse_quality(quality) -> dict:
    if quality is None:
        return dict(QUALITY_DEFAULTS)
    if not isinstance(quality, dict):
        raise ValueError(f"quality = {quality!r} must be a dict with keys {', '.join(QUALITY_DEFAULTS)}")
    unknown = sorted(set(quality) - set(QUALITY_DEFAULTS))
    if unknown:
        raise ValueError(f"quality: unknown key {unknown[0]!r}; keys are {', '.join(QUALITY_DEFAULTS)}")
    out = dict(QUALITY_DEFAULTS)
    out.update(quality)
    stale, z, window = out["stale_quote_ns"], out["outlier_z"], out["outlier_window"]
    if not _is_int(stale) or not (0 <= stale <= _INT64_MAX):
        raise ValueError(f"quality.stale_quote_ns = {stale!r} must be an int64 >= 0 (ns)")
    if isinstance(z, bool) or not isinstance(z, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(z) and z > 0):
        raise ValueError(f"quality.outlier_z = {z!r} must be a finite number > 0")
    if not _is_int(window) or not (2 <= window <= MAX_OUTLIER_WINDOW):
        raise ValueError(f"quality.outlier_window = {window!r} must be an int in [2, {MAX_OUTLIER_WINDOW}]")
    return {"stale_quote_ns": int(stale), "outlier_z": float(z), "outlier_window": int(window)}


cdef inline bint timed(int kind) noexcept nogil:
    """Time and session bars close on time; volume and dollar bars on their threshold."""
    return kind == BAR_TIME or kind == BAR_SESSION


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _parse_specs(specs, bint has_sessions) -> list:
    if isinstance(specs, (str, bytes, dict)) or not hasattr(specs, "__len__"):
        raise ValueError(f"specs = {specs!r} must be a list of dicts")
    if len(specs) == 0:
        raise ValueError("specs = [] must hold at least one bar spec")
    out = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise ValueError(f"specs[{i}] = {spec!r} must be a dict with keys {', '.join(_SPEC_KEYS)}")
        unknown = sorted(set(spec) - set(_SPEC_KEYS))
        if unknown:
            raise ValueError(f"specs[{i}]: unknown key {unknown[0]!r}; keys are {', '.join(_SPEC_KEYS)}")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError(f"specs[{i}].kind = {kind!r} must be one of {', '.join(KINDS)}")
        source = spec.get("source", "trades")
        if source not in SOURCES:
            raise ValueError(f"specs[{i}].source = {source!r} must be one of {', '.join(SOURCES)}")
        interval = spec.get("interval_ns", 0)
        origin = spec.get("origin_ns", 0)
        threshold = spec.get("threshold", 0.0)
        for field, value in (("interval_ns", interval), ("origin_ns", origin)):
            if not _is_int(value) or not (_INT64_MIN <= value <= _INT64_MAX):
                raise ValueError(f"specs[{i}].{field} = {value!r} must be an int64 (ns)")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise ValueError(f"specs[{i}].threshold = {threshold!r} must be a number")
        if kind == "time" and interval <= 0:
            raise ValueError(f"specs[{i}].interval_ns = {interval!r} must be > 0 for time bars")
        if kind in ("volume", "dollar") and not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"specs[{i}].threshold = {threshold!r} must be finite and > 0 for {kind} bars")
        if kind in ("volume", "dollar") and source != "trades":
            raise ValueError(f"specs[{i}].source = {source!r} must be 'trades' for {kind} bars "
                             "(provider bars roll up into time or session bars only)")
        if kind == "session" and not has_sessions:
            raise ValueError(f"specs[{i}].kind = 'session' requires a session table (sessions = None)")
        out.append({"kind": kind, "source": source, "interval_ns": int(interval), "origin_ns": int(origin),
                    "threshold": float(threshold)})
    return out


def _parse_sessions(sessions):
    if sessions is None:
        return None
    arr = np.asarray(sessions)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"sessions shape = {arr.shape} must be (n, 2): [open_ns, close_ns) per row")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"sessions dtype = {arr.dtype} must be an integer type (int64 ns UTC)")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    bad = np.flatnonzero(arr[:, 0] >= arr[:, 1])
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"sessions[{i}] = [{arr[i, 0]}, {arr[i, 1]}) must have open < close")
    bad = np.flatnonzero(arr[1:, 0] < arr[:-1, 1])
    if len(bad):
        i = int(bad[0]) + 1
        raise ValueError(f"sessions[{i}] open = {arr[i, 0]} must be >= sessions[{i - 1}] close = {arr[i - 1, 1]} "
                         "(sorted, non-overlapping)")
    arr.setflags(write=False)
    return arr


cdef class BarReducer(Reducer):
    """Bars of every configured spec for every instrument (see the module docstring for the rules).

    BarReducer(name, config_hash, specs, sessions=None, listener=None, *, quality=None): specs is a list of dicts
    {"kind": "time"|"session"|"volume"|"dollar", "source": "trades"|"provider", "interval_ns": int,
    "origin_ns": int, "threshold": float}; sessions an int64 (n, 2) array of [open_ns, close_ns)
    intervals, sorted and non-overlapping; listener a BarListener fed each closed bar; quality a dict
    {"stale_quote_ns": int (60 s), "outlier_z": float (8.0), "outlier_window": int in [2, 256] (50)}."""

    def __init__(self, str name, bytes config_hash, specs, sessions=None, BarListener listener=None, *,
                 quality=None):
        cdef Py_ssize_t i
        Reducer.__init__(self, name, config_hash)
        table = _parse_sessions(sessions)
        parsed = _parse_specs(specs, table is not None)
        q = _parse_quality(quality)
        self.quality = q
        self.stale_quote_ns = q["stale_quote_ns"]
        self.outlier_z = q["outlier_z"]
        self.outlier_window = q["outlier_window"]
        # Everything validated: allocate.
        self.n_specs = len(parsed)
        self.specs = <BarSpec*>calloc(self.n_specs, sizeof(BarSpec))
        self.counters = <SpecCounters*>calloc(self.n_specs, sizeof(SpecCounters))
        if self.specs == NULL or self.counters == NULL:
            raise MemoryError()
        for i, spec in enumerate(parsed):
            self.specs[i].kind = KINDS[spec["kind"]]
            self.specs[i].source = SOURCES[spec["source"]]
            self.specs[i].interval_ns = spec["interval_ns"]
            self.specs[i].origin_ns = spec["origin_ns"]
            self.specs[i].threshold = spec["threshold"]
        self.n_sessions = 0 if table is None else table.shape[0]
        if self.n_sessions:
            self.session_open = <int64_t*>malloc(self.n_sessions * sizeof(int64_t))
            self.session_close = <int64_t*>malloc(self.n_sessions * sizeof(int64_t))
            if self.session_open == NULL or self.session_close == NULL:
                raise MemoryError()
            for i in range(self.n_sessions):
                self.session_open[i] = table[i, 0]
                self.session_close[i] = table[i, 1]
        self.spec_dicts = tuple(parsed)
        self.sessions = table
        self.out = OutputBuffer(np.dtype(list(BAR_FIELDS)))
        self.listener = listener
        self.has_listener = listener is not None

    def __dealloc__(self):
        free(self.specs)
        free(self.states)
        free(self.iquality)
        free(self.squality)
        free(self.returns)
        free(self.sorted_returns)
        free(self.counters)
        free(self.session_open)
        free(self.session_close)

    cdef int grow(self, uint32_t n) noexcept nogil:
        cdef Py_ssize_t cap
        cdef BarState* grown
        cdef InstrQuality* iq
        cdef SpecQuality* sq
        cdef double* rets
        cdef Py_ssize_t ns = self.n_specs, w = self.outlier_window
        if n > self.state_cap:
            # Doubling: dispatch() grows one id at a time as instruments appear.
            cap = n if n > 2 * self.state_cap else 2 * self.state_cap
            grown = <BarState*>realloc(self.states, cap * ns * sizeof(BarState))
            if grown == NULL:
                return -1
            self.states = grown
            iq = <InstrQuality*>realloc(self.iquality, cap * sizeof(InstrQuality))
            if iq == NULL:
                return -1
            self.iquality = iq
            sq = <SpecQuality*>realloc(self.squality, cap * ns * sizeof(SpecQuality))
            if sq == NULL:
                return -1
            self.squality = sq
            rets = <double*>realloc(self.returns, cap * ns * w * sizeof(double))
            if rets == NULL:
                return -1
            self.returns = rets
            rets = <double*>realloc(self.sorted_returns, cap * ns * w * sizeof(double))
            if rets == NULL:
                return -1
            self.sorted_returns = rets
            self.state_cap = cap
        # Entries below n_instruments are live; everything from there up to n is new (or stale after a
        # restore to fewer instruments) and starts zeroed.
        if n > self.n_instruments:
            memset(self.states + self.n_instruments * ns, 0, (n - self.n_instruments) * ns * sizeof(BarState))
            memset(self.iquality + self.n_instruments, 0, (n - self.n_instruments) * sizeof(InstrQuality))
            memset(self.squality + self.n_instruments * ns, 0, (n - self.n_instruments) * ns * sizeof(SpecQuality))
            memset(self.returns + self.n_instruments * ns * w, 0,
                   (n - self.n_instruments) * ns * w * sizeof(double))
            memset(self.sorted_returns + self.n_instruments * ns * w, 0,
                   (n - self.n_instruments) * ns * w * sizeof(double))
        return 0

    # -- the hot path -----------------------------------------------------------------------------

    cdef void close_bar(self, BarState* st, uint32_t iid, uint32_t spec, uint64_t offset) noexcept nogil:
        """Emit the open bar of a state, hand it to the listener, and reset the state to no open bar."""
        cdef int kind = self.specs[spec].kind
        cdef Py_ssize_t idx = <Py_ssize_t>iid * self.n_specs + spec
        cdef SpecQuality* q = &self.squality[idx]
        cdef double* ring = self.returns + idx * self.outlier_window
        cdef double* srt = self.sorted_returns + idx * self.outlier_window
        cdef Py_ssize_t w = self.outlier_window
        cdef double r, z
        cdef BarOut* row = <BarOut*>self.out.push()
        fill_row(row, st, kind)
        row.offset = offset
        row.instrument_id = iid
        row.spec = spec
        # Outlier: this bar's close-to-close log return against the trailing window of returns.
        if q.has_close and q.prev_close > 0.0 and st.close > 0.0:
            r = log(st.close / q.prev_close)
            if q.n_returns >= w:
                z = robust_z_sorted(srt, w, r)
                if fabs(z) > self.outlier_z:
                    row.flags |= FLAG_OUTLIER
                sorted_remove(srt, w, ring[q.n_returns % w])
                sorted_insert(srt, w - 1, r)
            else:
                sorted_insert(srt, q.n_returns, r)
            ring[q.n_returns % w] = r
            q.n_returns += 1
        q.has_close = 1
        q.prev_close = st.close
        q.prev_session = st.session
        # After a close, data before the closed bar's end belongs to a closed bar (late).
        if timed(kind):
            st.floor = st.ts_end
        st.flags = STATE_FLOORED
        st.ts_start = 0
        st.ts_end = 0
        st.session = 0
        st.first_ts = 0
        st.last_ts = 0
        st.open = 0.0
        st.high = 0.0
        st.low = 0.0
        st.close = 0.0
        st.volume = 0.0
        st.pv = 0.0
        st.trade_count = 0
        st.quality = 0
        if self.has_listener:
            self.listener.on_bar_closed(row)

    cdef void open_bar(self, BarState* st, const BarSpec* sp, int64_t start, int64_t end, int64_t key,
                       Py_ssize_t sidx) noexcept nogil:
        """Start a bar [start, end); its session is sessions[sidx], or (sidx < 0) the one holding `key`."""
        # A closed bar before this one (time bars: floor = its end) for the gap check.
        cdef bint had_prev = (st.flags & STATE_FLOORED) != 0 and (st.flags & STATE_OPEN) == 0
        cdef int64_t prev_end = st.floor
        cdef const SpecQuality* q = &self.squality[st - self.states]
        if sidx < 0:
            sidx = find_session(self.session_open, self.n_sessions, key, st.session_index)
            if sidx >= 0:
                st.session_index = sidx
                st.session = self.session_open[sidx] if key < self.session_close[sidx] else 0
            else:
                st.session = 0
        else:
            st.session_index = sidx
            st.session = self.session_open[sidx]
        st.ts_start = start
        st.ts_end = end
        st.floor = start
        st.flags = STATE_OPEN | STATE_FLOORED | STATE_FRESH
        st.quality = 0
        if (sp.kind == BAR_TIME and had_prev and q.has_close and start > prev_end and st.session != 0
                and st.session == q.prev_session):
            st.quality = FLAG_GAP

    cdef bint bucket_of(self, BarState* st, const BarSpec* sp, int64_t ts, int64_t* start, int64_t* end,
                        Py_ssize_t* sidx) noexcept nogil:
        """The time bucket (or session) holding ts; False when a session spec finds no session."""
        cdef Py_ssize_t j
        if sp.kind == BAR_TIME:
            start[0] = sp.origin_ns + floor_div(ts - sp.origin_ns, sp.interval_ns) * sp.interval_ns
            end[0] = start[0] + sp.interval_ns
            sidx[0] = -1
            return True
        j = find_session(self.session_open, self.n_sessions, ts, st.session_index)
        if j < 0:
            return False
        st.session_index = j
        if ts >= self.session_close[j]:
            return False
        start[0] = self.session_open[j]
        end[0] = self.session_close[j]
        sidx[0] = j
        return True

    cdef void close_due(self, uint32_t iid, int64_t ts, uint64_t offset) noexcept nogil:
        """Close the time and session bars of one instrument that end at or before ts."""
        cdef Py_ssize_t s
        cdef BarState* st
        for s in range(self.n_specs):
            st = &self.states[iid * self.n_specs + s]
            if (st.flags & STATE_OPEN) and timed(self.specs[s].kind) and ts >= st.ts_end:
                self.close_bar(st, iid, <uint32_t>s, offset)

    cdef void on_trade(self, uint64_t offset, const RecordHeader* h, const TradePayload* p) noexcept nogil:
        cdef uint32_t iid = h.instrument_id
        cdef int64_t ts = h.ts_event
        cdef Py_ssize_t s, sidx
        cdef int64_t start, end
        cdef const BarSpec* sp
        cdef BarState* st
        cdef SpecCounters* c
        cdef InstrQuality* iq
        cdef uint32_t tflags = 0
        if iid >= self.n_instruments:  # NO_INSTRUMENT, or a failed grow
            return
        # The trade's own quality flags, given to every bar it goes into.
        iq = &self.iquality[iid]
        if h.ts_recv < ts:
            tflags |= FLAG_RECV_BEFORE_EVENT
        if (iq.bits & IQ_HAS_TRADE) and ts < iq.last_trade_ts:
            tflags |= FLAG_OUT_OF_ORDER
        if (iq.bits & IQ_HAS_QUOTE) and iq.last_quote_recv < h.ts_recv - self.stale_quote_ns:
            tflags |= FLAG_STALE_QUOTE
        iq.last_trade_ts = ts
        iq.bits |= IQ_HAS_TRADE
        for s in range(self.n_specs):
            sp = &self.specs[s]
            st = &self.states[iid * self.n_specs + s]
            if sp.kind == BAR_VOLUME or sp.kind == BAR_DOLLAR:
                if not (st.flags & STATE_OPEN):
                    self.open_bar(st, sp, ts, ts, ts, -1)
                add_trade(st, p.price, p.size, ts)
                st.quality |= tflags
                if (st.volume if sp.kind == BAR_VOLUME else st.pv) >= sp.threshold:
                    self.close_bar(st, iid, <uint32_t>s, offset)
                continue
            # Time and session bars, from trades or rolled up: a trade at or past the end closes the bar.
            if (st.flags & STATE_OPEN) and ts >= st.ts_end:
                self.close_bar(st, iid, <uint32_t>s, offset)
            if sp.source != SOURCE_TRADES:
                continue
            c = &self.counters[s]
            if (st.flags & STATE_FLOORED) and ts < st.floor:
                c.late_count += 1
                c.late_volume += p.size
                if st.flags & STATE_OPEN:
                    st.quality |= FLAG_LATE_DATA
                continue
            # Here an open bar holds ts (floor = its start <= ts < its end); otherwise look the bucket up.
            if not (st.flags & STATE_OPEN):
                if not self.bucket_of(st, sp, ts, &start, &end, &sidx):
                    c.outside_count += 1
                    c.outside_volume += p.size
                    continue
                self.open_bar(st, sp, start, end, ts, sidx)
            add_trade(st, p.price, p.size, ts)
            st.quality |= tflags

    cdef void on_quote(self, uint64_t offset, const RecordHeader* h, const QuotePayload* p) noexcept nogil:
        cdef uint32_t iid = h.instrument_id
        cdef Py_ssize_t s
        cdef BarState* st
        cdef InstrQuality* iq
        if iid >= self.n_instruments:
            return
        self.close_due(iid, h.ts_event, offset)
        iq = &self.iquality[iid]
        iq.last_quote_recv = h.ts_recv
        iq.bits |= IQ_HAS_QUOTE
        if p.ask == p.bid:
            for s in range(self.n_specs):
                st = &self.states[iid * self.n_specs + s]
                if st.flags & STATE_OPEN:
                    st.quality |= FLAG_LOCKED_QUOTE

    cdef void on_clock(self, uint64_t offset, const RecordHeader* h) noexcept nogil:
        # Spec-major: spec 0's due bars for instruments 0..n-1, then spec 1's, ...
        cdef Py_ssize_t s
        cdef uint32_t i
        cdef int64_t ts = h.ts_event
        cdef BarState* st
        for s in range(self.n_specs):
            if not timed(self.specs[s].kind):
                continue
            for i in range(self.n_instruments):
                st = &self.states[i * self.n_specs + s]
                if (st.flags & STATE_OPEN) and ts >= st.ts_end:
                    self.close_bar(st, i, <uint32_t>s, offset)

    cdef void on_bar(self, uint64_t offset, const RecordHeader* h, const BarPayload* p) noexcept nogil:
        cdef uint32_t iid = h.instrument_id
        cdef int64_t ts = h.ts_event
        cdef int64_t pstart = ts - p.interval_ns  # the provider bar covers [pstart, ts)
        cdef Py_ssize_t s, sidx
        cdef int64_t start, end
        cdef const BarSpec* sp
        cdef BarState* st
        cdef SpecCounters* c
        if iid >= self.n_instruments:
            return
        for s in range(self.n_specs):
            sp = &self.specs[s]
            if sp.source != SOURCE_PROVIDER:
                continue
            st = &self.states[iid * self.n_specs + s]
            c = &self.counters[s]
            # A provider bar belongs to the bucket of its start, so its start (not its end) decides
            # whether the open bar is over.
            if (st.flags & STATE_OPEN) and pstart >= st.ts_end:
                self.close_bar(st, iid, <uint32_t>s, offset)
            if (st.flags & STATE_FLOORED) and pstart < st.floor:
                c.late_count += 1
                c.late_volume += p.volume
                if st.flags & STATE_OPEN:
                    st.quality |= FLAG_LATE_DATA
                continue
            if not (st.flags & STATE_OPEN):
                if not self.bucket_of(st, sp, pstart, &start, &end, &sidx):
                    c.outside_count += 1
                    c.outside_volume += p.volume
                    continue
                self.open_bar(st, sp, start, end, pstart, sidx)
            add_provider_bar(st, p, ts)
            # The provider bar that reaches the target's end completes it: no need to wait for more data.
            if ts >= st.ts_end:
                self.close_bar(st, iid, <uint32_t>s, offset)

    # -- Python-level API (once per snapshot or query, never per record) ---------------------------

    def outputs(self):
        return [("bars", self.out)]

    def state_parts(self):
        cdef Py_ssize_t nstate = <Py_ssize_t>self.n_instruments * self.n_specs * sizeof(BarState)
        cdef Py_ssize_t ncount = self.n_specs * sizeof(SpecCounters)
        cdef Py_ssize_t n = self.n_instruments
        states = (<char*>self.states)[:nstate] if nstate else b""
        if n == 0:
            return [states, (<char*>self.counters)[:ncount], b"", b"", b""]
        return [states, (<char*>self.counters)[:ncount],
                (<char*>self.iquality)[:n * sizeof(InstrQuality)],
                (<char*>self.squality)[:n * self.n_specs * sizeof(SpecQuality)],
                (<char*>self.returns)[:n * self.n_specs * self.outlier_window * sizeof(double)]]

    def load_state_parts(self, parts):
        cdef Py_ssize_t nstate = <Py_ssize_t>self.n_instruments * self.n_specs * sizeof(BarState)
        cdef Py_ssize_t ncount = self.n_specs * sizeof(SpecCounters)
        cdef Py_ssize_t n = self.n_instruments
        cdef Py_ssize_t niq = n * sizeof(InstrQuality)
        cdef Py_ssize_t nsq = n * self.n_specs * sizeof(SpecQuality)
        cdef Py_ssize_t nret = n * self.n_specs * self.outlier_window * sizeof(double)
        cdef const unsigned char[::1] states, counters, blob
        if len(parts) != 5:
            raise SnapshotError(f"reducer '{self.name}': snapshot has {len(parts)} state parts, bars need 5")
        for name, part, want in (("instrument quality", parts[2], niq), ("spec quality", parts[3], nsq),
                                 ("return windows", parts[4], nret)):
            if len(part) != want:
                raise SnapshotError(f"reducer '{self.name}': {name} = {len(part)} bytes must be {want}")
        if len(parts[0]) != nstate:
            raise SnapshotError(f"reducer '{self.name}': bar states = {len(parts[0])} bytes must be {nstate} "
                                f"({self.n_instruments} instruments x {self.n_specs} specs x {sizeof(BarState)})")
        if len(parts[1]) != ncount:
            raise SnapshotError(f"reducer '{self.name}': counters = {len(parts[1])} bytes must be {ncount} "
                                f"({self.n_specs} specs x {sizeof(SpecCounters)})")
        counters = parts[1]
        memcpy(self.counters, &counters[0], ncount)
        if nstate:
            states = parts[0]
            memcpy(self.states, &states[0], nstate)
        if n:
            blob = parts[2]
            memcpy(self.iquality, &blob[0], niq)
            blob = parts[3]
            memcpy(self.squality, &blob[0], nsq)
            blob = parts[4]
            memcpy(self.returns, &blob[0], nret)
            self._rebuild_sorted()

    def _rebuild_sorted(self):
        """The sorted windows are derived from the rings: rebuild them after a restore."""
        cdef Py_ssize_t w = self.outlier_window, n = <Py_ssize_t>self.n_instruments * self.n_specs, i, j, m
        for i in range(n):
            m = min(<Py_ssize_t>self.squality[i].n_returns, w)
            for j in range(m):
                sorted_insert(self.sorted_returns + i * w, j, self.returns[i * w + j])

    def open_bars(self):
        """The bars not closed yet, as BAR_FIELDS rows in (instrument, spec) order; offset is 0."""
        cdef Py_ssize_t i, n = <Py_ssize_t>self.n_instruments * self.n_specs, k = 0
        cdef BarOut* rows
        count = sum(1 for i in range(n) if self.states[i].flags & STATE_OPEN)
        out = np.zeros(count, dtype=np.dtype(list(BAR_FIELDS)))
        if count:
            rows = <BarOut*><size_t>out.ctypes.data
            for i in range(n):
                if self.states[i].flags & STATE_OPEN:
                    fill_row(&rows[k], &self.states[i], self.specs[i % self.n_specs].kind)
                    rows[k].instrument_id = <uint32_t>(i // self.n_specs)
                    rows[k].spec = <uint32_t>(i % self.n_specs)
                    k += 1
        return out

    def spec_counters(self):
        """Per spec (one row each, in spec order): late_count, late_volume, outside_count, outside_volume."""
        out = np.zeros(self.n_specs, dtype=np.dtype(list(COUNTER_FIELDS)))
        if self.n_specs:
            memcpy(<void*><size_t>out.ctypes.data, self.counters, self.n_specs * sizeof(SpecCounters))
        return out

    @property
    def late_trades(self):
        """Trades refused as late, summed over the trade specs (a trade late for two specs counts twice)."""
        return sum(self.counters[s].late_count for s in range(self.n_specs)
                   if self.specs[s].source == SOURCE_TRADES)

    @property
    def late_bars(self):
        """Provider bars refused as late, summed over the roll-up specs."""
        return sum(self.counters[s].late_count for s in range(self.n_specs)
                   if self.specs[s].source == SOURCE_PROVIDER)

    @property
    def n_bar_specs(self):
        return self.n_specs


def counter_layout_info():
    """Size of BarState and SpecCounters and the field offsets of SpecCounters, for layout tests."""
    cdef SpecCounters c
    cdef size_t base = <size_t>&c
    return sizeof(BarState), sizeof(SpecCounters), {
        "late_count": <size_t>&c.late_count - base, "late_volume": <size_t>&c.late_volume - base,
        "outside_count": <size_t>&c.outside_count - base, "outside_volume": <size_t>&c.outside_volume - base,
    }
