"""The built-in `sma_cross` strategy: fast/slow SMA crossover targets for every instrument of a block of
closed bars in one nogil pass (the backtest fast path, argus.replay.fast).

The same decisions as argus.strategies.sma_cross.SmaCross.on_bar, to the bit: each average is the
left-to-right sum of the last `fast` (`slow`) closes, oldest first, divided by the window length, and
the cross is backtrader's rule (bt.ind.CrossOver): fast - slow changes sign against its last nonzero
value (the first value is kept even when zero; it never signals). The closes of each instrument sit in
a ring of 2 x slow doubles, each close written twice, so every window is contiguous.
"""

import numpy as np

from libc.math cimport NAN
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t

#: reason codes written by `targets` (SmaCross.REASONS)
UP = 0
DOWN = 1


cdef inline double window_sum(const double* x, int n) noexcept nogil:
    """x[0] + x[1] + ... + x[n-1], left to right from 0.0 (numpy's cumsum order)."""
    cdef double s = 0.0
    cdef int j
    for j in range(n):
        s = s + x[j]
    return s


cdef class SmaCrossKernel:
    """State of `n` instruments; `targets` advances it by one block of closes."""

    def __init__(self, int n, int fast, int slow, bint allow_short):
        if not (1 <= fast < slow):
            raise ValueError(f"fast = {fast}, slow = {slow}: need 1 <= fast < slow")
        if n < 0:
            raise ValueError(f"n = {n}: must be >= 0")
        self.n, self.fast, self.slow, self.allow_short = n, fast, slow, allow_short
        self.ring = np.zeros((max(n, 1), 2 * slow))
        self.seen = np.zeros(max(n, 1), dtype=np.int64)
        self.last_nz = np.zeros(max(n, 1))
        self.has_last = np.zeros(max(n, 1), dtype=np.uint8)

    def targets(self, const int32_t[::1] sym, const double[::1] close, double[::1] units, int8_t[::1] code):
        """For each bar (dense instrument index, close), the target units decided at its close (NaN:
        none) and its reason code (UP, DOWN; -1 with NaN)."""
        cdef Py_ssize_t nb = sym.shape[0], i
        cdef int s, w, fast = self.fast, slow = self.slow
        cdef double diff, last, down = -1.0 if self.allow_short else 0.0
        cdef double* row
        if close.shape[0] != nb or units.shape[0] < nb or code.shape[0] < nb:
            raise ValueError(f"close, units and code must hold {nb} rows")
        for i in range(nb):
            if sym[i] < 0 or sym[i] >= self.n:
                raise ValueError(f"sym[{i}] = {sym[i]}: must be in [0, {self.n})")
        with nogil:
            for i in range(nb):
                s = sym[i]
                units[i] = NAN
                code[i] = -1
                w = <int>(self.seen[s] % slow)
                row = &self.ring[s, 0]
                row[w] = close[i]
                row[w + slow] = close[i]
                self.seen[s] += 1
                if self.seen[s] < slow:
                    continue
                # the window, oldest first, is row[w + 1 .. w + slow]
                diff = window_sum(row + w + 1 + slow - fast, fast) / fast - window_sum(row + w + 1, slow) / slow
                if not self.has_last[s]:
                    self.has_last[s] = 1
                    self.last_nz[s] = diff
                    continue
                last = self.last_nz[s]
                if diff != 0.0:
                    self.last_nz[s] = diff
                if last < 0 and 0 < diff:
                    units[i] = 1.0
                    code[i] = 0
                elif last > 0 and 0 > diff:
                    units[i] = down
                    code[i] = 1
