# Indicator arithmetic shared by the reducers that need it (indicators, regimes): one definition, so
# the TA-Lib-compatible operation order cannot drift between them.
from libc.math cimport NAN, log, sqrt
from libc.stdint cimport int64_t


cdef inline double ema_push(double x, int64_t n, double k, double* value, int64_t* seen) noexcept nogil:
    # EMA with k = 2/(n+1), seeded with the SMA of the first n values (TA-Lib's default compatibility):
    # value[0] sums the first n-1 values, then holds the EMA.
    seen[0] += 1
    if seen[0] < n:
        value[0] += x
        return NAN
    if seen[0] == n:
        value[0] = (value[0] + x) / <double>n
    else:
        value[0] = ((x - value[0]) * k) + value[0]
    return value[0]


cdef inline double rv_step(double x, int64_t n, double sqrt_ppy, double* prev, double* ring, int64_t* seen,
                           int64_t* pos) noexcept nogil:
    # Sample std (ddof=1, two passes, oldest to newest) of the last n log returns * sqrt_ppy.
    cdef double mean = 0.0, ss = 0.0, dev
    cdef int64_t i, p
    seen[0] += 1
    if seen[0] == 1:
        prev[0] = x
        return NAN
    p = pos[0]
    ring[p] = log(x / prev[0])
    prev[0] = x
    p += 1
    if p == n:
        p = 0
    pos[0] = p
    if seen[0] <= n:
        return NAN
    for i in range(p, n):
        mean += ring[i]
    for i in range(0, p):
        mean += ring[i]
    mean /= <double>n
    for i in range(p, n):
        dev = ring[i] - mean
        ss += dev * dev
    for i in range(0, p):
        dev = ring[i] - mean
        ss += dev * dev
    return sqrt(ss / <double>(n - 1)) * sqrt_ppy
