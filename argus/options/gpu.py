"""Heston QE Monte Carlo on a CUDA GPU through CuPy: the GPU twin of argus.kernels.heston_mc.

The numerical kernel is the very header the CPU build compiles, kernels/heston_qe_kernel.h (shipped inside
the package as argus/kernels/heston_qe_kernel.h; a development checkout falls back to kernels/), compiled at
run time by NVRTC through `cupy.RawModule` together with the small `extern "C"` wrapper below, with
`--fmad=false` (no contraction into FMA, as the CPU build's -ffp-contract=off) and `--std=c++14`.

Same numbers as the CPU.  One GPU thread simulates one path with the header's `hqe_path`, keyed by
(seed, path, step) exactly as on the CPU (heston_qe_kernel.h documents the Philox keying), so every path's
S_T, min and max have the same bits as the CPU's: the per-step arithmetic is IEEE +, -, *, /, sqrt only
(correctly rounded on both), plus the header's own log/exp.  The reductions happen on the GPU, never by
copying the paths back:

- counts (paths in profit, touching the short strike, at max loss / max profit) and the 4096-bin P&L
  histogram: per-block shared-memory counters with integer atomics, merged into global 64-bit integer
  counters with atomics. Integer sums are exact, so these equal the CPU's counts exactly, whatever the
  order in which the atomics land;
- float sums (sum of P&L, of P&L^2, of S_T, of S_T^2; the European payoff sums): a second kernel sums each
  4096-path chunk's per-path values sequentially in path order, one thread per (chunk, quantity), giving
  per-chunk partials that are then merged in chunk order.  That is the CPU's own order (the CPU sums each
  CHUNK = 4096 paths sequentially into a private accumulator and merges the chunks in chunk order), so
  the sums are expected to be bit-identical too.  Only the per-chunk partials (n_paths / 4096 rows of a few
  doubles) and the integer counters come back to the host. The per-path values of the batch being reduced
  live in device memory between the two kernels (8 or 16 bytes a path, in batches of at most
  BATCH_PATHS paths).

Where the GPU result can differ from the CPU's: only in the order of float additions, and only if that
order changes (the chunking here mirrors the CPU's CHUNK = 4096; should either side change its chunking,
sums and means would agree to rounding, ~1e-15 relative, instead of bit for bit); the counts (PoP, touch,
max loss, histogram, hence the quantiles) are exact either way.  This was compiled (NVRTC and nvcc, sm_90
PTX, no fma instructions) but, in the session that wrote it, not run on a device: tests/options/test_gpu.py
holds the CPU/GPU equality tests, which run where a device is present.

API (signatures and results as argus.kernels.heston_mc):
  available() -> bool; unavailable_reason() -> str | None
  mc_european(S0, r, q, v0, kappa, theta, sigma, rho, T, strikes, rights, n_paths, n_steps, seed)
  mc_spread(S0, r, q, v0, kappa, theta, sigma, rho, T, K1, K2, right, credit, n_paths, n_steps, seed,
            multiplier=1.0) -> dict
  mc_terminal(..., n_paths, n_steps, seed) -> (S_T, S_min, S_max)   per-path arrays (tests/diagnostics)
  kernel_source() -> str; NVRTC_OPTIONS: the exact CUDA source and options compiled (for compile checks)
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

__all__ = ["available", "unavailable_reason", "mc_european", "mc_spread", "mc_terminal", "kernel_source",
           "header_path", "NVRTC_OPTIONS", "KERNEL_NAMES", "CHUNK", "HIST_BINS"]

#: Paths per reduction chunk: the CPU wrapper's CHUNK (kernels/heston_mc.pyx), so the float sums run in the
#: same order on both devices.
CHUNK = 4096
HIST_BINS = 4096
#: Threads per block of the path kernels.
BLOCK = 256
#: Most paths simulated per launch (their per-path values held on the device until reduced): 2^24 paths,
#: 256 MiB of per-path values for a spread.
BATCH_PATHS = 1 << 24

NVRTC_OPTIONS = ("--std=c++14", "--fmad=false")
KERNEL_NAMES = ("hqe_gpu_terminal", "hqe_gpu_european_paths", "hqe_gpu_european_reduce", "hqe_gpu_spread_paths",
                "hqe_gpu_spread_reduce")

# nvcc pre-includes cuda_runtime.h (hence <stdint.h>, where int64_t is `long`) while the header's CUDA
# branch typedefs the fixed-width names itself (NVRTC has no <stdint.h>): renaming them lets the same text
# compile with both NVRTC and nvcc.
_PRELUDE = r"""
#define uint32_t hqe_u32_t
#define int32_t hqe_i32_t
#define uint64_t hqe_u64_t
#define int64_t hqe_i64_t
"""

# The wrapper: one thread per path (grid-stride), the header's hqe_path / hqe_spread_pnl, the counts and the
# histogram by shared-memory then global integer atomics, per-path float values stored for the chunked
# sequential sums of the *_reduce kernels (one thread per 4096-path chunk and quantity, path order).
_WRAPPER = r"""
#define HQE_GPU_BLOCK 256
#define HQE_GPU_CHUNK 4096

__device__ __forceinline__ void hqe_gpu_model(hqe_model *m, const double *par, long long n_steps,
                                              unsigned long long seed) {
    m->S0 = par[0]; m->r = par[1]; m->q = par[2]; m->v0 = par[3]; m->kappa = par[4]; m->theta = par[5];
    m->sigma = par[6]; m->rho = par[7]; m->T = par[8]; m->n_steps = n_steps; m->seed = seed;
    hqe_prepare(m);
}

/* Per-path (S_T, min S, max S) of paths [p0, p0 + n). */
extern "C" __global__ void hqe_gpu_terminal(const double *par, long long n_steps, unsigned long long seed,
                                            unsigned long long p0, long long n, double *st, double *lo,
                                            double *hi) {
    hqe_model m;
    hqe_gpu_model(&m, par, n_steps, seed);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double a, b;
        st[i] = hqe_path(&m, p0 + (unsigned long long)i, &a, &b);
        lo[i] = a;
        hi[i] = b;
    }
}

/* S_T of paths [p0, p0 + n) into st (reduced by hqe_gpu_european_reduce). */
extern "C" __global__ void hqe_gpu_european_paths(const double *par, long long n_steps, unsigned long long seed,
                                                  unsigned long long p0, long long n, double *st) {
    hqe_model m;
    hqe_gpu_model(&m, par, n_steps, seed);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        st[i] = hqe_path(&m, p0 + (unsigned long long)i, 0, 0);
}

/* Chunk c (paths [c * CHUNK, min((c + 1) * CHUNK, n)) of the batch) and quantity j: j < n_k: out[c, j] and
 * out[c, n_k + j] = sum and sum of squares of strike j's discounted payoff; j == n_k: out[c, 2 n_k] and
 * out[c, 2 n_k + 1] = sum of S_T and of S_T^2; in path order, as the CPU's hqe_european_range. */
extern "C" __global__ void hqe_gpu_european_reduce(const double *st, long long n, long long n_chunks, int n_k,
                                                   const double *strikes, const int *is_put, double disc,
                                                   double *out) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long c = t / (n_k + 1);
    int j = (int)(t % (n_k + 1));
    if (c >= n_chunks) return;
    long long i0 = c * HQE_GPU_CHUNK, i1 = i0 + HQE_GPU_CHUNK < n ? i0 + HQE_GPU_CHUNK : n;
    long long stride = 2 * (long long)n_k + 2;
    double s1 = 0.0, s2 = 0.0;
    if (j < n_k) {
        double k = strikes[j];
        int put = is_put[j];
        for (long long i = i0; i < i1; i++) {
            double s = st[i];
            double pay = put ? k - s : s - k;
            pay = (pay > 0.0 ? pay : 0.0) * disc;
            s1 += pay;
            s2 += pay * pay;
        }
        out[c * stride + j] = s1;
        out[c * stride + n_k + j] = s2;
    } else {
        for (long long i = i0; i < i1; i++) {
            double s = st[i];
            s1 += s;
            s2 += s * s;
        }
        out[c * stride + 2 * n_k] = s1;
        out[c * stride + 2 * n_k + 1] = s2;
    }
}

/* Vertical spread, paths [p0, p0 + n): pnl[i], st[i] per path; counts[0..3] += paths in profit, touching,
 * at max loss, at max profit; hist[b] += paths in P&L bin b; info = (lo, hi, width) of hqe_spread_prepare.
 * The classification is hqe_spread_add's, statement for statement. */
extern "C" __global__ void hqe_gpu_spread_paths(const double *par, long long n_steps, unsigned long long seed,
                                                const double *spp, int is_put, unsigned long long p0,
                                                long long n, double *pnl_out, double *st_out,
                                                unsigned long long *counts, unsigned long long *hist,
                                                double *info) {
    __shared__ unsigned int sh_hist[HQE_HIST_BINS];
    __shared__ unsigned int sh_cnt[4];
    hqe_model m;
    hqe_spread sp;
    hqe_gpu_model(&m, par, n_steps, seed);
    sp.K1 = spp[0]; sp.K2 = spp[1]; sp.credit = spp[2]; sp.mult = spp[3]; sp.is_put = is_put;
    hqe_spread_prepare(&sp);
    for (int b = threadIdx.x; b < HQE_HIST_BINS; b += blockDim.x) sh_hist[b] = 0u;
    for (int k = threadIdx.x; k < 4; k += blockDim.x) sh_cnt[k] = 0u;
    if (blockIdx.x == 0 && threadIdx.x == 0) { info[0] = sp.lo; info[1] = sp.hi; info[2] = sp.width; }
    __syncthreads();
    unsigned int n_profit = 0u, n_touch = 0u, n_max_loss = 0u, n_max_profit = 0u;
    double tol = 1e-12 * (fabs(sp.lo) + fabs(sp.hi) + 1.0);
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        double s_min, s_max;
        double s = hqe_path(&m, p0 + (unsigned long long)i, &s_min, &s_max);
        double pnl = hqe_spread_pnl(&sp, s);
        pnl_out[i] = pnl;
        st_out[i] = s;
        if (pnl > 0.0) n_profit++;
        if (sp.is_put ? (s_min <= sp.K1) : (s_max >= sp.K1)) n_touch++;
        if (pnl <= sp.lo + tol) n_max_loss++;
        else if (pnl >= sp.hi - tol) n_max_profit++;
        else {
            long long b = (long long)((pnl - sp.lo) / sp.width);
            if (b < 0) b = 0;
            if (b >= HQE_HIST_BINS) b = HQE_HIST_BINS - 1;
            atomicAdd(&sh_hist[b], 1u);
        }
    }
    if (n_profit) atomicAdd(&sh_cnt[0], n_profit);
    if (n_touch) atomicAdd(&sh_cnt[1], n_touch);
    if (n_max_loss) atomicAdd(&sh_cnt[2], n_max_loss);
    if (n_max_profit) atomicAdd(&sh_cnt[3], n_max_profit);
    __syncthreads();
    for (int b = threadIdx.x; b < HQE_HIST_BINS; b += blockDim.x)
        if (sh_hist[b]) atomicAdd(&hist[b], (unsigned long long)sh_hist[b]);
    for (int k = threadIdx.x; k < 4; k += blockDim.x)
        if (sh_cnt[k]) atomicAdd(&counts[k], (unsigned long long)sh_cnt[k]);
}

/* Chunk c and quantity j (0: P&L, 1: S_T): out[c, 2 j] = sum, out[c, 2 j + 1] = sum of squares, in path
 * order, as hqe_spread_add's sum_pnl / sumsq_pnl / sum_st / sumsq_st within a CPU chunk. */
extern "C" __global__ void hqe_gpu_spread_reduce(const double *pnl, const double *st, long long n,
                                                 long long n_chunks, double *out) {
    long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long c = t >> 1;
    int j = (int)(t & 1);
    if (c >= n_chunks) return;
    const double *x = j ? st : pnl;
    long long i0 = c * HQE_GPU_CHUNK, i1 = i0 + HQE_GPU_CHUNK < n ? i0 + HQE_GPU_CHUNK : n;
    double s1 = 0.0, s2 = 0.0;
    for (long long i = i0; i < i1; i++) {
        double v = x[i];
        s1 += v;
        s2 += v * v;
    }
    out[c * 4 + 2 * j] = s1;
    out[c * 4 + 2 * j + 1] = s2;
}
"""


def header_path() -> Path:
    """The kernel header: inside the installed package, else the development checkout's kernels/."""
    here = Path(__file__).resolve().parents[1]  # argus/
    for cand in (here / "kernels" / "heston_qe_kernel.h", here.parent / "kernels" / "heston_qe_kernel.h"):
        if cand.is_file():
            return cand
    raise FileNotFoundError("heston_qe_kernel.h is neither in argus/kernels/ (installed package) nor in "
                            "kernels/ (development checkout)")


def kernel_source() -> str:
    """The complete CUDA source compiled on the GPU: prelude + the CPU's header + the extern "C" wrapper."""
    return _PRELUDE + header_path().read_text() + _WRAPPER


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when a CUDA device can be used through cupy, else why not (never raises)."""
    try:
        import cupy
    except ImportError:
        return "cupy is not installed (pip install 'argus[gpu]')"
    except Exception as err:  # a broken cupy install
        return f"cupy failed to import: {err}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # no driver, no device
        return f"no CUDA device ({type(err).__name__}: {err})"
    if n < 1:
        return "no CUDA device"
    return None


def available() -> bool:
    """True when cupy is importable and a CUDA device is present; never raises."""
    try:
        return unavailable_reason() is None
    except Exception:
        return False


@functools.lru_cache(maxsize=1)
def _module():
    import cupy

    return cupy.RawModule(code=kernel_source(), options=NVRTC_OPTIONS, backend="nvrtc")


def _kernel(name: str):
    return _module().get_function(name)


def _require() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(f"GPU Monte Carlo unavailable: {reason}")


# ------------------------------------------------------------------ validation (as heston_mc.pyx)


def _params(S0, r, q, v0, kappa, theta, sigma, rho, T, n_steps, seed) -> tuple[np.ndarray, int, int]:
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
    par = np.array([S0, r, q, v0, kappa, theta, sigma, rho, T], dtype=np.float64)
    return par, int(n_steps), int(seed)


def _is_put(right) -> int:
    s = str(right).strip().upper()
    if s in ("P", "PUT"):
        return 1
    if s in ("C", "CALL"):
        return 0
    raise ValueError(f"right must be 'C'/'call' or 'P'/'put', got {right!r}")


def _check_paths(n_paths) -> int:
    if int(n_paths) < 2:
        raise ValueError("n_paths must be >= 2")
    return int(n_paths)


def _grid(n: int) -> int:
    import cupy

    blocks = (n + BLOCK - 1) // BLOCK
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    return max(1, min(blocks, 16 * sms))


def _batches(n_paths: int):
    """(first path, paths) of each launch; every batch but the last is a multiple of CHUNK paths."""
    p0 = 0
    while p0 < n_paths:
        n = min(BATCH_PATHS, n_paths - p0)
        yield p0, n
        p0 += n


def _chunk_order_sum(parts: np.ndarray) -> np.ndarray:
    """Row sum in row order starting from 0.0 (the CPU's merge of chunk accumulators)."""
    return np.cumsum(parts, axis=0)[-1] if len(parts) else np.zeros(parts.shape[1])


# ------------------------------------------------------------------ entry points


def mc_terminal(S0, r, q, v0, kappa, theta, sigma, rho, T, n_paths, n_steps, seed):
    """Per-path (S_T, min_t S_t, max_t S_t), copied back (tests/diagnostics only, as on the CPU)."""
    _require()
    import cupy

    par, n_steps, seed = _params(S0, r, q, v0, kappa, theta, sigma, rho, T, n_steps, seed)
    N = _check_paths(n_paths)
    d_par = cupy.asarray(par)
    st, lo, hi = (cupy.empty(N, dtype=cupy.float64) for _ in range(3))
    _kernel("hqe_gpu_terminal")((_grid(N),), (BLOCK,), (d_par, np.int64(n_steps), np.uint64(seed), np.uint64(0),
                                                        np.int64(N), st, lo, hi))
    return cupy.asnumpy(st), cupy.asnumpy(lo), cupy.asnumpy(hi)


def mc_european(S0, r, q, v0, kappa, theta, sigma, rho, T, strikes, rights, n_paths, n_steps, seed):
    """Discounted European prices and their standard errors, one per (strike, right); as the CPU's."""
    _require()
    import cupy

    par, n_steps, seed = _params(S0, r, q, v0, kappa, theta, sigma, rho, T, n_steps, seed)
    K = np.ascontiguousarray(strikes, dtype=np.float64).reshape(-1)
    if isinstance(rights, str):
        rights = [rights] * K.shape[0]
    put = np.array([_is_put(x) for x in rights], dtype=np.int32).reshape(-1)
    if put.shape[0] != K.shape[0]:
        raise ValueError("strikes and rights differ in length")
    n_k = int(K.shape[0])
    N = _check_paths(n_paths)
    disc = math.exp(-r * T)
    d_par, d_k, d_put = cupy.asarray(par), cupy.asarray(K if n_k else np.zeros(1)), cupy.asarray(
        put if n_k else np.zeros(1, dtype=np.int32))
    d_st = cupy.empty(min(N, BATCH_PATHS), dtype=cupy.float64)
    paths_k, reduce_k = _kernel("hqe_gpu_european_paths"), _kernel("hqe_gpu_european_reduce")
    parts = []
    for p0, n in _batches(N):
        n_chunks = (n + CHUNK - 1) // CHUNK
        out = cupy.empty((n_chunks, 2 * n_k + 2), dtype=cupy.float64)
        paths_k((_grid(n),), (BLOCK,), (d_par, np.int64(n_steps), np.uint64(seed), np.uint64(p0), np.int64(n), d_st))
        threads = n_chunks * (n_k + 1)
        reduce_k(((threads + 127) // 128,), (128,), (d_st, np.int64(n), np.int64(n_chunks), np.int32(n_k), d_k,
                                                    d_put, np.float64(disc), out))
        parts.append(cupy.asnumpy(out))
    sums = np.concatenate(parts, axis=0)
    tot = sums.sum(axis=0)  # merged in chunk order, the CPU's own expression on the same rows
    mean = tot[:n_k] / N
    var = np.maximum(tot[n_k:2 * n_k] / N - mean * mean, 0.0) * N / (N - 1)
    return mean, np.sqrt(var / N)


def _quantile(lo: float, hi: float, width: float, n: float, n_max_loss: float, hist: np.ndarray,
              prob: float) -> float:
    """hqe_spread_quantile on the host (the same IEEE operations; the cumulative counts are exact integers)."""
    target = prob * n
    cum = n_max_loss
    if n <= 0.0:
        return float("nan")
    if target <= cum:
        return lo
    after = cum + np.cumsum(hist)  # exact: integer-valued doubles below 2^53
    hit = np.nonzero((hist > 0.0) & (after >= target))[0]
    if hit.size == 0:
        return hi
    i = int(hit[0])
    c = float(hist[i])
    before = float(after[i]) - c
    return lo + width * (float(i) + (target - before) / c)


def mc_spread(S0, r, q, v0, kappa, theta, sigma, rho, T, K1, K2, right, credit, n_paths, n_steps, seed,
              multiplier=1.0):
    """Vertical spread statistics at expiry (short K1, long K2, same right): the CPU mc_spread's dict."""
    _require()
    import cupy

    par, n_steps, seed = _params(S0, r, q, v0, kappa, theta, sigma, rho, T, n_steps, seed)
    K1, K2, credit, multiplier = float(K1), float(K2), float(credit), float(multiplier)
    if not (K1 > 0 and K2 > 0 and K1 != K2 and multiplier > 0 and math.isfinite(credit)):
        raise ValueError("need K1 > 0, K2 > 0, K1 != K2, multiplier > 0, finite credit")
    is_put = _is_put(right)
    N = _check_paths(n_paths)
    d_par = cupy.asarray(par)
    d_sp = cupy.asarray(np.array([K1, K2, credit, multiplier], dtype=np.float64))
    nb = min(N, BATCH_PATHS)
    d_pnl, d_st = cupy.empty(nb, dtype=cupy.float64), cupy.empty(nb, dtype=cupy.float64)
    d_counts = cupy.zeros(4, dtype=cupy.uint64)
    d_hist = cupy.zeros(HIST_BINS, dtype=cupy.uint64)
    d_info = cupy.zeros(3, dtype=cupy.float64)
    paths_k, reduce_k = _kernel("hqe_gpu_spread_paths"), _kernel("hqe_gpu_spread_reduce")
    parts = []
    for p0, n in _batches(N):
        n_chunks = (n + CHUNK - 1) // CHUNK
        out = cupy.empty((n_chunks, 4), dtype=cupy.float64)
        paths_k((_grid(n),), (BLOCK,), (d_par, np.int64(n_steps), np.uint64(seed), d_sp, np.int32(is_put),
                                        np.uint64(p0), np.int64(n), d_pnl, d_st, d_counts, d_hist, d_info))
        threads = 2 * n_chunks
        reduce_k(((threads + 127) // 128,), (128,), (d_pnl, d_st, np.int64(n), np.int64(n_chunks), out))
        parts.append(cupy.asnumpy(out))
    sum_pnl, sumsq_pnl, sum_st, sumsq_st = (float(x) for x in _chunk_order_sum(np.concatenate(parts, axis=0)))
    n_profit, n_touch, n_max_loss, n_max_profit = (float(x) for x in cupy.asnumpy(d_counts))
    hist = cupy.asnumpy(d_hist).astype(np.float64)
    lo, hi, width = (float(x) for x in cupy.asnumpy(d_info))
    n = float(N)

    def prop(k):
        p = k / n
        return p, math.sqrt(max(p * (1.0 - p), 0.0) / n)

    pop, pop_se = prop(n_profit)
    pt, pt_se = prop(n_touch)
    pml, pml_se = prop(n_max_loss)
    mean = sum_pnl / n
    var = max(sumsq_pnl / n - mean * mean, 0.0) * n / (n - 1)
    mst = sum_st / n
    vst = max(sumsq_st / n - mst * mst, 0.0) * n / (n - 1)
    return dict(
        pop=pop, pop_se=pop_se,
        expected_pnl=mean, expected_pnl_se=math.sqrt(var / n),
        p_touch=pt, p_touch_se=pt_se,
        p_max_loss=pml, p_max_loss_se=pml_se,
        p_max_profit=n_max_profit / n,
        q05=_quantile(lo, hi, width, n, n_max_loss, hist, 0.05),
        q50=_quantile(lo, hi, width, n, n_max_loss, hist, 0.50),
        q95=_quantile(lo, hi, width, n, n_max_loss, hist, 0.95),
        max_loss=lo, max_profit=hi,
        mean_ST=mst, mean_ST_se=math.sqrt(vst / n),
        n_paths=int(n),
    )
