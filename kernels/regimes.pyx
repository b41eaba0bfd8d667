"""Market regimes on closed bars: volatility (LOW/NORMAL/HIGH/EXTREME) and trend (UP/DOWN/RANGE).

The RegimeReducer is a BarListener: the bar reducer calls on_bar_closed() for every bar it emits, live
or in replay, and feed_bars() does the same from an array of BAR_FIELDS rows. State lives per
(instrument, bar spec) slot in two flat C arrays (doubles and int64s, slot-major), ring buffers
included; the same bars give byte-identical rows and snapshots.

Volatility regime
    rv_t = sample standard deviation (ddof=1) of the last `rv_period` close-to-close log returns
    * sqrt(periods_per_year) (NaN until rv_period returns exist). Every rv enters a ring of the last
    `history` rv values of the slot; its percentile is p = #{h in ring : h <= rv_t} / len(ring) (the
    ring includes rv_t, so 0 < p <= 1). Until the ring holds `min_history` values, p is NaN and the
    regime is VOL_UNKNOWN (0). Zones of p: LOW p < low, NORMAL low <= p <= high, HIGH high < p <=
    extreme, EXTREME p > extreme (defaults 0.25, 0.75, 0.95). Hysteresis with `band` (default 0.05):
      * the first regime (from UNKNOWN) is p's zone;
      * if p's zone is above the current regime c, the regime becomes the highest r with c < r <= zone
        and p >= up[r], where up[NORMAL] = low + band, up[HIGH] = high + band,
        up[EXTREME] = min(extreme + band, 1); with none, it stays c;
      * if p's zone is below c, the regime becomes the lowest r with zone <= r < c and p <= down[r],
        where down[LOW] = low - band, down[NORMAL] = high - band, down[HIGH] = extreme - band; with
        none, it stays c;
      * otherwise it stays c.
    band = 0 gives the plain zone classifier. (With the defaults EXTREME is entered from below only when
    p = 1, i.e. rv is the largest of its history, and left when p <= 0.90.)

Trend regime
    ADX = Wilder's ADX(adx_period) exactly as TA-Lib computes it (lookback 2 * adx_period - 1);
    EMA = TA-Lib's EMA(ema_period) (seeded with the SMA of the first ema_period closes);
    slope_t = ema_t - ema_{t - slope_bars}. Until both ADX and the slope exist: TREND_UNKNOWN (0). Then:
      * from UNKNOWN or RANGE: TREND_UP if ADX >= adx_enter and slope > 0, TREND_DOWN if ADX >= adx_enter
        and slope < 0, else RANGE;
      * from UP (DOWN): RANGE if ADX < adx_exit; else DOWN (UP) if ADX >= adx_enter and slope < 0
        (slope > 0); else it stays.

Outputs
    "regimes": one REGIME_FIELDS row per closed bar; "regime_changes": the same row again for every bar
    whose regime changed (changed != 0: bit CHANGED_VOL, bit CHANGED_TREND; leaving UNKNOWN counts as a
    change), so a change is a derived record that carries the inputs (rv, percentile, ADX, slope) that
    caused it. A bar whose high, low or close is not finite, or whose close is <= 0, changes no state:
    its row repeats the slot's last values and regimes with changed = 0.
"""

import math
import struct

import numpy as np

from libc.math cimport NAN, fabs, isfinite, log, sqrt
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset
from argus.kernels.ta_math cimport ema_push, rv_step
from argus.kernels.bars cimport BarOut, SlottedListener
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.reducer cimport Reducer

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
MAX_PERIOD = 100000

#: numpy description of RegimeRow (the rows of "regimes" and "regime_changes").
REGIME_FIELDS = (
    ("offset", "<u8"),
    ("instrument_id", "<u4"),
    ("spec", "<u4"),
    ("ts_end", "<i8"),
    ("rv", "<f8"),
    ("rv_percentile", "<f8"),
    ("vol_regime", "u1"),
    ("trend_regime", "u1"),
    ("_pad0", "V6"),
    ("adx", "<f8"),
    ("ema_slope", "<f8"),
    ("changed", "u1"),
    ("_pad1", "V7"),
)
REGIME_DTYPE = np.dtype(list(REGIME_FIELDS))

VOL_REGIME_NAMES = ("unknown", "low", "normal", "high", "extreme")
TREND_REGIME_NAMES = ("unknown", "up", "down", "range")

#: every parameter and its default
DEFAULT_PARAMS = {
    "rv_period": 20, "periods_per_year": 252.0, "history": 252, "min_history": 60,
    "low": 0.25, "high": 0.75, "extreme": 0.95, "band": 0.05,
    "adx_period": 14, "ema_period": 20, "slope_bars": 1, "adx_enter": 25.0, "adx_exit": 20.0,
}
_INT_PARAMS = {"rv_period": 2, "history": 2, "min_history": 1, "adx_period": 2, "ema_period": 2, "slope_bars": 1}
_LAYOUT = struct.Struct("<I7q7d")

# state layout inside a slot
cdef enum:
    D_PREV = 0        # previous close (for the log return)
    D_ADX = 1         # 7 doubles of ADX state (adx_step)
    D_EMA = 8         # the EMA (first the sum of its seed window)
    D_LAST = 9        # last rv, percentile, ADX, slope (repeated by bars that change no state)
    D_RINGS = 13      # then: returns ring (rv_period), rv history ring (history), EMA ring (slope_bars)
    I_BARS = 0        # bars that changed state
    I_RPOS = 1        # returns ring write position
    I_HCOUNT = 2      # rv values in the history ring (<= history)
    I_HPOS = 3        # history ring write position
    I_ADX = 4         # bars seen by the ADX
    I_EMA = 5         # bars seen by the EMA
    I_EPOS = 6        # EMA ring write position
    I_ECOUNT = 7      # EMAs in the EMA ring (<= slope_bars)
    I_VOL = 8         # current VolRegime
    I_TREND = 9       # current TrendRegime
    ISTRIDE = 10


def regime_layout_info():
    """Size and field offsets of RegimeRow, for the layout check against REGIME_FIELDS."""
    cdef RegimeRow r
    cdef size_t base = <size_t>&r
    return sizeof(RegimeRow), {
        "offset": <size_t>&r.offset - base, "instrument_id": <size_t>&r.instrument_id - base,
        "spec": <size_t>&r.spec - base, "ts_end": <size_t>&r.ts_end - base, "rv": <size_t>&r.rv - base,
        "rv_percentile": <size_t>&r.rv_percentile - base, "vol_regime": <size_t>&r.vol_regime - base,
        "trend_regime": <size_t>&r.trend_regime - base, "_pad0": <size_t>&r._pad0[0] - base,
        "adx": <size_t>&r.adx - base, "ema_slope": <size_t>&r.ema_slope - base,
        "changed": <size_t>&r.changed - base, "_pad1": <size_t>&r._pad1[0] - base,
    }


def check_regime_layout():
    """Raise AssertionError unless REGIME_FIELDS describes RegimeRow exactly (8-byte aligned)."""
    size, offsets = regime_layout_info()
    if REGIME_DTYPE.itemsize != size or size % 8:
        raise AssertionError(f"REGIME_FIELDS = {REGIME_DTYPE.itemsize} bytes, RegimeRow = {size} (multiple of 8)")
    for name in REGIME_DTYPE.names:
        if REGIME_DTYPE.fields[name][1] != offsets[name]:
            raise AssertionError(f"REGIME_FIELDS '{name}' at {REGIME_DTYPE.fields[name][1]}, "
                                 f"RegimeRow at {offsets[name]}")
    for name in ("ts_end", "rv", "rv_percentile", "adx", "ema_slope"):
        if offsets[name] % 8:
            raise AssertionError(f"RegimeRow.{name} at {offsets[name]} is not 8-byte aligned")


check_regime_layout()


def _bad(str field, value, str rule):
    return ValueError(f"regimes: field '{field}' = {value!r} must be {rule}")


def parse_params(**params) -> dict:
    """The validated parameters with defaults filled, in DEFAULT_PARAMS order; ValueError naming the
    field, its value and the rule otherwise."""
    extra = sorted(set(params) - set(DEFAULT_PARAMS))
    if extra:
        raise _bad(extra[0], params[extra[0]], f"absent (regime parameters: {', '.join(DEFAULT_PARAMS)})")
    out = {}
    for field, default in DEFAULT_PARAMS.items():
        value = params.get(field, default)
        if field in _INT_PARAMS:
            low = _INT_PARAMS[field]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= MAX_PERIOD:
                raise _bad(field, value, f"an integer in [{low}, {MAX_PERIOD}]")
            out[field] = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise _bad(field, value, "a finite number")
            out[field] = float(value)
    if out["min_history"] > out["history"]:
        raise _bad("min_history", out["min_history"], f"<= history = {out['history']}")
    if out["periods_per_year"] <= 0:
        raise _bad("periods_per_year", out["periods_per_year"], "> 0")
    if not 0.0 < out["low"] < out["high"] < out["extreme"] < 1.0:
        for field, rule in (("low", 0.0 < out["low"]), ("high", out["low"] < out["high"]),
                            ("extreme", out["high"] < out["extreme"] < 1.0)):
            if not rule:
                raise _bad(field, out[field], "such that 0 < low < high < extreme < 1 "
                           f"(low = {out['low']}, high = {out['high']}, extreme = {out['extreme']})")
        raise _bad("low", out["low"], "such that 0 < low < high < extreme < 1")
    band = out["band"]
    widest = min(out["low"], out["high"] - out["low"], out["extreme"] - out["high"])
    if band < 0 or band >= widest or band > 1.0 - out["extreme"] + 1e-12:
        raise _bad("band", band, f">= 0, < every zone width (< {widest:g}) and <= 1 - extreme "
                   f"(<= {1.0 - out['extreme']:g})")
    if not 0.0 <= out["adx_exit"] <= out["adx_enter"] <= 100.0:
        field = "adx_exit" if not 0.0 <= out["adx_exit"] <= 100.0 else "adx_enter"
        raise _bad(field, out[field], f"such that 0 <= adx_exit <= adx_enter <= 100 "
                   f"(adx_exit = {out['adx_exit']}, adx_enter = {out['adx_enter']})")
    return out


# -- the math --------------------------------------------------------------------------------------

cdef inline double true_range(double high, double low, double prev_close) noexcept nogil:
    # Wilder's true range, in TA-Lib's order (as argus.kernels.indicators).
    cdef double greatest = high - low
    cdef double v = fabs(prev_close - high)
    if v > greatest:
        greatest = v
    v = fabs(prev_close - low)
    if v > greatest:
        greatest = v
    return greatest


cdef inline double adx_step(double high, double low, double close, int64_t n, double* d,
                            int64_t* s) noexcept nogil:
    # Wilder's ADX as TA-Lib computes it (the same operations as argus.kernels.indicators.adx_push):
    # d: 0 prev high, 1 prev low, 2 prev close, 3 +DM, 4 -DM, 5 TR, 6 sum of DX then the ADX.
    cdef double diff_p, diff_m, tr, minus_di, plus_di, di_sum, dx
    cdef double nd = <double>n
    cdef int64_t k
    s[0] += 1
    k = s[0] - 1
    if k == 0:
        d[0] = high
        d[1] = low
        d[2] = close
        return NAN
    diff_p = high - d[0]
    d[0] = high
    diff_m = d[1] - low
    d[1] = low
    if k >= n:
        d[4] -= d[4] / nd
        d[3] -= d[3] / nd
    if diff_m > 0 and diff_p < diff_m:
        d[4] += diff_m
    elif diff_p > 0 and diff_p > diff_m:
        d[3] += diff_p
    tr = true_range(high, low, d[2])
    d[2] = close
    if k < n:
        d[5] += tr
        return NAN
    d[5] = d[5] - (d[5] / nd) + tr
    dx = -1.0
    if d[5] != 0.0:
        minus_di = 100.0 * (d[4] / d[5])
        plus_di = 100.0 * (d[3] / d[5])
        di_sum = minus_di + plus_di
        if di_sum != 0.0:
            dx = 100.0 * (fabs(minus_di - plus_di) / di_sum)
    if k < 2 * n - 1:
        if dx >= 0.0:
            d[6] += dx
        return NAN
    if k == 2 * n - 1:
        if dx >= 0.0:
            d[6] += dx
        d[6] = d[6] / nd
    elif dx >= 0.0:
        d[6] = ((d[6] * (nd - 1.0)) + dx) / nd
    return d[6]


cdef inline int vol_zone(double pct, const RegimeParams* q) noexcept nogil:
    if pct < q.low:
        return VOL_LOW
    if pct <= q.high:
        return VOL_NORMAL
    if pct <= q.extreme:
        return VOL_HIGH
    return VOL_EXTREME


cdef inline int vol_next(int cur, double pct, const RegimeParams* q) noexcept nogil:
    # The hysteresis rule of the module docstring.
    cdef int zone = vol_zone(pct, q), r
    if cur == VOL_UNKNOWN or zone == cur:
        return zone
    if zone > cur:
        r = zone
        while r > cur:
            if pct >= q.up[r]:
                return r
            r -= 1
        return cur
    r = zone
    while r < cur:
        if pct <= q.down[r]:
            return r
        r += 1
    return cur


cdef inline int trend_next(int cur, double adx, double slope, const RegimeParams* q) noexcept nogil:
    if cur == TREND_UP or cur == TREND_DOWN:
        if adx < q.adx_exit:
            return TREND_RANGE
        if adx >= q.adx_enter:
            if cur == TREND_UP and slope < 0:
                return TREND_DOWN
            if cur == TREND_DOWN and slope > 0:
                return TREND_UP
        return cur
    if adx >= q.adx_enter:
        if slope > 0:
            return TREND_UP
        if slope < 0:
            return TREND_DOWN
    return TREND_RANGE


cdef class RegimeReducer(SlottedListener):
    """RegimeReducer(name, config_hash, n_bar_specs, **params): volatility and trend regimes of closed
    bars (rules in the module docstring; parameters and defaults in DEFAULT_PARAMS, checked by
    parse_params). Outputs "regimes" (one REGIME_FIELDS row per closed bar) and "regime_changes"."""

    def __init__(self, str name, bytes config_hash, int n_bar_specs, **params):
        Reducer.__init__(self, name, config_hash)
        if self.out is not None:
            raise RuntimeError("RegimeReducer.__init__ called twice")
        if n_bar_specs < 1:
            raise ValueError(f"regimes: field 'n_bar_specs' = {n_bar_specs} must be >= 1")
        clean = parse_params(**params)
        cdef RegimeParams* q = &self.p
        memset(q, 0, sizeof(RegimeParams))
        q.rv_period = clean["rv_period"]
        q.history = clean["history"]
        q.min_history = clean["min_history"]
        q.adx_period = clean["adx_period"]
        q.ema_period = clean["ema_period"]
        q.slope_bars = clean["slope_bars"]
        q.sqrt_ppy = sqrt(<double>clean["periods_per_year"])
        q.ema_k = 2.0 / (<double>q.ema_period + 1.0)
        q.low = clean["low"]
        q.high = clean["high"]
        q.extreme = clean["extreme"]
        band = clean["band"]         # up/down indexed by VolRegime (NORMAL 2, HIGH 3, EXTREME 4)
        q.up[2] = q.low + band
        q.up[3] = q.high + band
        q.up[4] = min(q.extreme + band, 1.0)
        q.down[1] = q.low - band
        q.down[2] = q.high - band
        q.down[3] = q.extreme - band
        q.adx_enter = clean["adx_enter"]
        q.adx_exit = clean["adx_exit"]
        self.params = clean
        self.n_bar_specs = n_bar_specs
        self.dstride = D_RINGS + q.rv_period + q.history + q.slope_bars
        self.istride = ISTRIDE
        self.out = OutputBuffer(REGIME_DTYPE)
        self.changes = OutputBuffer(REGIME_DTYPE, 64)


    @property
    def dtype(self):
        return REGIME_DTYPE

    cdef int vol_regime_of(self, uint32_t iid, uint32_t spec) noexcept nogil:
        """The current VolRegime of (iid, spec); VOL_UNKNOWN when never seen or out of range."""
        if iid >= self.n_instruments or spec >= self.n_bar_specs:
            return VOL_UNKNOWN
        return <int>self.istate[(<uint64_t>iid * self.n_bar_specs + spec) * self.istride + I_VOL]

    cdef int trend_regime_of(self, uint32_t iid, uint32_t spec) noexcept nogil:
        """The current TrendRegime of (iid, spec); TREND_UNKNOWN when never seen or out of range."""
        if iid >= self.n_instruments or spec >= self.n_bar_specs:
            return TREND_UNKNOWN
        return <int>self.istate[(<uint64_t>iid * self.n_bar_specs + spec) * self.istride + I_TREND]

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        cdef const RegimeParams* q = &self.p
        cdef uint32_t iid = bar.instrument_id
        cdef double* d
        cdef int64_t* s
        cdef double* hist
        cdef double* ering
        cdef double rv, pct, adx, ema, slope
        cdef int64_t i, count, le, hn
        cdef int vol, trend, old_vol, old_trend
        cdef uint8_t changed = 0
        cdef RegimeRow* row
        if self.slot_of(bar, &d, &s) != 0:
            return
        old_vol = <int>s[I_VOL]
        old_trend = <int>s[I_TREND]
        vol = old_vol
        trend = old_trend
        if s[I_BARS] == 0:                       # a new slot: no values yet
            d[D_LAST] = NAN
            d[D_LAST + 1] = NAN
            d[D_LAST + 2] = NAN
            d[D_LAST + 3] = NAN
        if isfinite(bar.high) and isfinite(bar.low) and isfinite(bar.close) and bar.close > 0:
            # volatility (rv_step counts the bars in s[I_BARS])
            hist = d + D_RINGS + q.rv_period
            pct = NAN
            rv = rv_step(bar.close, q.rv_period, q.sqrt_ppy, d + D_PREV, d + D_RINGS, s + I_BARS, s + I_RPOS)
            if rv == rv:
                hn = q.history
                hist[s[I_HPOS]] = rv
                s[I_HPOS] = s[I_HPOS] + 1 if s[I_HPOS] + 1 < hn else 0
                if s[I_HCOUNT] < hn:
                    s[I_HCOUNT] += 1
                count = s[I_HCOUNT]
                if count >= q.min_history:
                    le = 0
                    for i in range(count):
                        if hist[i] <= rv:
                            le += 1
                    pct = <double>le / <double>count
                    vol = vol_next(old_vol, pct, q)
            # trend
            adx = adx_step(bar.high, bar.low, bar.close, q.adx_period, d + D_ADX, s + I_ADX)
            ema = ema_push(bar.close, q.ema_period, q.ema_k, d + D_EMA, s + I_EMA)
            slope = NAN
            if ema == ema:
                ering = d + D_RINGS + q.rv_period + q.history
                if s[I_ECOUNT] >= q.slope_bars:
                    slope = ema - ering[s[I_EPOS]]
                else:
                    s[I_ECOUNT] += 1
                ering[s[I_EPOS]] = ema
                s[I_EPOS] = s[I_EPOS] + 1 if s[I_EPOS] + 1 < q.slope_bars else 0
            if adx == adx and slope == slope:
                trend = trend_next(old_trend, adx, slope, q)
            d[D_LAST] = rv
            d[D_LAST + 1] = pct
            d[D_LAST + 2] = adx
            d[D_LAST + 3] = slope
            s[I_VOL] = vol
            s[I_TREND] = trend
            if vol != old_vol:
                changed |= CHANGED_VOL
            if trend != old_trend:
                changed |= CHANGED_TREND
        row = <RegimeRow*>self.out.push()
        row.offset = bar.offset
        row.instrument_id = iid
        row.spec = bar.spec
        row.ts_end = bar.ts_end
        row.rv = d[D_LAST]
        row.rv_percentile = d[D_LAST + 1]
        row.vol_regime = <uint8_t>vol
        row.trend_regime = <uint8_t>trend
        row.adx = d[D_LAST + 2]
        row.ema_slope = d[D_LAST + 3]
        row.changed = changed
        if changed:
            memcpy(self.changes.push(), row, sizeof(RegimeRow))
        self.next_offset = bar.offset + 1
        self.now = bar.ts_end
        self.events += 1

    def outputs(self):
        return [("regimes", self.out), ("regime_changes", self.changes)]

    def _layout(self):
        q = self.params
        return _LAYOUT.pack(self.n_bar_specs, q["rv_period"], q["history"], q["min_history"], q["adx_period"],
                            q["ema_period"], q["slope_bars"], self.dstride, q["periods_per_year"], q["low"],
                            q["high"], q["extreme"], q["band"], q["adx_enter"], q["adx_exit"])

    def state_parts(self):
        """[layout, doubles, int64s]: the slots of the n_instruments instruments, raw little-endian."""
        return [self._layout(), *self.slot_parts()]

    def load_state_parts(self, parts):
        if len(parts) != 3:
            raise SnapshotError(f"reducer '{self.name}': snapshot has {len(parts)} state parts, this build 3")
        if bytes(parts[0]) != self._layout():
            raise SnapshotError(f"reducer '{self.name}': snapshot state layout differs from this "
                                f"configuration's (bar specs or regime parameters)")
        self.check_slot_parts(parts[1], parts[2])
        slots = <Py_ssize_t>self.n_instruments * self.n_bar_specs
        ints = np.frombuffer(bytes(parts[2]), dtype="<i8").reshape(slots, ISTRIDE)
        q = self.params
        for col, name, high in ((I_BARS, "bars", None), (I_RPOS, "returns ring position", q["rv_period"] - 1),
                                (I_HCOUNT, "history count", q["history"]),
                                (I_HPOS, "history ring position", q["history"] - 1), (I_ADX, "ADX bars", None),
                                (I_EMA, "EMA bars", None), (I_EPOS, "EMA ring position", q["slope_bars"] - 1),
                                (I_ECOUNT, "EMA ring count", q["slope_bars"]), (I_VOL, "vol regime", VOL_EXTREME),
                                (I_TREND, "trend regime", TREND_RANGE)):
            values = ints[:, col]
            if values.size and (values.min() < 0 or (high is not None and values.max() > high)):
                bad = int(values[(values < 0) | (values > (high if high is not None else values.max()))][0])
                raise SnapshotError(f"reducer '{self.name}': snapshot {name} = {bad} must be in "
                                    f"[0, {high if high is not None else 'inf'}] (damaged state)")
        self.load_slot_parts(parts[1], parts[2])
