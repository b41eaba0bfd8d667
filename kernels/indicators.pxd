# Technical indicators on closed bars (DESIGN.md §5): SMA, EMA, RSI, MACD, ATR, Bollinger, ADX, session
# VWAP, realized volatility, with TA-Lib's definitions and warm-up. Fed by the bar reducer through
# BarListener.on_bar_closed; state per (instrument, bar spec) in flat C arrays.
from libc.stdint cimport int64_t, uint32_t, uint64_t
from argus.kernels.bars cimport BarOut, SlottedListener
from argus.kernels.outputs cimport OutputBuffer

cdef enum IndicatorKind:
    IND_SMA = 1       # simple moving average (TA-Lib SMA)
    IND_EMA = 2       # exponential moving average seeded with the SMA of the first n (TA-Lib EMA)
    IND_RSI = 3       # Wilder's relative strength index (TA-Lib RSI)
    IND_MACD = 4      # Appel's MACD, signal and histogram (TA-Lib MACD)
    IND_ATR = 5       # Wilder's average true range (TA-Lib ATR)
    IND_BBANDS = 6    # Bollinger bands: SMA middle, population standard deviation (TA-Lib BBANDS, SMA)
    IND_ADX = 7       # Wilder's average directional index (TA-Lib ADX)
    IND_VWAP = 8      # session-anchored VWAP of the bars' vwap weighted by volume
    IND_RV = 9        # realized volatility: sample std of n log returns * sqrt(periods_per_year)

# One configured indicator: its parameters and where its state and outputs live.
cdef struct IndSpec:
    int kind            # IndicatorKind
    int64_t p1          # period (MACD: fast)
    int64_t p2          # MACD: slow
    int64_t p3          # MACD: signal
    double f1           # BBANDS: nbdev; RV: sqrt(periods_per_year)
    double k1           # EMA: 2/(n+1); MACD: slow 2/(slow+1)
    double k2           # MACD: fast 2/(fast+1)
    double k3           # MACD: signal 2/(signal+1)
    Py_ssize_t doff     # first double of its state inside a slot
    Py_ssize_t ioff     # first int64 of its state inside a slot
    Py_ssize_t col      # first output column

# The fixed head of an output row; the f8 columns follow it.
cdef struct IndRowHead:
    uint64_t offset         # log offset of the bar (BarOut.offset)
    uint32_t instrument_id
    uint32_t spec           # bar spec index
    int64_t ts_end          # bar end (BarOut.ts_end)

cdef class IndicatorReducer(SlottedListener):
    cdef IndSpec* ind                 # n_ind configured indicators
    cdef Py_ssize_t n_ind
    cdef Py_ssize_t n_columns         # f8 columns per output row
    cdef OutputBuffer out             # the "indicators" output
    cdef readonly object dtype        # numpy dtype of an output row
    cdef readonly tuple columns       # names of the f8 columns, in spec order
    cdef readonly tuple specs         # the configured specs (dicts), in order

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil
