/* Heston Monte Carlo kernel: Philox4x32-10, inverse-CDF normals, Andersen (2008) QE with martingale
 * correction, and per-path reductions (European prices, vertical-spread statistics).
 *
 * Header-only, `static inline` C99 with no globals and no allocation, so the same source can be included
 * by the Cython wrapper (kernels/heston_mc.pyx) and, later, by a CUDA RawModule (one thread per path):
 * both then draw exactly the same random numbers.  Every path is independent (the random stream of a path
 * is a pure function of (seed, path, step)), so a path range can be split across threads; reductions are
 * accumulated into caller-owned accumulators and merged in a fixed order for reproducibility.
 *
 * Random numbers, "keyed by (seed, path, step)":
 *   key     = (seed & 0xffffffff, seed >> 32)
 *   counter = (path & 0xffffffff, path >> 32, step, HQE_STREAM_PATH = 0)
 *   out     = Philox4x32-10(counter, key)       (Random123, Salmon et al. 2011)
 *   out[0] -> U_v  (uniform for the variance step; in the quadratic branch Z_v = Phi^-1(U_v))
 *   out[1] -> Z_x  = Phi^-1(U) for the log-price step
 *   out[2], out[3] unused (reserved).
 * Uniforms: u = (x + 0.5) * 2^-32 for a 32-bit output x, so u lies in (0, 1), never 0 or 1.
 * Normals: inverse CDF by Wichura's AS241 (PPND16, relative accuracy ~1e-16), deterministic; uses only
 * sqrt and log.
 *
 * QE (Andersen 2008, "Simple and efficient simulation of the Heston stochastic volatility model"):
 *   m = theta + (v - theta) E,  s2 = v sigma^2 E (1 - E) / kappa + theta sigma^2 (1 - E)^2 / (2 kappa),
 *   psi = s2 / m^2 with E = exp(-kappa dt).  psi <= psi_c = 1.5: v' = a (b + Z_v)^2 with
 *   b^2 = 2/psi - 1 + sqrt(2/psi) sqrt(2/psi - 1), a = m / (1 + b^2);  else v' = 0 if U_v <= p, else
 *   log((1 - p) / (1 - U_v)) / beta with p = (psi - 1)/(psi + 1), beta = (1 - p) / m.
 *   Log price (gamma1 = gamma2 = 0.5):
 *   ln S' = ln S + (r - q) dt + K0* + K1 v + K2 v' + sqrt(K3 v + K4 v') Z_x
 *   K1 = g1 dt (kappa rho / sigma - 1/2) - rho / sigma, K2 = g2 dt (kappa rho / sigma - 1/2) + rho / sigma,
 *   K3 = g1 dt (1 - rho^2), K4 = g2 dt (1 - rho^2), A = K2 + K4 / 2 and the martingale-corrected
 *   K0* = -ln E[exp(A v') | v] - (K1 + K3 / 2) v   (Andersen's proposition 9), i.e.
 *     quadratic:   K0* = -A b^2 a / (1 - 2 A a) + ln(1 - 2 A a) / 2 - (K1 + K3/2) v   (needs 2 A a < 1)
 *     exponential: K0* = -ln(p + beta (1 - p) / (beta - A)) - (K1 + K3/2) v            (needs A < beta)
 *   When the moment does not exist the plain K0 = -rho kappa theta dt / sigma is used (documented
 *   fallback; it does not occur for realistic parameters and dt).  This makes E[S'|S, v] = S e^{(r-q)dt}.
 */
#ifndef ARGUS_HESTON_QE_KERNEL_H
#define ARGUS_HESTON_QE_KERNEL_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define HQE_FN static __device__ __forceinline__
#else
#define HQE_FN static inline
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

HQE_FN void hqe_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    int i;
    for (i = 0; i < 10; i++) {
        uint64_t p0 = (uint64_t)HQE_PHILOX_M0 * (uint64_t)c0;
        uint64_t p1 = (uint64_t)HQE_PHILOX_M1 * (uint64_t)c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += HQE_PHILOX_W0;
        k1 += HQE_PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* u in (0, 1): (x + 1/2) / 2^32. */
HQE_FN double hqe_u01(uint32_t x) { return ((double)x + 0.5) * 2.3283064365386962890625e-10; }

/* ------------------------------------------------------------------ Phi^-1 (Wichura AS241, PPND16) */

HQE_FN double hqe_norm_inv(double p) {
    double q = p - 0.5, r, val;
    if (fabs(q) <= 0.425) {
        r = 0.180625 - q * q;
        return q * (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r
                        + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r
                      + 133.14166789178437745) * r + 3.387132872796366608)
             / (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r
                    + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r
                  + 42.313330701600911252) * r + 1.0);
    }
    r = (q < 0.0) ? p : 1.0 - p;
    r = sqrt(-log(r));
    if (r <= 5.0) {
        r -= 1.6;
        val = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r
                   + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                 + 4.6303378461565452959) * r + 1.42343711074968357734)
            / (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r
                   + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r
                 + 2.05319162663775882187) * r + 1.0);
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

/* ------------------------------------------------------------------ model and per-step constants */

typedef struct {
    double S0, r, q, v0, kappa, theta, sigma, rho, T;
    int64_t n_steps;
    uint64_t seed;
    /* derived by hqe_prepare */
    double dt, drift, E, c1, c2, K0, K1, K2, K3, K4, A, Kv;
} hqe_model;

HQE_FN void hqe_prepare(hqe_model *m) {
    double dt = m->T / (double)m->n_steps;
    double kr = m->kappa * m->rho / m->sigma - 0.5;
    m->dt = dt;
    m->drift = (m->r - m->q) * dt;
    m->E = exp(-m->kappa * dt);
    m->c1 = m->sigma * m->sigma * m->E * (1.0 - m->E) / m->kappa;
    m->c2 = m->theta * m->sigma * m->sigma * (1.0 - m->E) * (1.0 - m->E) / (2.0 * m->kappa);
    m->K0 = -m->rho * m->kappa * m->theta * dt / m->sigma;
    m->K1 = HQE_GAMMA1 * dt * kr - m->rho / m->sigma;
    m->K2 = HQE_GAMMA2 * dt * kr + m->rho / m->sigma;
    m->K3 = HQE_GAMMA1 * dt * (1.0 - m->rho * m->rho);
    m->K4 = HQE_GAMMA2 * dt * (1.0 - m->rho * m->rho);
    m->A = m->K2 + 0.5 * m->K4;
    m->Kv = m->K1 + 0.5 * m->K3;
}

/* One QE step: v -> v' and the increment of ln S, from the uniforms' 32-bit words (x0, x1). */
HQE_FN double hqe_step(const hqe_model *m, double v, uint32_t x0, uint32_t x1, double *v_next) {
    double mean = m->theta + (v - m->theta) * m->E;
    double s2 = v * m->c1 + m->c2;
    double psi = s2 / (mean * mean);
    double uv = hqe_u01(x0), vn, k0;
    if (psi <= HQE_PSI_C) {
        double ip = 2.0 / psi;
        double b2 = ip - 1.0 + sqrt(ip) * sqrt(ip - 1.0);
        double a = mean / (1.0 + b2);
        double zv = sqrt(b2) + hqe_norm_inv(uv);
        double den = 1.0 - 2.0 * m->A * a;
        vn = a * zv * zv;
        k0 = (den > 0.0) ? (-m->A * b2 * a / den + 0.5 * log(den) - m->Kv * v) : m->K0;
    } else {
        double p = (psi - 1.0) / (psi + 1.0);
        double beta = (1.0 - p) / mean;
        vn = (uv <= p) ? 0.0 : log((1.0 - p) / (1.0 - uv)) / beta;
        k0 = (m->A < beta) ? (-log(p + beta * (1.0 - p) / (beta - m->A)) - m->Kv * v) : m->K0;
    }
    *v_next = vn;
    return m->drift + k0 + m->K1 * v + m->K2 * vn + sqrt(m->K3 * v + m->K4 * vn) * hqe_norm_inv(hqe_u01(x1));
}

/* Simulate one path; returns S_T.  If s_min / s_max are non-NULL they receive the minimum / maximum of
 * S over the monitoring dates t_0 = 0 (S0 included), t_1, ..., t_n = T. */
HQE_FN double hqe_path(const hqe_model *m, uint64_t path, double *s_min, double *s_max) {
    uint32_t key[2], ctr[4], out[4];
    double x = log(m->S0), v = m->v0, vn, lo = m->S0, hi = m->S0, s;
    int track = (s_min != 0);
    int64_t k;
    key[0] = (uint32_t)(m->seed & 0xffffffffu);
    key[1] = (uint32_t)(m->seed >> 32);
    ctr[0] = (uint32_t)(path & 0xffffffffu);
    ctr[1] = (uint32_t)(path >> 32);
    ctr[3] = HQE_STREAM_PATH;
    for (k = 0; k < m->n_steps; k++) {
        ctr[2] = (uint32_t)k;
        hqe_philox4x32_10(ctr, key, out);
        x += hqe_step(m, v, out[0], out[1], &vn);
        v = vn;
        if (track) {
            s = exp(x);
            if (s < lo) lo = s;
            if (s > hi) hi = s;
        }
    }
    if (track) { *s_min = lo; *s_max = hi; }
    return exp(x);
}

/* HQE_LANES (default 1: measured 4 and 8 no faster on x86-64 -O3, the step is throughput-bound, not
 * latency-bound) consecutive paths [path0, path0 + nl) advanced in lockstep (nl <= HQE_LANES): the same numbers
 * as hqe_path for each path, but the independent dependency chains of the lanes overlap in the CPU
 * pipeline (a single path is latency-bound).  lo / hi may be NULL (no extrema tracking). */
#ifndef HQE_LANES
#define HQE_LANES 1
#endif
HQE_FN void hqe_path_block(const hqe_model *m, uint64_t path0, int nl, double *st, double *lo, double *hi) {
    uint32_t key[2], ctr[HQE_LANES][4], out[HQE_LANES][4];
    double x[HQE_LANES], v[HQE_LANES], vn, s;
    int64_t k;
    int l;
    key[0] = (uint32_t)(m->seed & 0xffffffffu);
    key[1] = (uint32_t)(m->seed >> 32);
    for (l = 0; l < HQE_LANES; l++) {
        uint64_t path = path0 + (uint64_t)(l < nl ? l : 0);
        ctr[l][0] = (uint32_t)(path & 0xffffffffu);
        ctr[l][1] = (uint32_t)(path >> 32);
        ctr[l][3] = HQE_STREAM_PATH;
        x[l] = log(m->S0);
        v[l] = m->v0;
        if (lo) { lo[l] = m->S0; hi[l] = m->S0; }
    }
    for (k = 0; k < m->n_steps; k++) {
        for (l = 0; l < HQE_LANES; l++) {
            ctr[l][2] = (uint32_t)k;
            hqe_philox4x32_10(ctr[l], key, out[l]);
            x[l] += hqe_step(m, v[l], out[l][0], out[l][1], &vn);
            v[l] = vn;
        }
        if (lo) {
            for (l = 0; l < HQE_LANES; l++) {
                s = exp(x[l]);
                if (s < lo[l]) lo[l] = s;
                if (s > hi[l]) hi[l] = s;
            }
        }
    }
    for (l = 0; l < nl; l++) st[l] = exp(x[l]);
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
