"""Composite market regime (risk-on / neutral / risk-off) of one market, on its index's closed bars.

The MarketRegimeReducer is a BarListener. On every closed bar of the index instrument `index_id` and bar
spec `spec` it reads the CURRENT state of the upstream reducers through their nogil accessors:

    vol   = regimes.vol_regime_of(index_id, spec)     VolRegime, 0 when unknown
    trend = regimes.trend_regime_of(index_id, spec)   TrendRegime, 0 when unknown
    pc    = bocpd.p_change_of(index_id, spec)         NaN before the first return
    flow  = risk_flow.current_value()                 NaN before any component return

Ordering (required): in the BarFanout the market regime reducer must come AFTER the RegimeReducer, the
BocpdReducer and the RiskFlowReducer it reads, so that on an index bar it sees their update for that
same bar (the fan-out calls its listeners in a fixed order, so this is deterministic live and in
replay). feed_listener(fanout, bars) drives a BarFanout from BAR_FIELDS rows (tests, notebooks).

Rule (thresholds flow_threshold = 0.005, change_threshold = 0.5 by default), first match wins:
    1. UNKNOWN (0)   if a RegimeReducer is configured and vol == 0 or trend == 0 (warm-up);
    2. RISK_OFF (3)  if vol == EXTREME, or (vol == HIGH and trend == DOWN), or flow < -flow_threshold,
                     or (pc > change_threshold and trend != UP);
    3. RISK_ON (1)   if vol in (LOW, NORMAL) and trend == UP and (flow is NaN or flow >= 0)
                     and (pc is NaN or pc <= change_threshold);
    4. NEUTRAL (2)   otherwise.
Degradation with missing inputs (a reducer given as None, or a value not available yet):
    * regimes None: vol = trend = 0 ("unavailable", rule 1 does not apply): RISK_ON is impossible (it
      needs trend UP); RISK_OFF comes only from the flow or from pc > change_threshold (an unavailable
      trend is "not UP"); otherwise NEUTRAL.
    * bocpd None, or pc NaN: the p_change clause of RISK_OFF never fires and pc does not block RISK_ON.
    * risk_flow None, or flow NaN: the flow clause of RISK_OFF never fires and flow does not block RISK_ON.
    With no reducer at all every row is NEUTRAL.

Outputs
    "market_regime": one MARKET_REGIME_FIELDS row per index bar, with the inputs (vol, trend, p_change,
    flow) that gave the regime; "market_regime_changes": the same row again when the regime differs
    from the previous index bar's (changed = 1; the initial regime is UNKNOWN, so leaving it counts),
    i.e. the derived change records with their causes. Bars of other instruments or specs produce
    nothing. The reducer's own state is two int64s (the current regime, index bars seen); the upstream
    reducers snapshot themselves.
"""

import struct

import numpy as np

from libc.math cimport NAN, isfinite
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy
from argus.kernels.bars cimport BarOut, BarListener
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.reducer cimport Reducer
from argus.kernels.regimes cimport RegimeReducer, VOL_LOW, VOL_NORMAL, VOL_HIGH, VOL_EXTREME, TREND_UP, \
    TREND_DOWN
from argus.kernels.bocpd cimport BocpdReducer
from argus.kernels.riskflow cimport RiskFlowReducer

from argus.kernels.bars import BAR_FIELDS
from argus.kernels.reducer import SnapshotError

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
MAX_ID = 0xFFFFFFFE
MARKET_REGIME_NAMES = ("unknown", "risk_on", "neutral", "risk_off")

#: numpy description of MarketRegimeRow (the rows of "market_regime" and "market_regime_changes").
MARKET_REGIME_FIELDS = (
    ("offset", "<u8"),
    ("ts_end", "<i8"),
    ("regime", "u1"),
    ("changed", "u1"),
    ("vol_regime", "u1"),
    ("trend_regime", "u1"),
    ("instrument_id", "<u4"),
    ("p_change", "<f8"),
    ("flow", "<f8"),
)
MARKET_REGIME_DTYPE = np.dtype(list(MARKET_REGIME_FIELDS))
_LAYOUT = struct.Struct("<III2d3B")


def market_regime_layout_info():
    """Size and field offsets of MarketRegimeRow, for the layout check against MARKET_REGIME_FIELDS."""
    cdef MarketRegimeRow r
    cdef size_t base = <size_t>&r
    return sizeof(MarketRegimeRow), {
        "offset": <size_t>&r.offset - base, "ts_end": <size_t>&r.ts_end - base, "regime": <size_t>&r.regime - base,
        "changed": <size_t>&r.changed - base, "vol_regime": <size_t>&r.vol_regime - base,
        "trend_regime": <size_t>&r.trend_regime - base, "instrument_id": <size_t>&r.instrument_id - base,
        "p_change": <size_t>&r.p_change - base, "flow": <size_t>&r.flow - base,
    }


def check_market_regime_layout():
    """Raise AssertionError unless MARKET_REGIME_FIELDS describes MarketRegimeRow exactly."""
    size, offsets = market_regime_layout_info()
    if MARKET_REGIME_DTYPE.itemsize != size or size % 8:
        raise AssertionError(f"MARKET_REGIME_FIELDS = {MARKET_REGIME_DTYPE.itemsize} bytes, MarketRegimeRow = "
                             f"{size} (multiple of 8)")
    for name in MARKET_REGIME_DTYPE.names:
        if MARKET_REGIME_DTYPE.fields[name][1] != offsets[name]:
            raise AssertionError(f"MARKET_REGIME_FIELDS '{name}' at {MARKET_REGIME_DTYPE.fields[name][1]}, "
                                 f"MarketRegimeRow at {offsets[name]}")


check_market_regime_layout()


def _bad(str field, value, str rule):
    return ValueError(f"market_regime: field '{field}' = {value!r} must be {rule}")


cdef inline int classify(bint has_regimes, int vol, int trend, double pc, double flow, double flow_threshold,
                         double change_threshold) noexcept nogil:
    # The rule of the module docstring (NaN comparisons are false).
    if has_regimes and (vol == 0 or trend == 0):
        return MARKET_UNKNOWN
    if vol == VOL_EXTREME or (vol == VOL_HIGH and trend == TREND_DOWN) or flow < -flow_threshold \
            or (pc > change_threshold and trend != TREND_UP):
        return MARKET_RISK_OFF
    if (vol == VOL_LOW or vol == VOL_NORMAL) and trend == TREND_UP and not (flow < 0.0) \
            and not (pc > change_threshold):
        return MARKET_RISK_ON
    return MARKET_NEUTRAL


def feed_listener(BarListener listener, bars):
    """Call listener.on_bar_closed for each row of `bars` (BAR_FIELDS), in order, e.g. to drive a
    BarFanout [regimes, bocpd, risk flow, market regime] without a bar reducer; then its _check()."""
    cdef Py_ssize_t i, n
    cdef const uint8_t[::1] raw
    cdef const uint8_t* base
    arr = np.asarray(bars)
    if arr.dtype != BAR_DTYPE:
        raise ValueError(f"bars dtype = {arr.dtype} must be the BAR_FIELDS dtype (argus.kernels.bars)")
    arr = np.ascontiguousarray(arr.reshape(-1))
    n = arr.shape[0]
    if n:
        raw = arr.view(np.uint8)
        base = &raw[0]
        with nogil:
            for i in range(n):
                listener.on_bar_closed(<const BarOut*>(base + i * sizeof(BarOut)))
    listener._check()


cdef class MarketRegimeReducer(BarListener):
    """MarketRegimeReducer(name, config_hash, n_bar_specs, index_id, spec, regimes=None, bocpd=None,
    risk_flow=None, flow_threshold=0.005, change_threshold=0.5): the composite regime of the module
    docstring. Place it AFTER the reducers it reads in the BarFanout."""

    def __init__(self, str name, bytes config_hash, int n_bar_specs, int index_id, int spec,
                 RegimeReducer regimes=None, BocpdReducer bocpd=None, RiskFlowReducer risk_flow=None,
                 double flow_threshold=0.005, double change_threshold=0.5):
        Reducer.__init__(self, name, config_hash)
        if self.out is not None:
            raise RuntimeError("MarketRegimeReducer.__init__ called twice")
        if n_bar_specs < 1:
            raise _bad("n_bar_specs", n_bar_specs, "an integer >= 1")
        if not 0 <= index_id <= MAX_ID:
            raise _bad("index_id", index_id, f"an instrument id in [0, {MAX_ID}]")
        if not 0 <= spec < n_bar_specs:
            raise _bad("spec", spec, f"a bar spec index in [0, n_bar_specs = {n_bar_specs})")
        if regimes is not None and spec >= regimes.n_bar_specs:
            raise _bad("spec", spec, f"< the regimes reducer's n_bar_specs = {regimes.n_bar_specs}")
        if bocpd is not None and spec >= bocpd.n_bar_specs:
            raise _bad("spec", spec, f"< the bocpd reducer's n_bar_specs = {bocpd.n_bar_specs}")
        if not (isfinite(flow_threshold) and flow_threshold >= 0.0):
            raise _bad("flow_threshold", flow_threshold, "a finite number >= 0")
        if not (isfinite(change_threshold) and 0.0 <= change_threshold <= 1.0):
            raise _bad("change_threshold", change_threshold, "a probability in [0, 1]")
        self.n_bar_specs = n_bar_specs
        self.index_id = index_id
        self.spec = spec
        self.flow_threshold = flow_threshold
        self.change_threshold = change_threshold
        self.regimes = regimes
        self.bocpd = bocpd
        self.risk_flow = risk_flow
        self.has_regimes = regimes is not None
        self.has_bocpd = bocpd is not None
        self.has_flow = risk_flow is not None
        self.state[0] = MARKET_UNKNOWN
        self.state[1] = 0
        self.out = OutputBuffer(MARKET_REGIME_DTYPE)
        self.changes = OutputBuffer(MARKET_REGIME_DTYPE, 64)

    @property
    def dtype(self):
        return MARKET_REGIME_DTYPE

    @property
    def regime(self) -> int:
        """The current MarketRegime (0 before the first index bar)."""
        return self.state[0]

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil:
        cdef int vol = 0, trend = 0, regime
        cdef double pc = NAN, flow = NAN
        cdef MarketRegimeRow* row
        if self.failed:
            return
        if bar.spec >= self.n_bar_specs:
            self.bad_spec = True
            self.bad_spec_value = bar.spec
            self.failed = True
            return
        self.next_offset = bar.offset + 1
        self.now = bar.ts_end
        self.events += 1
        if bar.instrument_id != self.index_id or bar.spec != self.spec:
            return
        if self.has_regimes:
            vol = self.regimes.vol_regime_of(self.index_id, self.spec)
            trend = self.regimes.trend_regime_of(self.index_id, self.spec)
        if self.has_bocpd:
            pc = self.bocpd.p_change_of(self.index_id, self.spec)
        if self.has_flow:
            flow = self.risk_flow.current_value()
        regime = classify(self.has_regimes, vol, trend, pc, flow, self.flow_threshold, self.change_threshold)
        row = <MarketRegimeRow*>self.out.push()
        row.offset = bar.offset
        row.ts_end = bar.ts_end
        row.regime = <uint8_t>regime
        row.changed = 1 if regime != self.state[0] else 0
        row.vol_regime = <uint8_t>vol
        row.trend_regime = <uint8_t>trend
        row.instrument_id = self.index_id
        row.p_change = pc
        row.flow = flow
        self.state[0] = regime
        self.state[1] += 1
        if row.changed:
            memcpy(self.changes.push(), row, sizeof(MarketRegimeRow))

    def _check(self):
        if self.bad_spec:
            raise ValueError(f"reducer '{self.name}': bar spec = {self.bad_spec_value} must be < "
                             f"n_bar_specs = {self.n_bar_specs}; the reducer stopped and must be rebuilt")
        Reducer._check(self)

    def outputs(self):
        return [("market_regime", self.out), ("market_regime_changes", self.changes)]

    def _layout(self):
        return _LAYOUT.pack(self.n_bar_specs, self.index_id, self.spec, self.flow_threshold, self.change_threshold,
                            self.has_regimes, self.has_bocpd, self.has_flow)

    def state_parts(self):
        """[layout, int64s (current regime, index bars seen)]: only this reducer's own state."""
        return [self._layout(), struct.pack("<2q", self.state[0], self.state[1])]

    def load_state_parts(self, parts):
        if len(parts) != 2:
            raise SnapshotError(f"reducer '{self.name}': snapshot has {len(parts)} state parts, this build 2")
        if bytes(parts[0]) != self._layout():
            raise SnapshotError(f"reducer '{self.name}': snapshot state layout differs from this "
                                f"configuration's (index, spec, thresholds or inputs)")
        if len(parts[1]) != 16:
            raise SnapshotError(f"reducer '{self.name}': snapshot state = {len(parts[1])} bytes must be 16")
        regime, seen = struct.unpack("<2q", bytes(parts[1]))
        if not MARKET_UNKNOWN <= regime <= MARKET_RISK_OFF or seen < 0:
            raise SnapshotError(f"reducer '{self.name}': snapshot regime = {regime}, bars = {seen} must be in "
                                f"[0, 3] and >= 0 (damaged state)")
        self.state[0] = regime
        self.state[1] = seen
        self.bad_spec = False
        self.failed = False
