# Market regimes on closed bars (DESIGN.md §5): a volatility regime from the percentile rank of realized
# volatility in its own trailing history, and a trend regime from Wilder's ADX and the slope of an EMA,
# both with hysteresis. Fed by the bar reducer through BarListener.on_bar_closed; state per
# (instrument, bar spec) in flat C arrays. The exact rules are in regimes.pyx's module docstring.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from argus.kernels.bars cimport BarOut, SlottedListener
from argus.kernels.outputs cimport OutputBuffer

cpdef enum VolRegime:
    VOL_UNKNOWN = 0     # warm-up: fewer than min_history rv values
    VOL_LOW = 1
    VOL_NORMAL = 2
    VOL_HIGH = 3
    VOL_EXTREME = 4

cpdef enum TrendRegime:
    TREND_UNKNOWN = 0   # warm-up: no ADX or no EMA slope yet
    TREND_UP = 1
    TREND_DOWN = 2
    TREND_RANGE = 3

# Bits of RegimeRow.changed.
cpdef enum RegimeChanged:
    CHANGED_VOL = 1
    CHANGED_TREND = 2

# One output row ("regimes" and "regime_changes"). Declared for numpy as REGIME_FIELDS in regimes.pyx;
# regime_layout_info() and a test check both. 72 bytes, 8-byte aligned; pads are zero (rows are zeroed).
cdef struct RegimeRow:
    uint64_t offset         # log offset of the bar (BarOut.offset)
    uint32_t instrument_id
    uint32_t spec           # bar spec index
    int64_t ts_end          # bar end (BarOut.ts_end)
    double rv               # realized volatility (NaN during warm-up)
    double rv_percentile    # rank of rv in its trailing history (NaN until min_history values)
    uint8_t vol_regime      # VolRegime
    uint8_t trend_regime    # TrendRegime
    uint8_t _pad0[6]
    double adx              # Wilder's ADX (NaN during warm-up)
    double ema_slope        # ema_t - ema_{t - slope_bars} (NaN during warm-up)
    uint8_t changed         # RegimeChanged bits
    uint8_t _pad1[7]

# The validated parameters, as the hot path uses them.
cdef struct RegimeParams:
    int64_t rv_period       # log returns in the realized volatility
    int64_t history         # rv values in the percentile history (a ring)
    int64_t min_history     # rv values needed before a vol regime is given
    int64_t adx_period
    int64_t ema_period
    int64_t slope_bars
    double sqrt_ppy         # sqrt(periods_per_year)
    double ema_k            # 2 / (ema_period + 1)
    double low              # percentile zone boundaries
    double high
    double extreme
    double up[5]            # up[r]: a percentile >= up[r] enters regime r from a lower regime
    double down[5]          # down[r]: a percentile <= down[r] enters regime r from a higher regime
    double adx_enter
    double adx_exit

cdef class RegimeReducer(SlottedListener):
    cdef RegimeParams p
    cdef OutputBuffer out             # "regimes": one row per closed bar
    cdef OutputBuffer changes         # "regime_changes": the rows with changed != 0
    cdef readonly dict params         # the validated parameters (all of them, defaults filled)

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil
    # Read-only accessors for downstream listeners (market_regime): the slot's current regime,
    # VOL_UNKNOWN / TREND_UNKNOWN (0) for an (instrument, spec) never seen or out of range.
    cdef int vol_regime_of(self, uint32_t iid, uint32_t spec) noexcept nogil
    cdef int trend_regime_of(self, uint32_t iid, uint32_t spec) noexcept nogil
