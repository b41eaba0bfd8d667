# Bars-mode simulation of target positions (DESIGN.md §1.5, §7): market orders from targets, filled at
# the next bar's open of their instrument with adverse slippage, cash / positions / equity per bar.
# The arithmetic is argus.replay.execution.CostModel's and argus.replay.backtest._Run's, term for term.
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

# Python's builtin sum() of floats: left to right from 0 (3.11), Neumaier-compensated from 3.12 on.
cdef struct PySum:
    double f                # running sum
    double c                # Neumaier compensation (unused when plain)

cdef class BarSim:
    cdef public double cash               # cash after the bars seen so far
    cdef public double total_commission   # commissions and fees charged so far
    cdef public double total_slippage     # slippage cost of the fills so far (money)
    cdef public int64_t next_order        # id of the next order
    cdef public int64_t n_orders          # orders submitted (accepted or rejected)
    cdef public int64_t n_rejected        # orders rejected by the harness's checks
    cdef public int64_t n_bars            # bars processed
    cdef int n                            # instruments (dense run index 0..n-1)
    cdef double qty, bps, ticks, tick, rate, per_share, cmin, fee, m, leverage, cap2
    cdef bint neumaier                    # emulate Python >= 3.12 sum()
    cdef double[::1] pos                  # signed position per instrument
    cdef double[::1] pending              # signed quantity of the working market order (0 when none)
    cdef double[::1] last                 # last closed bar's close (0 before the first: dict.get default)
    cdef double[::1] mult                 # contract multiplier
    cdef double[::1] wqty                 # signed quantity of the working order
    cdef int64_t[::1] wid                 # id of the working order (0 when none)
    cdef int64_t[::1] wdec                # decision offset of the working order
    cdef int64_t[::1] day                 # day number of the last accepted order; INT64_MIN none
    cdef int64_t[::1] daycount            # orders accepted on that day
    cdef int32_t[::1] active              # instruments with a nonzero position, in index order
    cdef int n_active
    cdef double sum_eq                    # sum(q x last) over `active` at the last bar
    cdef double sum_gr                    # sum(|q| x last x multiplier) over `active` at the last bar
    cdef void _reactive(self) noexcept nogil               # rebuild `active` after a position opened or closed
    cdef double _equity(self) noexcept nogil               # ctx.equity: cash + sum(q x last), nonzero q
    cdef double _gross(self, int sym, double extra) noexcept nogil  # gross exposure with `extra` on `sym`
