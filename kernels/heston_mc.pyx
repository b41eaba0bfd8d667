"""Heston Monte Carlo on the CPU: Andersen (2008) QE with martingale correction, Philox4x32-10 random numbers.

The numerical kernel is kernels/heston_qe_kernel.h (header-only C, shared with a future CUDA RawModule so
that CPU and GPU draw the same numbers); this module only validates arguments, runs the path loop without
the GIL and turns the reductions into estimates with standard errors.

Keying (documented contract): with (w0, w1, w2, w3) = Philox4x32-10(counter = (i mod 2^32, i div 2^32,
k div 2, 0), key = (s mod 2^32, s div 2^32)), step k of path i under seed s uses (w0, w1) when k is even
and (w2, w3) when k is odd; the first word of the pair drives the variance step, the second the
log-price normal (heston_qe_kernel.h spells out the mapping).  A path is therefore reproducible on its own, results do not
depend on how paths are split into chunks/threads, and a different seed gives independent paths.

The path loop is split into fixed chunks of CHUNK paths, each reducing into its own accumulator, merged in
chunk order: the structure an OpenMP `prange` over chunks needs (no shared state), with the same result.

API:
  mc_european(S0, r, q, v0, kappa, theta, sigma, rho, T, strikes, rights, n_paths, n_steps, seed)
      -> (prices, stderrs)            discounted e^{-rT} E[payoff], one per strike; rights 'C'/'P'
  mc_spread(S0, r, q, v0, kappa, theta, sigma, rho, T, K1, K2, right, credit, n_paths, n_steps, seed,
            multiplier=1.0) -> dict   short K1 / long K2 vertical (see heston_qe_kernel.h for P&L/touch)
  mc_terminal(..., n_paths, n_steps, seed) -> (S_T, S_min, S_max)   per-path arrays, for tests
  philox4x32_10(counter4, key2) -> tuple of 4 uint32
"""

import math

import numpy as np

cimport numpy as cnp
cimport openmp
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

cnp.import_array()

cdef extern from "heston_qe_kernel.h" nogil:
    enum: HQE_HIST_BINS
    ctypedef struct hqe_model:
        double S0, r, q, v0, kappa, theta, sigma, rho, T
        int64_t n_steps
        uint64_t seed
    ctypedef struct hqe_spread:
        double K1, K2, credit, mult
        int32_t is_put
        double lo, hi, width
    ctypedef struct hqe_spread_acc:
        double n, n_profit, n_touch, n_max_loss, n_max_profit, sum_pnl, sumsq_pnl, sum_st, sumsq_st
        double hist[4096]
    void hqe_philox4x32_10(const uint32_t *ctr, const uint32_t *key, uint32_t *out)
    double hqe_norm_inv(double p)
    double hqe_norm_inv_w(uint32_t w, double lt)
    double hqe_log(double x)
    double hqe_exp(double x)
    double hqe_u01(uint32_t x)
    uint32_t hqe_wmin(uint32_t w)
    void hqe_prepare(hqe_model *m)
    double hqe_path(const hqe_model *m, uint64_t path, double *s_min, double *s_max)
    void hqe_european_range(const hqe_model *m, uint64_t p0, uint64_t p1, int64_t n_k, const double *strikes,
                            const int32_t *is_put, double disc, double *sum, double *sumsq, double *st)
    void hqe_spread_prepare(hqe_spread *sp)
    void hqe_spread_acc_zero(hqe_spread_acc *a)
    void hqe_spread_acc_merge(hqe_spread_acc *dst, const hqe_spread_acc *src)
    void hqe_spread_range(const hqe_model *m, const hqe_spread *sp, uint64_t p0, uint64_t p1,
                          hqe_spread_acc *a)
    double hqe_spread_quantile(const hqe_spread *sp, const hqe_spread_acc *a, double prob)

DEF CHUNK = 4096
HIST_BINS = HQE_HIST_BINS


def philox4x32_10(counter4, key2):
    """Philox4x32-10 (Random123) of a 4-word counter under a 2-word key; returns 4 uint32."""
    cdef uint32_t ctr[4]
    cdef uint32_t key[2]
    cdef uint32_t out[4]
    cdef int i
    if len(counter4) != 4 or len(key2) != 2:
        raise ValueError("counter4 needs 4 words and key2 2 words")
    for i in range(4):
        ctr[i] = <uint32_t>(int(counter4[i]) & 0xFFFFFFFF)
    for i in range(2):
        key[i] = <uint32_t>(int(key2[i]) & 0xFFFFFFFF)
    hqe_philox4x32_10(ctr, key, out)
    return (out[0], out[1], out[2], out[3])


def norm_inv(double p):
    """Inverse standard normal CDF (Wichura AS241, with the kernel's own log) for any p in (0, 1)."""
    return hqe_norm_inv(p)


def norm_inv_word(uint32_t w):
    """The kernel's normal from one 32-bit Philox word: Phi^-1((w + 1/2) 2^-32), branch-free form."""
    return hqe_norm_inv_w(w, hqe_log(hqe_u01(hqe_wmin(w))))


def kernel_log(double x):
    """The kernel's own natural log (fdlibm, < 1 ulp) for positive normal finite x."""
    return hqe_log(x)


def kernel_exp(double x):
    """The kernel's own exp (fdlibm, < 1 ulp)."""
    return hqe_exp(x)


cdef hqe_model _model(S0, r, q, v0, kappa, theta, sigma, rho, T, n_steps, seed) except *:
    cdef hqe_model m
    vals = dict(S0=S0, r=r, q=q, v0=v0, kappa=kappa, theta=theta, sigma=sigma, rho=rho, T=T)
    for name, val in vals.items():
        if not math.isfinite(float(val)):
            raise ValueError(f"{name} must be finite")
    if S0 <= 0 or T <= 0 or v0 < 0 or kappa <= 0 or theta <= 0 or sigma <= 0 or not -1.0 <= rho <= 1.0:
        raise ValueError("need S0 > 0, T > 0, v0 >= 0, kappa > 0, theta > 0, sigma > 0, -1 <= rho <= 1")
    if int(n_steps) < 1 or int(n_steps) > 0xFFFFFFFF:
        raise ValueError("n_steps must be in [1, 2^32)")
    if int(seed) < 0 or int(seed) >= 2 ** 64:
        raise ValueError("seed must be in [0, 2^64)")
    m.S0 = S0; m.r = r; m.q = q; m.v0 = v0; m.kappa = kappa; m.theta = theta
    m.sigma = sigma; m.rho = rho; m.T = T
    m.n_steps = int(n_steps)
    m.seed = int(seed)
    hqe_prepare(&m)
    return m


cdef int32_t _is_put(right) except -1:
    s = str(right).strip().upper()
    if s in ("P", "PUT"):
        return 1
    if s in ("C", "CALL"):
        return 0
    raise ValueError(f"right must be 'C'/'call' or 'P'/'put', got {right!r}")


_THREADS = 0  # 0: OpenMP's default (all cores, or OMP_NUM_THREADS)


def set_threads(int n) -> None:
    """Threads for the path loops (0: OpenMP's default). Results do not depend on it."""
    global _THREADS
    if n < 0:
        raise ValueError(f"threads = {n} must be >= 0")
    _THREADS = n


cdef int _n_threads():
    return _THREADS if _THREADS > 0 else openmp.omp_get_max_threads()


def _check_paths(n_paths):
    if int(n_paths) < 2:
        raise ValueError("n_paths must be >= 2")
    return int(n_paths)


def mc_european(double S0, double r, double q, double v0, double kappa, double theta, double sigma, double rho,
                double T, strikes, rights, n_paths, n_steps, seed):
    """Discounted European prices and their standard errors, one per (strike, right)."""
    cdef hqe_model m = _model(S0, r, q, v0, kappa, theta, sigma, rho, T, n_steps, seed)
    cdef cnp.ndarray[double, ndim=1] K = np.ascontiguousarray(strikes, dtype=np.float64).reshape(-1)
    if isinstance(rights, str):
        rights = [rights] * K.shape[0]
    cdef cnp.ndarray[int32_t, ndim=1] put = np.array([_is_put(x) for x in rights], dtype=np.int32).reshape(-1)
    if put.shape[0] != K.shape[0]:
        raise ValueError("strikes and rights differ in length")
    cdef int64_t n_k = K.shape[0], N = _check_paths(n_paths)
    cdef int64_t n_chunks = (N + CHUNK - 1) // CHUNK, c, p0, p1
    cdef cnp.ndarray[double, ndim=2] sums = np.zeros((n_chunks, 2 * n_k + 2), dtype=np.float64)
    cdef double disc = math.exp(-r * T)
    cdef double *base = &sums[0, 0]
    cdef int64_t stride = 2 * n_k + 2
    cdef double *Kp = &K[0] if n_k else NULL
    cdef int32_t *Pp = &put[0] if n_k else NULL
    cdef int nt = _n_threads()
    with nogil:
        # OpenMP over chunks: each chunk owns its row of `sums`, merged below in chunk order, so the
        # result does not depend on the number of threads.
        for c in prange(n_chunks, schedule="static", num_threads=nt):
            p0 = c * CHUNK
            p1 = p0 + CHUNK if p0 + CHUNK < N else N
            hqe_european_range(&m, p0, p1, n_k, Kp, Pp, disc, base + c * stride, base + c * stride + n_k,
                               base + c * stride + 2 * n_k)
    tot = sums.sum(axis=0)  # merged in chunk order
    mean = tot[:n_k] / N
    var = np.maximum(tot[n_k:2 * n_k] / N - mean * mean, 0.0) * N / (N - 1)
    return mean, np.sqrt(var / N)


def mc_terminal(double S0, double r, double q, double v0, double kappa, double theta, double sigma, double rho,
                double T, n_paths, n_steps, seed):
    """Per-path (S_T, min_t S_t, max_t S_t) of the same paths the reductions use (for tests/diagnostics)."""
    cdef hqe_model m = _model(S0, r, q, v0, kappa, theta, sigma, rho, T, n_steps, seed)
    cdef int64_t N = _check_paths(n_paths), i
    cdef cnp.ndarray[double, ndim=1] st = np.empty(N), lo = np.empty(N), hi = np.empty(N)
    cdef double *a = &st[0]
    cdef double *b = &lo[0]
    cdef double *d = &hi[0]
    with nogil:
        for i in range(N):
            a[i] = hqe_path(&m, i, b + i, d + i)
    return st, lo, hi


def mc_spread(double S0, double r, double q, double v0, double kappa, double theta, double sigma, double rho,
              double T, double K1, double K2, right, double credit, n_paths, n_steps, seed,
              double multiplier=1.0):
    """Vertical spread statistics at expiry: short K1, long K2 (same right), `credit` received per share.

    Returns pop (P&L > 0), expected_pnl (undiscounted, per contract of `multiplier` shares), p_touch (short
    strike touched at a monitoring date), p_max_loss, each with its standard error; P&L quantiles q05/q50/q95
    (atoms at max loss/profit exact, interior to (hi - lo)/4096); mean_ST (+ se) for the martingale check.
    """
    cdef hqe_model m = _model(S0, r, q, v0, kappa, theta, sigma, rho, T, n_steps, seed)
    cdef hqe_spread sp
    if not (K1 > 0 and K2 > 0 and K1 != K2 and multiplier > 0 and math.isfinite(credit)):
        raise ValueError("need K1 > 0, K2 > 0, K1 != K2, multiplier > 0, finite credit")
    sp.K1 = K1; sp.K2 = K2; sp.credit = credit; sp.mult = multiplier; sp.is_put = _is_put(right)
    hqe_spread_prepare(&sp)
    cdef int64_t N = _check_paths(n_paths)
    cdef int64_t n_chunks = (N + CHUNK - 1) // CHUNK, c, p0, p1
    cdef hqe_spread_acc *accs = <hqe_spread_acc *>malloc(n_chunks * sizeof(hqe_spread_acc))
    cdef hqe_spread_acc tot
    if accs == NULL:
        raise MemoryError()
    cdef int nt = _n_threads()
    try:
        with nogil:
            # OpenMP over chunks, private accumulators merged in chunk order: thread-count independent.
            for c in prange(n_chunks, schedule="static", num_threads=nt):
                p0 = c * CHUNK
                p1 = p0 + CHUNK if p0 + CHUNK < N else N
                hqe_spread_acc_zero(&accs[c])
                hqe_spread_range(&m, &sp, p0, p1, &accs[c])
            hqe_spread_acc_zero(&tot)
            for c in range(n_chunks):
                hqe_spread_acc_merge(&tot, &accs[c])
    finally:
        free(accs)
    n = tot.n

    def prop(k):
        p = k / n
        return p, math.sqrt(max(p * (1.0 - p), 0.0) / n)

    pop, pop_se = prop(tot.n_profit)
    pt, pt_se = prop(tot.n_touch)
    pml, pml_se = prop(tot.n_max_loss)
    mean = tot.sum_pnl / n
    var = max(tot.sumsq_pnl / n - mean * mean, 0.0) * n / (n - 1)
    mst = tot.sum_st / n
    vst = max(tot.sumsq_st / n - mst * mst, 0.0) * n / (n - 1)
    return dict(
        pop=pop, pop_se=pop_se,
        expected_pnl=mean, expected_pnl_se=math.sqrt(var / n),
        p_touch=pt, p_touch_se=pt_se,
        p_max_loss=pml, p_max_loss_se=pml_se,
        p_max_profit=tot.n_max_profit / n,
        q05=hqe_spread_quantile(&sp, &tot, 0.05),
        q50=hqe_spread_quantile(&sp, &tot, 0.50),
        q95=hqe_spread_quantile(&sp, &tot, 0.95),
        max_loss=sp.lo, max_profit=sp.hi,
        mean_ST=mst, mean_ST_se=math.sqrt(vst / n),
        n_paths=int(n),
    )
