"""Indicators on closed bars: TA-Lib's definitions and warm-up, one bar at a time.

The IndicatorReducer is a BarListener: the bar reducer calls on_bar_closed() for every bar it emits,
live or in replay, and feed_bars() does the same from an array of BAR_FIELDS rows. Every closed bar
gives one row of the "indicators" output: offset, instrument_id, spec, ts_end, then one f8 per column.
A column is NaN while its indicator warms up (exactly TA-Lib's lookback) and never after.

State lives per (instrument, bar spec) slot in two flat C arrays (doubles and int64s, slot-major); each
indicator owns a fixed stretch of a slot, ring buffers included. The math is in one small helper per
indicator, written to perform TA-Lib's floating point operations in TA-Lib's order, so the values agree
with TA-Lib to rounding (the tests measure it).

Column names and the validated spec dicts come from argus.projections.indicators (the configuration
layer); this module, a layer below, names the columns the same way and a test checks that both agree.
"""

import math
import struct

import numpy as np

from libc.math cimport NAN, fabs, log, sqrt
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy, memset
from argus.kernels.ta_math cimport ema_push, rv_step
from argus.kernels.bars cimport BarOut, SlottedListener
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.reducer cimport Reducer

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
ROW_HEAD_FIELDS = (("offset", "<u8"), ("instrument_id", "<u4"), ("spec", "<u4"), ("ts_end", "<i8"))
MAX_PERIOD = 100000
_LAYOUT = struct.Struct("<IIqqq")

# kind: (parameters in order, IndicatorKind)
_KINDS = {
    "sma": (("period",), IND_SMA),
    "ema": (("period",), IND_EMA),
    "rsi": (("period",), IND_RSI),
    "macd": (("fast", "slow", "signal"), IND_MACD),
    "atr": (("period",), IND_ATR),
    "bbands": (("period", "nbdev"), IND_BBANDS),
    "adx": (("period",), IND_ADX),
    "vwap": ((), IND_VWAP),
    "rv": (("period", "periods_per_year"), IND_RV),
}


def spec_columns(dict spec):
    """Output column names of one (validated) spec; the same rule as argus.projections.indicators."""
    kind = spec["kind"]
    if kind == "macd":
        f, s, g = spec["fast"], spec["slow"], spec["signal"]
        suffix = "" if (f, s, g) == (12, 26, 9) else f"_{f}_{s}_{g}"
        return [f"macd{suffix}", f"macd_signal{suffix}", f"macd_hist{suffix}"]
    if kind == "bbands":
        n = spec["period"]
        return [f"bb_upper_{n}", f"bb_middle_{n}", f"bb_lower_{n}"]
    if kind == "vwap":
        return ["vwap"]
    return [f"{kind}_{spec['period']}"]


def _bad(Py_ssize_t index, str kind, str field, value, str rule):
    return ValueError(f"indicator {index} ({kind}): field '{field}' = {value!r} must be {rule}")


def _int_param(Py_ssize_t index, str kind, dict spec, str field, int64_t low):
    value = spec.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _bad(index, kind, field, value, f"an integer in [{low}, {MAX_PERIOD}]")
    if not low <= value <= MAX_PERIOD:
        raise _bad(index, kind, field, value, f"an integer in [{low}, {MAX_PERIOD}]")
    return int(value)


def _pos_param(Py_ssize_t index, str kind, dict spec, str field):
    value = spec.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise _bad(index, kind, field, value, "a finite number > 0")
    return float(value)


# -- the math: one helper per indicator ----------------------------------------------------------
#
# Each helper gets the bar's values, its parameters, and pointers to its stretch of the slot's state
# (d: doubles, s: int64s, both zeroed for a new slot); it writes its output column(s) at out.
# s[0] always counts the bars the helper has seen.

cdef inline void sma_push(double x, int64_t n, double* d, int64_t* s, double* out) noexcept nogil:
    # TA-Lib SMA: a running total. d[0] is TA-Lib's periodTotal (the last n-1 values), d[1..n] a ring of
    # the last n values, s[1] the ring's write position (after the write: the oldest value).
    cdef double* ring = d + 1
    cdef int64_t pos = s[1]
    cdef double total
    s[0] += 1
    d[0] += x
    ring[pos] = x
    pos += 1
    if pos == n:
        pos = 0
    s[1] = pos
    if s[0] < n:
        out[0] = NAN
        return
    total = d[0]
    d[0] -= ring[pos]          # x[i-n+1] leaves the total
    out[0] = total / <double>n


cdef inline double rsi_push(double x, int64_t n, double* d, int64_t* s) noexcept nogil:
    # Wilder's RSI (1978) as TA-Lib computes it: the first value after n changes, average gain and loss
    # seeded with the simple means of the first n changes, then Wilder smoothing
    # avg = (avg * (n-1) + change) / n. d[0] previous close, d[1] average gain, d[2] average loss.
    cdef double diff, total
    s[0] += 1
    if s[0] == 1:
        d[0] = x
        return NAN
    diff = x - d[0]
    d[0] = x
    if s[0] <= n:                          # changes 1 .. n-1: sums only
        if diff < 0:
            d[2] -= diff
        else:
            d[1] += diff
        return NAN
    if s[0] > n + 1:
        d[2] *= <double>(n - 1)
        d[1] *= <double>(n - 1)
    if diff < 0:
        d[2] -= diff
    else:
        d[1] += diff
    d[2] /= <double>n
    d[1] /= <double>n
    total = d[1] + d[2]
    if total != 0.0:
        return 100.0 * (d[1] / total)
    return 0.0


cdef inline void macd_push(double x, const IndSpec* sp, double* d, int64_t* s, double* out) noexcept nogil:
    # Appel's MACD as TA-Lib computes it: EMA(fast) - EMA(slow), signal = EMA(signal) of MACD, histogram
    # = MACD - signal. TA-Lib seeds both EMAs at bar slow-1 so that they start aligned: the slow EMA with
    # the SMA of bars 0..slow-1, the fast EMA with the SMA of bars slow-fast..slow-1 (not of the first
    # fast bars); the signal EMA with the SMA of the first `signal` MACD values. Lookback slow-1 +
    # signal-1; the MACD column too stays NaN until the signal exists (TA-Lib's output alignment).
    # d[0] slow EMA, d[1] fast EMA, d[2] signal EMA (each first the sum of its seed window).
    cdef int64_t fast = sp.p1, slow = sp.p2, sig = sp.p3, m
    cdef double macd
    s[0] += 1
    if s[0] < slow:
        d[0] += x
        if s[0] > slow - fast:
            d[1] += x
        out[0] = NAN
        out[1] = NAN
        out[2] = NAN
        return
    if s[0] == slow:
        d[0] = (d[0] + x) / <double>slow
        d[1] = (d[1] + x) / <double>fast
    else:
        d[0] = ((x - d[0]) * sp.k1) + d[0]
        d[1] = ((x - d[1]) * sp.k2) + d[1]
    macd = d[1] - d[0]
    m = s[0] - slow + 1                    # MACD values so far
    if m < sig:
        d[2] += macd
        out[0] = NAN
        out[1] = NAN
        out[2] = NAN
        return
    if m == sig:
        d[2] = (d[2] + macd) / <double>sig
    else:
        d[2] = ((macd - d[2]) * sp.k3) + d[2]
    out[0] = macd
    out[1] = d[2]
    out[2] = macd - d[2]


cdef inline double true_range(double high, double low, double prev_close) noexcept nogil:
    # Wilder's true range: the largest of high - low, |prev close - high|, |prev close - low| (TA-Lib order).
    cdef double greatest = high - low
    cdef double v = fabs(prev_close - high)
    if v > greatest:
        greatest = v
    v = fabs(prev_close - low)
    if v > greatest:
        greatest = v
    return greatest


cdef inline double atr_push(const BarOut* bar, int64_t n, double* d, int64_t* s) noexcept nogil:
    # Wilder's ATR (1978) as TA-Lib computes it: the true range exists from the second bar; the first ATR
    # (bar n) is the mean of the first n true ranges, then atr = (atr * (n-1) + tr) / n.
    # d[0] previous close, d[1] sum of the first true ranges, then the ATR.
    cdef double tr
    s[0] += 1
    if s[0] == 1:
        d[0] = bar.close
        return NAN
    tr = true_range(bar.high, bar.low, d[0])
    d[0] = bar.close
    if s[0] <= n:
        d[1] += tr
        return NAN
    if s[0] == n + 1:
        d[1] = (d[1] + tr) / <double>n
    else:
        d[1] *= <double>(n - 1)
        d[1] += tr
        d[1] /= <double>n
    return d[1]


cdef inline void bbands_push(double x, int64_t n, double nbdev, double* d, int64_t* s,
                             double* out) noexcept nogil:
    # Bollinger bands (Bollinger, 1983; TA-Lib BBANDS with an SMA): middle = SMA(n), upper/lower =
    # middle +/- nbdev * the population standard deviation of the window around the middle, computed in
    # two passes over the ring (as stable as TA-Lib's current code, which agrees with it to rounding).
    # Same state as sma_push: d[0] TA-Lib's running total, d[1..n] the ring, s[1] its position.
    cdef double* ring = d + 1
    cdef double middle, var = 0.0, dev, band
    cdef int64_t i
    sma_push(x, n, d, s, &middle)
    if s[0] < n:
        out[0] = NAN
        out[1] = NAN
        out[2] = NAN
        return
    for i in range(s[1], n):               # oldest to newest: a fixed order
        dev = ring[i] - middle
        var += dev * dev
    for i in range(0, s[1]):
        dev = ring[i] - middle
        var += dev * dev
    band = sqrt(var / <double>n) * nbdev
    out[0] = middle + band
    out[1] = middle
    out[2] = middle - band


cdef inline double adx_push(const BarOut* bar, int64_t n, double* d, int64_t* s) noexcept nogil:
    # Wilder's ADX (1978) as TA-Lib computes it (lookback 2n-1): +DM/-DM and TR summed over bars 1..n-1,
    # then Wilder-smoothed (v = v - v/n + new) from bar n; DX = 100 |+DI - -DI| / (+DI + -DI); the first
    # ADX (bar 2n-1) is the mean of the DX of bars n..2n-1, then adx = (adx * (n-1) + dx) / n. A bar
    # whose smoothed TR or DI sum is zero adds no DX (and keeps the ADX), as in TA-Lib.
    # d: 0 prev high, 1 prev low, 2 prev close, 3 +DM, 4 -DM, 5 TR, 6 sum of DX then the ADX.
    cdef double diff_p, diff_m, tr, minus_di, plus_di, di_sum, dx
    cdef double nd = <double>n
    cdef int64_t k
    s[0] += 1
    k = s[0] - 1                           # index of this bar
    if k == 0:
        d[0] = bar.high
        d[1] = bar.low
        d[2] = bar.close
        return NAN
    diff_p = bar.high - d[0]
    d[0] = bar.high
    diff_m = d[1] - bar.low
    d[1] = bar.low
    if k >= n:
        d[4] -= d[4] / nd
        d[3] -= d[3] / nd
    if diff_m > 0 and diff_p < diff_m:
        d[4] += diff_m
    elif diff_p > 0 and diff_p > diff_m:
        d[3] += diff_p
    tr = true_range(bar.high, bar.low, d[2])
    d[2] = bar.close
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


cdef inline int64_t utc_day_start(int64_t ts) noexcept nogil:
    # The UTC midnight (ns) at or before ts (floor division, right for times before 1970 too).
    cdef int64_t day = 86400000000000
    cdef int64_t q = ts / day                 # C division (cdivision): truncates toward zero
    if q * day > ts:
        q -= 1
    return q * day


cdef inline double vwap_push(const BarOut* bar, double* d, int64_t* s) noexcept nogil:
    # Session-anchored VWAP: sum(bar.vwap * bar.volume) / sum(bar.volume) over the bars since the
    # session (BarOut.session; the UTC day of ts_start when it is 0) changed. Until the session has
    # traded, the bar's close. d[0] sum of vwap*volume, d[1] sum of volume; s[1] the session anchor.
    cdef int64_t anchor = bar.session if bar.session != 0 else utc_day_start(bar.ts_start)
    s[0] += 1
    if s[0] == 1 or anchor != s[1]:
        s[1] = anchor
        d[0] = 0.0
        d[1] = 0.0
    if bar.volume > 0:
        d[0] += bar.vwap * bar.volume
        d[1] += bar.volume
    if d[1] > 0:
        return d[0] / d[1]
    return bar.close


cdef inline double rv_push(double x, int64_t n, double sqrt_ppy, double* d, int64_t* s) noexcept nogil:
    # Realized volatility (ta_math.rv_step): d[0] previous close, d[1..n] a ring of log returns,
    # s[0] bars seen, s[1] the ring's write position.
    return rv_step(x, n, sqrt_ppy, d, d + 1, s, s + 1)


cdef class IndicatorReducer(SlottedListener):
    """IndicatorReducer(name, config_hash, specs, n_bar_specs): indicators of closed bars.

    specs: validated spec dicts (argus.projections.indicators.parse_indicators), e.g.
    {"kind": "sma", "period": 20}; n_bar_specs: how many bar specs the bar reducer has (BarOut.spec is
    an index below it). Output "indicators": one row per closed bar, dtype `dtype`, f8 columns `columns`."""

    def __init__(self, str name, bytes config_hash, specs, int n_bar_specs):
        cdef Py_ssize_t i, doff = 0, ioff = 0, col = 0
        cdef IndSpec* sp
        Reducer.__init__(self, name, config_hash)
        if self.ind != NULL:
            raise RuntimeError("IndicatorReducer.__init__ called twice")
        if n_bar_specs < 1:
            raise ValueError(f"n_bar_specs = {n_bar_specs} must be >= 1")
        specs = list(specs)
        if not specs:
            raise ValueError("specs = [] must name at least one indicator")
        parsed = []
        columns = []
        for index, spec in enumerate(specs):
            if not isinstance(spec, dict):
                raise ValueError(f"indicator {index}: {spec!r} must be a dict like {{'kind': 'sma', 'period': 20}}")
            kind = spec.get("kind")
            if kind not in _KINDS:
                raise _bad(index, str(kind), "kind", kind, f"one of {', '.join(_KINDS)}")
            fields, code = _KINDS[kind]
            extra = sorted(set(spec) - set(fields) - {"kind"})
            if extra:
                raise _bad(index, kind, extra[0], spec[extra[0]], f"absent (fields of {kind}: {', '.join(fields) or 'none'})")
            clean = {"kind": kind}
            for field in fields:
                if field in ("nbdev", "periods_per_year"):
                    clean[field] = _pos_param(index, kind, spec, field)
                else:
                    clean[field] = _int_param(index, kind, spec, field, 2 if kind == "rv" else 1)
            if kind == "macd" and clean["fast"] >= clean["slow"]:
                raise _bad(index, kind, "fast", clean["fast"], f"< slow = {clean['slow']}")
            parsed.append((code, clean))
            columns.extend(spec_columns(clean))
        if len(set(columns)) != len(columns):
            dup = next(c for c in columns if columns.count(c) > 1)
            raise ValueError(f"indicator columns must be unique: '{dup}' appears twice (two specs with the same name)")

        self.n_ind = len(parsed)
        self.ind = <IndSpec*>malloc(self.n_ind * sizeof(IndSpec))
        if self.ind == NULL:
            raise MemoryError()
        memset(self.ind, 0, self.n_ind * sizeof(IndSpec))
        for i, (code, clean) in enumerate(parsed):
            sp = &self.ind[i]
            sp.kind = code
            sp.doff = doff
            sp.ioff = ioff
            sp.col = col
            if code == IND_MACD:
                sp.p1 = clean["fast"]
                sp.p2 = clean["slow"]
                sp.p3 = clean["signal"]
                sp.k1 = 2.0 / (<double>sp.p2 + 1.0)
                sp.k2 = 2.0 / (<double>sp.p1 + 1.0)
                sp.k3 = 2.0 / (<double>sp.p3 + 1.0)
            elif code != IND_VWAP:
                sp.p1 = clean["period"]
            if code == IND_EMA:
                sp.k1 = 2.0 / (<double>sp.p1 + 1.0)
            elif code == IND_BBANDS:
                sp.f1 = clean["nbdev"]
            elif code == IND_RV:
                sp.f1 = sqrt(<double>clean["periods_per_year"])
            # state sizes (doubles, int64s) and output columns
            if code == IND_SMA or code == IND_BBANDS:
                doff += 1 + sp.p1
                ioff += 2
            elif code == IND_EMA:
                doff += 1
                ioff += 1
            elif code == IND_RSI or code == IND_MACD:
                doff += 3
                ioff += 1
            elif code == IND_ATR:
                doff += 2
                ioff += 1
            elif code == IND_ADX:
                doff += 7
                ioff += 1
            elif code == IND_VWAP:
                doff += 2
                ioff += 2
            elif code == IND_RV:
                doff += 1 + sp.p1
                ioff += 2
            col += 3 if code == IND_MACD or code == IND_BBANDS else 1
        self.dstride = doff
        self.istride = ioff
        self.n_columns = col
        self.n_bar_specs = n_bar_specs
        self.specs = tuple(clean for _, clean in parsed)
        self.columns = tuple(columns)
        self.dtype = np.dtype(list(ROW_HEAD_FIELDS) + [(c, "<f8") for c in columns])
        if self.dtype.itemsize != sizeof(IndRowHead) + 8 * self.n_columns:
            raise AssertionError("row dtype does not match IndRowHead + f8 columns")
        self.out = OutputBuffer(self.dtype)

    def __dealloc__(self):
        free(self.ind)

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        cdef uint32_t iid = bar.instrument_id
        cdef double* d
        cdef int64_t* s
        cdef uint8_t* row
        cdef IndRowHead* head
        cdef double* cols
        cdef const IndSpec* sp
        cdef Py_ssize_t j
        if self.slot_of(bar, &d, &s) != 0:
            return
        row = <uint8_t*>self.out.push()
        head = <IndRowHead*>row
        head.offset = bar.offset
        head.instrument_id = iid
        head.spec = bar.spec
        head.ts_end = bar.ts_end
        cols = <double*>(row + sizeof(IndRowHead))
        for j in range(self.n_ind):
            sp = &self.ind[j]
            if sp.kind == IND_SMA:
                sma_push(bar.close, sp.p1, d + sp.doff, s + sp.ioff, cols + sp.col)
            elif sp.kind == IND_EMA:
                cols[sp.col] = ema_push(bar.close, sp.p1, sp.k1, d + sp.doff, s + sp.ioff)
            elif sp.kind == IND_RSI:
                cols[sp.col] = rsi_push(bar.close, sp.p1, d + sp.doff, s + sp.ioff)
            elif sp.kind == IND_MACD:
                macd_push(bar.close, sp, d + sp.doff, s + sp.ioff, cols + sp.col)
            elif sp.kind == IND_ATR:
                cols[sp.col] = atr_push(bar, sp.p1, d + sp.doff, s + sp.ioff)
            elif sp.kind == IND_BBANDS:
                bbands_push(bar.close, sp.p1, sp.f1, d + sp.doff, s + sp.ioff, cols + sp.col)
            elif sp.kind == IND_ADX:
                cols[sp.col] = adx_push(bar, sp.p1, d + sp.doff, s + sp.ioff)
            elif sp.kind == IND_VWAP:
                cols[sp.col] = vwap_push(bar, d + sp.doff, s + sp.ioff)
            elif sp.kind == IND_RV:
                cols[sp.col] = rv_push(bar.close, sp.p1, sp.f1, d + sp.doff, s + sp.ioff)
        self.next_offset = bar.offset + 1
        self.now = bar.ts_end
        self.events += 1

    def outputs(self):
        return [("indicators", self.out)]

    def _layout(self):
        return _LAYOUT.pack(self.n_bar_specs, <uint32_t>self.n_ind, self.dstride, self.istride, self.n_columns)

    def state_parts(self):
        """[layout, doubles, int64s]: the slots of the n_instruments instruments, raw little-endian."""
        return [self._layout(), *self.slot_parts()]

    def load_state_parts(self, parts):
        if len(parts) != 3:
            raise SnapshotError(f"reducer '{self.name}': snapshot has {len(parts)} state parts, this build 3")
        if bytes(parts[0]) != self._layout():
            raise SnapshotError(f"reducer '{self.name}': snapshot state layout differs from this "
                                f"configuration's (bar specs, indicators or state sizes)")
        self.load_slot_parts(parts[1], parts[2])
