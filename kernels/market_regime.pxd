# Composite market regime (DESIGN.md §5): risk-on / neutral / risk-off of one market, from its index's
# volatility and trend regimes (RegimeReducer), change-point probability (BocpdReducer) and the global
# risk flow (RiskFlowReducer). A BarListener that reads those reducers' CURRENT state, so it must come
# AFTER them in the BarFanout. The exact rule is in market_regime.pyx's module docstring.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from argus.kernels.bars cimport BarOut, BarListener
from argus.kernels.outputs cimport OutputBuffer
from argus.kernels.regimes cimport RegimeReducer
from argus.kernels.bocpd cimport BocpdReducer
from argus.kernels.riskflow cimport RiskFlowReducer

cpdef enum MarketRegime:
    MARKET_UNKNOWN = 0
    MARKET_RISK_ON = 1
    MARKET_NEUTRAL = 2
    MARKET_RISK_OFF = 3

# One output row ("market_regime" and "market_regime_changes"). Declared for numpy as
# MARKET_REGIME_FIELDS in market_regime.pyx; a layout check compares both. 40 bytes, 8-byte aligned.
cdef struct MarketRegimeRow:
    uint64_t offset         # log offset of the index bar (BarOut.offset)
    int64_t ts_end          # its end (BarOut.ts_end)
    uint8_t regime          # MarketRegime
    uint8_t changed         # 1 when regime differs from the previous index bar's (leaving UNKNOWN counts)
    uint8_t vol_regime      # the inputs that gave it: VolRegime (0 when unknown or unavailable)
    uint8_t trend_regime    # TrendRegime (0 when unknown or unavailable)
    uint32_t instrument_id  # the index instrument
    double p_change         # BOCPD P(change within 5 bars); NaN when unavailable
    double flow             # global risk flow; NaN when unavailable

cdef class MarketRegimeReducer(BarListener):
    cdef readonly uint32_t n_bar_specs
    cdef readonly uint32_t index_id
    cdef readonly uint32_t spec
    cdef readonly double flow_threshold
    cdef readonly double change_threshold
    cdef readonly RegimeReducer regimes     # None: vol and trend unavailable
    cdef readonly BocpdReducer bocpd        # None: p_change unavailable
    cdef readonly RiskFlowReducer risk_flow # None: flow unavailable
    cdef bint has_regimes, has_bocpd, has_flow
    cdef int64_t state[2]                   # current MarketRegime, index bars seen
    cdef OutputBuffer out                   # "market_regime": one row per index bar
    cdef OutputBuffer changes               # "market_regime_changes": the rows with changed != 0
    cdef bint bad_spec
    cdef uint32_t bad_spec_value

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil
