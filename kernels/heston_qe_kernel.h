/* Heston Monte Carlo kernel: Philox4x32-10, inverse-CDF normals, Andersen (2008) QE with martingale
 * correction, and per-path reductions (European prices, vertical-spread statistics).
 *
 * Header-only C99 with no globals and no allocation, written once for two compilers: the Cython wrapper
 * (kernels/heston_mc.pyx, OpenMP over path chunks) includes it as C, and argus/options/gpu.py compiles the
 * same text with NVRTC through CuPy (one thread per path; HQE_FN becomes __device__).  Every path is
 * independent (its random stream is a pure function of (seed, path, step)), so paths can be split across
 * threads; reductions go into caller-owned accumulators, merged in a fixed order.
 *
 * Bitwise reproducibility across builds.  The per-step arithmetic uses only IEEE +, -, *, /, sqrt (all
 * correctly rounded on x86 and on CUDA), comparisons and integer/bit operations: log and exp are this
 * file's own fdlibm-style hqe_log / hqe_exp (< 1 ulp), not the platform libm.  Built without
 * floating-point contraction (gcc -ffp-contract=off, NVRTC --fmad=false: see setup.py and gpu.py), the
 * scalar C path, the vectorised C lanes (SSE2, AVX2 or AVX-512 clone, picked at load time) and the CUDA
 * thread therefore produce the same bits for every path; only the order of summing the reductions
 * differs between the CPU and the GPU (counts are exact either way).
 *
 * Random numbers, keyed by (seed, path, step) -- the exact mapping:
 *   key     = (seed & 0xffffffff, seed >> 32)
 *   counter = (path & 0xffffffff, path >> 32, step >> 1, HQE_STREAM_PATH = 0)
 *   (w0, w1, w2, w3) = Philox4x32-10(counter, key)      (Random123, Salmon et al. 2011)
 *   even step k: (w0, w1); odd step k: (w2, w3)        -- one Philox call drives two steps.
 *   Of a step's pair (a, b):  a -> U_v = u(a) for the variance step (exponential branch), and in the
 *   quadratic branch Z_v = Phi^-1(u(a)); b -> Z_x = Phi^-1(u(b)) for the log-price step.
 * Uniforms: u(x) = (x + 1/2) 2^-32 for a 32-bit word x, in (0, 1), never 0 or 1; 1 - u(x) = u(~x) exactly.
 * Normals: inverse CDF by Wichura's AS241 (PPND16, relative accuracy ~1e-16); for 32-bit uniforms
 *   min(u, 1 - u) >= 2^-33, so only AS241's first tail segment (r <= 5) is ever needed.
 *
 * QE (Andersen 2008, "Simple and efficient simulation of the Heston stochastic volatility model"):
 *   m = theta + (v - theta) E,  s2 = v sigma^2 E (1 - E) / kappa + theta sigma^2 (1 - E)^2 / (2 kappa),
 *   psi = s2 / m^2 with E = exp(-kappa dt).  psi <= psi_c = 1.5: v' = a (b + Z_v)^2 with
 *   b^2 = 2/psi - 1 + sqrt(2/psi (2/psi - 1)), a = m / (1 + b^2);  else v' = 0 if U_v <= p, else
 *   log((1 - p) / (1 - U_v)) / beta with p = (psi - 1)/(psi + 1), beta = (1 - p) / m; written without
 *   p and beta: U_v (psi + 1) <= psi - 1, and v' = m (psi + 1) / 2 log(2 / ((psi + 1)(1 - U_v))).
 *   Log price (gamma1 = gamma2 = 0.5):
 *   ln S' = ln S + (r - q) dt + K0* + K1 v + K2 v' + sqrt(K3 v + K4 v') Z_x
 *   K1 = g1 dt (kappa rho / sigma - 1/2) - rho / sigma, K2 = g2 dt (kappa rho / sigma - 1/2) + rho / sigma,
 *   K3 = g1 dt (1 - rho^2), K4 = g2 dt (1 - rho^2), A = K2 + K4 / 2 and the martingale-corrected
 *   K0* = -ln E[exp(A v') | v] - (K1 + K3 / 2) v   (Andersen's proposition 9), i.e.
 *     quadratic:   K0* = -A b^2 a / (1 - 2 A a) + ln(1 - 2 A a) / 2 - (K1 + K3/2) v   (needs 2 A a < 1)
 *     exponential: K0* = -ln(((psi - 1) D + 4) / ((psi + 1) D)) - (K1 + K3/2) v,  D = 2 - A (psi + 1) m
 *                  (= -ln(p + beta (1 - p) / (beta - A)); needs A < beta, i.e. D > 0)
 *   When the moment does not exist the plain K0 = -rho kappa theta dt / sigma is used (documented
 *   fallback; it does not occur for realistic parameters and dt).  This makes E[S'|S, v] = S e^{(r-q)dt}.
 *
 * Speed (CPU): the step is written branch-free (both QE branches computed, then selected; the logs
 * that the two branches need are merged into two calls with selected arguments), and HQE_LANES paths
 * are advanced in lockstep by `omp simd` loops, so gcc vectorises the lanes; hqe_european_range and
 * hqe_spread_range are compiled as x86-64-v4 / v3 / baseline clones (gcc target_clones) chosen when
 * the module loads.  Without contraction the clones agree bit for bit.
 */
#ifndef ARGUS_HESTON_QE_KERNEL_H
#define ARGUS_HESTON_QE_KERNEL_H

#ifdef __CUDACC__
/* NVRTC: no host headers; the fixed-width types and NAN come from the CUDA builtins. */
typedef unsigned int uint32_t;
typedef int int32_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;
#define HQE_FN static __device__ __forceinline__
#define HQE_SIMD
#ifndef NAN
#define NAN __longlong_as_double(0x7ff8000000000000LL)
#endif
#ifndef HQE_LANES
#define HQE_LANES 1
#endif
HQE_FN uint64_t hqe_bits(double x) { return (uint64_t)__double_as_longlong(x); }
HQE_FN double hqe_from_bits(uint64_t b) { return __longlong_as_double((long long)b); }
#else
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__GNUC__)
#define HQE_FN static inline __attribute__((always_inline))
#else
#define HQE_FN static inline
#endif
/* The lockstep lane loop is an out-of-line function (inlined into its caller, gcc 12 stops vectorising
 * it), built as x86-64-v4 / v3 / v2 / baseline clones picked by the CPU at load time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(HQE_NO_CLONES)
#define HQE_LANES_FN __attribute__((noinline, target_clones("arch=x86-64-v4", "arch=x86-64-v3", "arch=x86-64-v2", \
                                                             "default"))) static
#elif defined(__GNUC__)
#define HQE_LANES_FN __attribute__((noinline)) static
#else
#define HQE_LANES_FN static
#endif
#if defined(_OPENMP)
#define HQE_SIMD _Pragma("omp simd")
#else
#define HQE_SIMD
#endif
/* HQE_LANES paths per lockstep block (16: measured best on x86-64 AVX-512; 8: 2x slower, 32/64: ~5% slower). */
#ifndef HQE_LANES
#define HQE_LANES 16
#endif
HQE_FN uint64_t hqe_bits(double x) { uint64_t b; memcpy(&b, &x, sizeof b); return b; }
HQE_FN double hqe_from_bits(uint64_t b) { double x; memcpy(&x, &b, sizeof x); return x; }
#endif

#define HQE_PHILOX_M0 0xD2511F53u
#define HQE_PHILOX_M1 0xCD9E8D57u
#define HQE_PHILOX_W0 0x9E3779B9u
#define HQE_PHILOX_W1 0xBB67AE85u
#define HQE_STREAM_PATH 0u
#define HQE_PSI_C 1.5
#define HQE_GAMMA1 0.5
#define HQE_GAMMA2 0.5
#define HQE_HIST_BINS 4096

/* ------------------------------------------------------------------ Philox4x32-10 */

#define HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1)                                    \
    do {                                                                             \
        uint64_t p0_ = (uint64_t)HQE_PHILOX_M0 * (uint64_t)(c0);                     \
        uint64_t p1_ = (uint64_t)HQE_PHILOX_M1 * (uint64_t)(c2);                     \
        uint32_t n0_ = (uint32_t)(p1_ >> 32) ^ (c1) ^ (k0);                          \
        uint32_t n2_ = (uint32_t)(p0_ >> 32) ^ (c3) ^ (k1);                          \
        (c1) = (uint32_t)p1_; (c3) = (uint32_t)p0_; (c0) = n0_; (c2) = n2_;          \
        (k0) += HQE_PHILOX_W0; (k1) += HQE_PHILOX_W1;                                \
    } while (0)

/* Philox4x32-10 of (c0, c1, c2, c3) under (k0, k1); unrolled, straight-line (vectorisable across lanes). */
HQE_FN void hqe_philox(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                       uint32_t *o0, uint32_t *o1, uint32_t *o2, uint32_t *o3) {
    HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
    HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
    HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
    HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
    HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1); HQE_PHILOX_ROUND(c0, c1, c2, c3, k0, k1);
    *o0 = c0; *o1 = c1; *o2 = c2; *o3 = c3;
}

HQE_FN void hqe_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    hqe_philox(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], &out[0], &out[1], &out[2], &out[3]);
}

/* The integer n in [0, 2^52) as a double, exactly, by the 2^52 bit trick (vectorises without AVX-512's
 * 64-bit integer conversions). */
HQE_FN double hqe_small_u64_to_double(uint64_t n) {
    return hqe_from_bits(0x4330000000000000ULL | n) - 4503599627370496.0;
}

/* u in (0, 1): (x + 1/2) / 2^32 (exact in double). */
HQE_FN double hqe_u01(uint32_t x) { return (hqe_small_u64_to_double(x) + 0.5) * 2.3283064365386962890625e-10; }

/* ------------------------------------------------------------------ log and exp (fdlibm, < 1 ulp) */

/* Natural log of a positive normal finite x (fdlibm e_log.c's reduction and polynomial, branch-free: the
 * mantissa is folded into [sqrt(2)/2, sqrt(2)) by integer arithmetic).  Other inputs give garbage but never
 * trap; callers pass selected, valid arguments. */
HQE_FN double hqe_log(double x) {
    uint64_t b = hqe_bits(x);
    uint64_t mant = b & 0x000fffffffffffffULL;
    uint64_t i = (mant + 0x00095f6400000000ULL) & 0x0010000000000000ULL;
    double dk = hqe_small_u64_to_double((b >> 52) + (i >> 52)) - 1023.0;
    double f = hqe_from_bits(mant | (i ^ 0x3ff0000000000000ULL)) - 1.0;
    double s = f / (2.0 + f), z = s * s, w = z * z;
    double t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
    double t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
                     + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
    double R = t2 + t1, hfsq = 0.5 * f * f;
    return dk * 6.93147180369123816490e-01 - ((hfsq - (s * (hfsq + R) + dk * 1.90821492927058770002e-10)) - f);
}

/* e^x (fdlibm e_exp.c's reduction and Remez polynomial); x clamped to [-745, 709.78]. */
HQE_FN double hqe_exp(double x) {
    double k, hi, lo, r, t, c, y;
    int64_t n, n1;
    if (x != x) return x;
    if (x > 709.782712893384) return hqe_from_bits(0x7ff0000000000000ULL);
    if (x < -745.2) return 0.0;
    k = floor(x * 1.44269504088896338700e+00 + 0.5);
    n = (int64_t)k;
    hi = x - k * 6.93147180369123816490e-01;
    lo = k * 1.90821492927058770002e-10;
    r = hi - lo;
    t = r * r;
    c = r - t * (1.66666666666666019037e-01 + t * (-2.77777777770155933842e-03 + t * (6.61375632143793436117e-05
                 + t * (-1.65339022054652515390e-06 + t * 4.13813679705723846039e-08))));
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    n1 = n / 2;
    return y * hqe_from_bits((uint64_t)(n1 + 1023) << 52) * hqe_from_bits((uint64_t)(n - n1 + 1023) << 52);
}

/* ------------------------------------------------------------------ Phi^-1 (Wichura AS241, PPND16) */

/* Numerator and denominator of AS241's central rational (|q| <= 0.425, r = 0.180625 - q^2): q * P / Q. */
#define HQE_AS241_PC(r) (((((((2509.0809287301226727 * (r) + 33430.575583588128105) * (r) + 67265.770927008700853) \
    * (r) + 45921.953931549871457) * (r) + 13731.693765509461125) * (r) + 1971.5909503065514427) * (r)             \
    + 133.14166789178437745) * (r) + 3.387132872796366608)
#define HQE_AS241_QC(r) (((((((5226.495278852545925 * (r) + 28729.085735721942674) * (r) + 39307.89580009271061)   \
    * (r) + 21213.794301586595867) * (r) + 5394.1960214247511077) * (r) + 687.1870074920579083) * (r)             \
    + 42.313330701600911252) * (r) + 1.0)
/* First tail segment (r = sqrt(-log(min(p, 1 - p))) - 1.6, r + 1.6 <= 5). */
#define HQE_AS241_PT(r) (((((((7.7454501427834140764e-4 * (r) + 0.0227238449892691845833) * (r)                    \
    + 0.24178072517745061177) * (r) + 1.27045825245236838258) * (r) + 3.64784832476320460504) * (r)              \
    + 5.7694972214606914055) * (r) + 4.6303378461565452959) * (r) + 1.42343711074968357734)
#define HQE_AS241_QT(r) (((((((1.05075007164441684324e-9 * (r) + 5.475938084995344946e-4) * (r)                    \
    + 0.0151986665636164571966) * (r) + 0.14810397642748007459) * (r) + 0.68976733498510000455) * (r)            \
    + 1.6763848301838038494) * (r) + 2.05319162663775882187) * (r) + 1.0)

/* Phi^-1(p) for any p in (0, 1). */
HQE_FN double hqe_norm_inv(double p) {
    double q = p - 0.5, r, val;
    if (fabs(q) <= 0.425) {
        r = 0.180625 - q * q;
        return q * HQE_AS241_PC(r) / HQE_AS241_QC(r);
    }
    r = (q < 0.0) ? p : 1.0 - p;
    r = sqrt(-hqe_log(r));
    if (r <= 5.0) {
        r -= 1.6;
        val = HQE_AS241_PT(r) / HQE_AS241_QT(r);
    } else {
        r -= 5.0;
        val = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 1.2426609473880784386e-3) * r
                   + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                 + 5.4637849111641143699) * r + 6.6579046435011037772)
            / (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r
                   + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
                 + 0.59983220655588793769) * r + 1.0);
    }
    return (q < 0.0) ? -val : val;
}

/* Phi^-1(u(w)) given lt = hqe_log(u(min(w, ~w))), branch-free; equals hqe_norm_inv(hqe_u01(w)) exactly. */
HQE_FN double hqe_norm_inv_w(uint32_t w, double lt) {
    double q = hqe_u01(w) - 0.5;
    double rc = 0.180625 - q * q;
    double rt = sqrt(-lt) - 1.6;
    int central = (fabs(q) <= 0.425);
    double pt = HQE_AS241_PT(rt);
    double num = central ? q * HQE_AS241_PC(rc) : (q < 0.0 ? -pt : pt);
    double den = central ? HQE_AS241_QC(rc) : HQE_AS241_QT(rt);
    return num / den;
}

HQE_FN uint32_t hqe_wmin(uint32_t w) { return w < ~w ? w : ~w; }

/* ------------------------------------------------------------------ model and per-step constants */

typedef struct {
    double S0, r, q, v0, kappa, theta, sigma, rho, T;
    int64_t n_steps;
    uint64_t seed;
    /* derived by hqe_prepare */
    double dt, drift, E, c1, c2, K0, K1, K2, K3, K4, A, Kv, x0;
} hqe_model;

HQE_FN void hqe_prepare(hqe_model *m) {
    double dt = m->T / (double)m->n_steps;
    double kr = m->kappa * m->rho / m->sigma - 0.5;
    m->dt = dt;
    m->drift = (m->r - m->q) * dt;
    m->E = hqe_exp(-m->kappa * dt);
    m->c1 = m->sigma * m->sigma * m->E * (1.0 - m->E) / m->kappa;
    m->c2 = m->theta * m->sigma * m->sigma * (1.0 - m->E) * (1.0 - m->E) / (2.0 * m->kappa);
    m->K0 = -m->rho * m->kappa * m->theta * dt / m->sigma;
    m->K1 = HQE_GAMMA1 * dt * kr - m->rho / m->sigma;
    m->K2 = HQE_GAMMA2 * dt * kr + m->rho / m->sigma;
    m->K3 = HQE_GAMMA1 * dt * (1.0 - m->rho * m->rho);
    m->K4 = HQE_GAMMA2 * dt * (1.0 - m->rho * m->rho);
    m->A = m->K2 + 0.5 * m->K4;
    m->Kv = m->K1 + 0.5 * m->K3;
    m->x0 = hqe_log(m->S0);
}

/* One QE step of one path from its word pair (a, b): v -> v', x = ln S -> x + increment.  Branch-free:
 * both QE branches are evaluated and selected, with their logs merged (la: ln(1 - 2 A a) or the
 * exponential branch's K0* argument; lb: the Z_v tail's ln min(U_v, 1 - U_v) or the exponential
 * branch's ln(2 / ((psi + 1)(1 - U_v)))), so the lanes of a block vectorise. */
HQE_FN void hqe_step(const hqe_model *m, uint32_t a_w, uint32_t b_w, double *v_io, double *x_io) {
    double v = *v_io;
    double uv = hqe_u01(a_w);
    double mean = m->theta + (v - m->theta) * m->E;
    double s2 = v * m->c1 + m->c2;
    double m2 = mean * mean;
    int quad = s2 <= HQE_PSI_C * m2;
    /* ratio = 2 / psi (quadratic branch) or psi (exponential branch) */
    double ratio = (quad ? 2.0 * m2 : s2) / (quad ? s2 : m2);
    double rm1 = ratio - 1.0, rp1 = ratio + 1.0;
    double b2 = rm1 + sqrt(rm1 > 0.0 ? ratio * rm1 : 0.0);
    double a = mean / (1.0 + b2);
    double den = 1.0 - 2.0 * m->A * a;
    double D = 2.0 - m->A * rp1 * mean;
    double kq = (quad ? -m->A * b2 * a : rm1 * D + 4.0) / (quad ? den : rp1 * D);
    int ok = quad ? (den > 0.0) : (D > 0.0);
    double la = hqe_log(ok ? (quad ? den : kq) : 1.0);
    double lb = hqe_log(quad ? hqe_u01(hqe_wmin(a_w)) : 2.0 / (rp1 * hqe_u01(~a_w)));
    double lx = hqe_log(hqe_u01(hqe_wmin(b_w)));
    double zv = hqe_norm_inv_w(a_w, lb);
    double zx = hqe_norm_inv_w(b_w, lx);
    double t = sqrt(b2) + zv;
    double ve = (uv * rp1 <= rm1) ? 0.0 : 0.5 * mean * rp1 * lb;
    double vn = quad ? a * t * t : ve;
    double k0 = ok ? ((quad ? kq + 0.5 * la : -la) - m->Kv * v) : m->K0;
    *x_io += m->drift + k0 + m->K1 * v + m->K2 * vn + sqrt(m->K3 * v + m->K4 * vn) * zx;
    *v_io = vn;
}

/* Simulate one path; returns S_T.  If s_min / s_max are non-NULL they receive the minimum / maximum of
 * S over the monitoring dates t_0 = 0 (S0 itself), t_1, ..., t_n = T (tracked as ln S, exponentiated once).
 * One path per call: the CUDA kernels' (and mc_terminal's) form; the same bits as hqe_path_block. */
HQE_FN double hqe_path(const hqe_model *m, uint64_t path, double *s_min, double *s_max) {
    uint32_t k0 = (uint32_t)(m->seed & 0xffffffffu), k1 = (uint32_t)(m->seed >> 32);
    uint32_t c0 = (uint32_t)(path & 0xffffffffu), c1 = (uint32_t)(path >> 32);
    uint32_t w0, w1, w2, w3;
    double x = m->x0, v = m->v0, xlo = m->x0, xhi = m->x0;
    int64_t k;
    for (k = 0; k < m->n_steps; k += 2) {
        hqe_philox(c0, c1, (uint32_t)(k >> 1), HQE_STREAM_PATH, k0, k1, &w0, &w1, &w2, &w3);
        hqe_step(m, w0, w1, &v, &x);
        xlo = x < xlo ? x : xlo;
        xhi = x > xhi ? x : xhi;
        if (k + 1 < m->n_steps) {
            hqe_step(m, w2, w3, &v, &x);
            xlo = x < xlo ? x : xlo;
            xhi = x > xhi ? x : xhi;
        }
    }
    if (s_min) {
        double elo = hqe_exp(xlo), ehi = hqe_exp(xhi);
        *s_min = elo < m->S0 ? elo : m->S0;
        *s_max = ehi > m->S0 ? ehi : m->S0;
    }
    return hqe_exp(x);
}

#ifndef __CUDACC__
/* ------------------------------------------------------------------ CPU: HQE_LANES paths in lockstep */

/* Lane state of a block of HQE_LANES consecutive paths: this step pair's words, ln S, v, extrema of ln S. */
typedef struct {
    uint32_t w0[HQE_LANES], w1[HQE_LANES], w2[HQE_LANES], w3[HQE_LANES];
    double x[HQE_LANES], v[HQE_LANES], xlo[HQE_LANES], xhi[HQE_LANES];
} hqe_lanes;

/* One step of every lane from the word pairs (wa[l], wb[l]).  Plain (not restrict) pointers: gcc 12
 * vectorises this loop; on restrict pointers or the caller's local arrays it gives up ("no vectype"). */
HQE_FN void hqe_lanes_step(const hqe_model *m, const uint32_t *wa, const uint32_t *wb, double *v, double *x,
                           double *xlo, double *xhi) {
    int l;
    HQE_SIMD
    for (l = 0; l < HQE_LANES; l++) {
        hqe_step(m, wa[l], wb[l], &v[l], &x[l]);
        xlo[l] = x[l] < xlo[l] ? x[l] : xlo[l];
        xhi[l] = x[l] > xhi[l] ? x[l] : xhi[l];
    }
}

/* Steps k and k + 1 (if k + 1 < n_steps; k even) of the lanes' paths path0 + l: one Philox call per lane. */
HQE_LANES_FN void hqe_lanes_advance(const hqe_model *m, uint64_t path0, int64_t k, hqe_lanes *s) {
    uint32_t k0 = (uint32_t)(m->seed & 0xffffffffu), k1 = (uint32_t)(m->seed >> 32);
    int l;
    HQE_SIMD
    for (l = 0; l < HQE_LANES; l++) {
        uint64_t path = path0 + (uint64_t)l;
        hqe_philox((uint32_t)(path & 0xffffffffu), (uint32_t)(path >> 32), (uint32_t)(k >> 1), HQE_STREAM_PATH,
                   k0, k1, &s->w0[l], &s->w1[l], &s->w2[l], &s->w3[l]);
    }
    hqe_lanes_step(m, s->w0, s->w1, s->v, s->x, s->xlo, s->xhi);
    if (k + 1 < m->n_steps) hqe_lanes_step(m, s->w2, s->w3, s->v, s->x, s->xlo, s->xhi);
}

/* HQE_LANES consecutive paths [path0, path0 + nl) (nl <= HQE_LANES) advanced in lockstep: the same bits as
 * hqe_path for each path (lanes past nl compute unused paths).  lo / hi may be NULL. */
HQE_FN void hqe_path_block(const hqe_model *m, uint64_t path0, int nl, double *st, double *lo, double *hi) {
    hqe_lanes s;
    int64_t k;
    int l;
    for (l = 0; l < HQE_LANES; l++) {
        s.x[l] = s.xlo[l] = s.xhi[l] = m->x0;
        s.v[l] = m->v0;
    }
    for (k = 0; k < m->n_steps; k += 2) hqe_lanes_advance(m, path0, k, &s);
    for (l = 0; l < nl; l++) {
        st[l] = hqe_exp(s.x[l]);
        if (lo) {
            double elo = hqe_exp(s.xlo[l]), ehi = hqe_exp(s.xhi[l]);
            lo[l] = elo < m->S0 ? elo : m->S0;
            hi[l] = ehi > m->S0 ? ehi : m->S0;
        }
    }
}

/* ------------------------------------------------------------------ European reductions */

/* For paths [p0, p1): sum[j], sumsq[j] += discounted payoff of strike j (is_put[j] != 0: put), and
 * st[0] += S_T, st[1] += S_T^2. */
HQE_FN void hqe_european_range(const hqe_model *m, uint64_t p0, uint64_t p1, int64_t n_k, const double *strikes,
                               const int32_t *is_put, double disc, double *sum, double *sumsq, double st[2]) {
    uint64_t i;
    int64_t j;
    double sb[HQE_LANES];
    int l, nl;
    for (i = p0; i < p1; i += HQE_LANES) {
      nl = (p1 - i < HQE_LANES) ? (int)(p1 - i) : HQE_LANES;
      hqe_path_block(m, i, nl, sb, 0, 0);
      for (l = 0; l < nl; l++) {
        double s = sb[l];
        st[0] += s;
        st[1] += s * s;
        for (j = 0; j < n_k; j++) {
            double pay = is_put[j] ? strikes[j] - s : s - strikes[j];
            pay = (pay > 0.0 ? pay : 0.0) * disc;
            sum[j] += pay;
            sumsq[j] += pay * pay;
        }
      }
    }
}

#endif /* !__CUDACC__ */

/* ------------------------------------------------------------------ vertical-spread reductions */

/* Short K1, long K2, both puts (is_put) or both calls, opened for `credit` per share (negative: a debit),
 * `mult` shares per contract.  P&L at expiry (undiscounted) per contract:
 *   pnl = mult * (credit - payoff(K1, S_T) + payoff(K2, S_T)),
 * bounded in [lo, hi] = mult * (credit + min(0, d), credit + max(0, d)), d = K2 - K1 (puts), K1 - K2
 * (calls).  Touch: puts min_t S_t <= K1, calls max_t S_t >= K1 (t = 0, dt, ..., T; S0 included). */
typedef struct {
    double K1, K2, credit, mult;
    int32_t is_put;
    double lo, hi, width; /* by hqe_spread_prepare */
} hqe_spread;

typedef struct {
    double n, n_profit, n_touch, n_max_loss, n_max_profit, sum_pnl, sumsq_pnl, sum_st, sumsq_st;
    double hist[HQE_HIST_BINS]; /* P&L strictly between lo and hi, equal-width bins */
} hqe_spread_acc;

HQE_FN void hqe_spread_prepare(hqe_spread *sp) {
    double d = sp->is_put ? sp->K2 - sp->K1 : sp->K1 - sp->K2;
    sp->lo = sp->mult * (sp->credit + (d < 0.0 ? d : 0.0));
    sp->hi = sp->mult * (sp->credit + (d > 0.0 ? d : 0.0));
    sp->width = (sp->hi - sp->lo) / (double)HQE_HIST_BINS;
}

HQE_FN void hqe_spread_acc_zero(hqe_spread_acc *a) {
    int i;
    a->n = a->n_profit = a->n_touch = a->n_max_loss = a->n_max_profit = 0.0;
    a->sum_pnl = a->sumsq_pnl = a->sum_st = a->sumsq_st = 0.0;
    for (i = 0; i < HQE_HIST_BINS; i++) a->hist[i] = 0.0;
}

/* dst += src (merge per-thread / per-chunk accumulators in a fixed order). */
HQE_FN void hqe_spread_acc_merge(hqe_spread_acc *dst, const hqe_spread_acc *src) {
    int i;
    dst->n += src->n; dst->n_profit += src->n_profit; dst->n_touch += src->n_touch;
    dst->n_max_loss += src->n_max_loss; dst->n_max_profit += src->n_max_profit;
    dst->sum_pnl += src->sum_pnl; dst->sumsq_pnl += src->sumsq_pnl;
    dst->sum_st += src->sum_st; dst->sumsq_st += src->sumsq_st;
    for (i = 0; i < HQE_HIST_BINS; i++) dst->hist[i] += src->hist[i];
}

HQE_FN double hqe_spread_pnl(const hqe_spread *sp, double s) {
    double p1, p2;
    if (sp->is_put) { p1 = sp->K1 - s; p2 = sp->K2 - s; }
    else { p1 = s - sp->K1; p2 = s - sp->K2; }
    p1 = p1 > 0.0 ? p1 : 0.0;
    p2 = p2 > 0.0 ? p2 : 0.0;
    return sp->mult * (sp->credit - p1 + p2);
}

HQE_FN void hqe_spread_add(const hqe_spread *sp, hqe_spread_acc *a, double s, double s_min, double s_max) {
    double pnl = hqe_spread_pnl(sp, s);
    double tol = 1e-12 * (fabs(sp->lo) + fabs(sp->hi) + 1.0);
    a->n += 1.0;
    a->sum_st += s;
    a->sumsq_st += s * s;
    a->sum_pnl += pnl;
    a->sumsq_pnl += pnl * pnl;
    if (pnl > 0.0) a->n_profit += 1.0;
    if (sp->is_put ? (s_min <= sp->K1) : (s_max >= sp->K1)) a->n_touch += 1.0;
    if (pnl <= sp->lo + tol) a->n_max_loss += 1.0;
    else if (pnl >= sp->hi - tol) a->n_max_profit += 1.0;
    else {
        int64_t b = (int64_t)((pnl - sp->lo) / sp->width);
        if (b < 0) b = 0;
        if (b >= HQE_HIST_BINS) b = HQE_HIST_BINS - 1;
        a->hist[b] += 1.0;
    }
}

#ifndef __CUDACC__
HQE_FN void hqe_spread_range(const hqe_model *m, const hqe_spread *sp, uint64_t p0, uint64_t p1, hqe_spread_acc *a) {
    uint64_t i;
    double sb[HQE_LANES], lo[HQE_LANES], hi[HQE_LANES];
    int l, nl;
    for (i = p0; i < p1; i += HQE_LANES) {
        nl = (p1 - i < HQE_LANES) ? (int)(p1 - i) : HQE_LANES;
        hqe_path_block(m, i, nl, sb, lo, hi);
        for (l = 0; l < nl; l++) hqe_spread_add(sp, a, sb[l], lo[l], hi[l]);
    }
}
#endif

/* Quantile of the P&L from the accumulator: the atoms at lo (max loss) and hi (max profit) are exact; in
 * between, linear interpolation inside the histogram bin (resolution (hi - lo) / HQE_HIST_BINS).
 * Convention: the smallest x with F(x) >= prob. */
HQE_FN double hqe_spread_quantile(const hqe_spread *sp, const hqe_spread_acc *a, double prob) {
    double target = prob * a->n, cum = a->n_max_loss;
    int i;
    if (a->n <= 0.0) return NAN;
    if (target <= cum) return sp->lo;
    for (i = 0; i < HQE_HIST_BINS; i++) {
        double c = a->hist[i];
        if (c > 0.0 && cum + c >= target) return sp->lo + sp->width * ((double)i + (target - cum) / c);
        cum += c;
    }
    return sp->hi;
}

#endif /* ARGUS_HESTON_QE_KERNEL_H */
