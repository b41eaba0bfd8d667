# Outcomes of closed bars (DESIGN.md §5): forward return, maximum run-up and maximum drawdown over
# horizons of N bars and to the end of the session, emitted only when the window has closed (no
# lookahead). Fed by the bar reducer through BarListener.on_bar_closed; state per (instrument, bar spec)
# in flat C arrays.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from argus.kernels.bars cimport BarOut, BarListener
from argus.kernels.outputs cimport OutputBuffer

cdef enum OutcomeStatus:
    OUTCOME_COMPLETE = 1     # the window closed, no bar in it (nor the reference) carries FLAG_GAP
    OUTCOME_GAP = 2          # the window closed, some bar in it or the reference carries FLAG_GAP
    OUTCOME_INCOMPLETE = 3   # pending() only: the window is still open at the end of the log
    OUTCOME_TRUNCATED = 4    # session end only: the session outlasted session_cap bars after the reference

# One output row. Declared for numpy as OUTCOME_FIELDS in outcomes.pyx; a test checks both. 72 bytes.
cdef struct OutcomeRow:
    uint64_t offset          # log offset of the bar whose close completed the window
    uint32_t instrument_id
    uint32_t spec            # bar spec index
    uint64_t ref_offset      # offset of the reference bar
    int64_t ref_ts_end       # ts_end of the reference bar
    int32_t horizon          # bars; 0 = session end
    uint8_t status           # OutcomeStatus
    uint8_t _pad[3]
    double forward_return    # close at the horizon / reference close - 1
    double max_runup         # max high over the window / reference close - 1
    double max_drawdown      # min low over the window / reference close - 1
    int64_t end_ts           # ts_end of the completing bar

# One bar of the per-slot ring (the last max(horizons) + 1 bars). 48 bytes, no padding.
cdef struct RingBar:
    double close
    double high
    double low
    int64_t ts_end
    uint64_t offset
    uint32_t flags
    uint32_t _reserved

# One bar of the current session of a slot (the session-end references and windows). 56 bytes.
cdef struct SessBar:
    double close
    double high
    double low
    int64_t ts_end
    uint64_t offset
    int64_t seq              # index of the bar among its slot's bars
    uint32_t flags
    uint32_t _reserved       # 0 at rest (scratch while a session completes)

# The fixed state of a slot. 24 bytes.
cdef struct SlotHead:
    int64_t nbars            # bars seen (the seq of the next bar)
    int64_t session          # BarOut.session of the buffered session bars
    int64_t sess_count       # bars in the session buffer (<= session_cap)

cdef class OutcomeReducer(BarListener):
    cdef readonly uint32_t n_bar_specs
    cdef int64_t* hz                  # n_hz horizons (bars), configured order
    cdef Py_ssize_t n_hz
    cdef Py_ssize_t* by_age           # horizon indices, longest first (their references oldest first)
    cdef Py_ssize_t* of_len           # of_len[k] = index of horizon k or -1, k in 0..hmax
    cdef int64_t hmax                 # max(horizons), 0 when none
    cdef int64_t ring_len             # hmax + 1
    cdef readonly bint session_end
    cdef readonly int64_t session_cap
    cdef uint32_t cap                 # instruments the state arrays hold (>= n_instruments)
    cdef SlotHead* heads              # cap * n_bar_specs
    cdef RingBar* ring                # cap * n_bar_specs * ring_len
    cdef SessBar** sess               # cap * n_bar_specs buffers (NULL until used), grown by doubling
    cdef int64_t* sess_alloc          # their capacities
    cdef double* cmax                 # scratch per horizon: window max high, min low, flags
    cdef double* cmin
    cdef uint32_t* cflags
    cdef OutputBuffer out             # the "outcomes" output
    cdef readonly tuple horizons
    cdef bint bad_spec
    cdef uint32_t bad_spec_value

    cdef void on_bar_closed(self, const BarOut* bar) noexcept nogil
    cdef int grow(self, uint32_t n) noexcept nogil
    # Room for n bars in a slot's session buffer (doubling, at most session_cap); 0 on success.
    cdef int reserve(self, uint64_t slot, int64_t n) noexcept nogil
