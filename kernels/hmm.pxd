# The forward filter of a Gaussian hidden Markov model on the log returns of closed bars, per
# (instrument, bar spec). Parameters come from a research fit (argus.analytics.hmm) recorded in the log
# and scheduled with HmmReducer.set_params; state per (instrument, bar spec) slot in flat C arrays.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from argus.kernels.bars cimport BarOut, SlottedListener
from argus.kernels.outputs cimport OutputBuffer

cdef enum:
    HMM_MAX_STATES = 8      # states per model
    HMM_MAX_SETS = 16       # parameter sets one reducer can hold (scheduled with set_params)

# One output row ("hmm"). Declared for numpy as HMM_FIELDS in hmm.pyx; a test checks both. 112 bytes.
cdef struct HmmOut:
    uint64_t offset         # log offset of the bar (BarOut.offset)
    uint32_t instrument_id
    uint32_t spec           # bar spec index
    int64_t ts_end          # bar end (BarOut.ts_end)
    uint8_t state           # argmax of prob (the lowest index on ties)
    uint8_t n_states        # states of the parameter set used
    uint8_t _pad[6]         # zero
    double log_return       # log(close / previous close)
    double prob[8]          # filtered P(state_t = j | returns so far); NaN for j >= n_states
    uint64_t params_offset  # offset of the parameter set used (as given to set_params)

# One parameter set (a copy of the validated JSON, plus tabulated constants).
cdef struct HmmSet:
    uint64_t offset         # takes effect for bars with offset >= this
    int64_t n_states
    double startprob[8]
    double transmat[64]     # row-major, transmat[i * 8 + j] = P(j | i)
    double means[8]
    double variances[8]
    double lognorm[8]       # -1/2 log(2 pi var_j)

cdef class HmmReducer(SlottedListener):
    cdef HmmSet sets[16]                # HMM_MAX_SETS, in increasing offset order
    cdef int n_sets
    cdef list set_json                  # [(offset, canonical json)] of the sets, for snapshots and tools
    cdef OutputBuffer out               # the "hmm" output

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil
    cdef void step(self, const HmmSet* p, double x, double* alpha, bint first, HmmOut* row) noexcept nogil
