# The built-in sma_cross strategy (argus.strategies.sma_cross): targets of every instrument in one pass.
from libc.stdint cimport int32_t, int64_t, uint8_t

cdef class SmaCrossKernel:
    cdef int n                    # instruments (dense run index 0..n-1)
    cdef int fast, slow           # window lengths, fast < slow
    cdef bint allow_short         # a down-cross goes short (-1) instead of flat (0)
    cdef double[:, ::1] ring      # per instrument 2 x slow closes, each written twice (contiguous windows)
    cdef int64_t[::1] seen        # closes seen per instrument
    cdef double[::1] last_nz      # last nonzero fast - slow (or the first one), per instrument
    cdef uint8_t[::1] has_last    # whether last_nz is set
