# Bayesian online change-point detection (Adams & MacKay 2007, "Bayesian Online Changepoint Detection",
# arXiv:0710.3742) on the log returns of closed bars, per (instrument, bar spec). Fed by the bar reducer
# through BarListener.on_bar_closed; state per (instrument, bar spec) slot in flat C arrays.
from libc.stdint cimport int64_t, uint32_t, uint64_t
from argus.kernels.bars cimport BarOut, SlottedListener
from argus.kernels.outputs cimport OutputBuffer

# One output row ("bocpd"). Declared for numpy as BOCPD_FIELDS in bocpd.pyx; a test checks both.
cdef struct BocpdOut:
    uint64_t offset         # log offset of the bar (BarOut.offset)
    uint32_t instrument_id
    uint32_t spec           # bar spec index
    int64_t ts_end          # bar end (BarOut.ts_end)
    double p_change         # P(run length < CHANGE_WINDOW | returns so far); NaN when no return was used
    int64_t map_run_length  # argmax of the run-length posterior; -1 when no return was used
    double log_return       # log(close / previous close); NaN for the first bar or an unusable close

cdef class BocpdReducer(SlottedListener):
    cdef readonly double hazard_lambda  # expected run length; constant hazard h = 1 / hazard_lambda
    cdef readonly int64_t max_run       # R_max: run lengths 0..R_max are tracked (R_max = ">= R_max")
    cdef readonly double mu0, kappa0, alpha0, beta0   # Normal-Gamma prior
    cdef double log_h                   # log(h)
    cdef double log_1mh                 # log(1 - h)
    cdef double* lconst                 # per run length r: lgamma(a+1/2) - lgamma(a) - 1/2 log(2 pi (k+1)/k)
    cdef double* apow                   # per r: a_r + 1/2 (the Student-t exponent)
    cdef double* qfac                   # per r: k_r / (2 (k_r + 1))
    cdef double* kap                    # per r: k_r = kappa0 + r
    cdef OutputBuffer out               # the "bocpd" output

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil
    cdef void step(self, double x, double* d, int64_t* s, BocpdOut* row) noexcept nogil
    # Read-only accessor for downstream listeners (market_regime): P(run length < CHANGE_WINDOW) of the
    # slot's current posterior, as the last row with a return reported it; NaN before any return or
    # for an (instrument, spec) never seen or out of range.
    cdef double p_change_of(self, uint32_t iid, uint32_t spec) noexcept nogil
