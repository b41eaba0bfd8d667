"""The CUDA build of kernels/heston_qe_kernel.h: NVRTC compiles the same header the CPU build uses (no
device needed; skipped without cupy / NVRTC).  The GPU Monte Carlo itself (argus.options.gpu, CPU/GPU
equality on the same seeds, MC vs analytic on a device) is not written yet."""

from pathlib import Path

import pytest

HEADER = Path(__file__).resolve().parents[2] / "kernels" / "heston_qe_kernel.h"

# One thread per path, the kernel's own path function and spread P&L, reductions by atomics.
WRAPPER = r"""
extern "C" __global__ void hqe_spread_kernel(double S0, double r, double q, double v0, double kappa,
    double theta, double sigma, double rho, double T, long long n_steps, unsigned long long seed, double K1,
    double K2, double credit, double mult, int is_put, unsigned long long n_paths, double *acc) {
    hqe_model m; m.S0 = S0; m.r = r; m.q = q; m.v0 = v0; m.kappa = kappa; m.theta = theta; m.sigma = sigma;
    m.rho = rho; m.T = T; m.n_steps = n_steps; m.seed = seed; hqe_prepare(&m);
    hqe_spread sp; sp.K1 = K1; sp.K2 = K2; sp.credit = credit; sp.mult = mult; sp.is_put = is_put;
    hqe_spread_prepare(&sp);
    unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
    if (i >= n_paths) return;
    double lo, hi, st = hqe_path(&m, i, &lo, &hi);
    double pnl = hqe_spread_pnl(&sp, st);
    atomicAdd(&acc[0], 1.0);
    if (pnl > 0.0) atomicAdd(&acc[1], 1.0);
    atomicAdd(&acc[2], pnl);
}
"""


def test_the_cpu_kernel_header_compiles_with_nvrtc_without_contraction():
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="cupy (the gpu extra) is not installed")
    try:
        prog = nvrtc.createProgram(HEADER.read_text() + WRAPPER, "heston_qe.cu", [], [])
    except Exception as err:  # the NVRTC shared library itself is missing
        pytest.skip(f"NVRTC unavailable: {err}")
    try:
        nvrtc.compileProgram(prog, ["-arch=compute_90", "--fmad=false", "-std=c++14"])
    except Exception:
        pytest.fail("NVRTC failed:\n" + nvrtc.getProgramLog(prog))
    ptx = nvrtc.getPTX(prog)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert "hqe_spread_kernel" in ptx
    assert "fma." not in ptx  # --fmad=false: the same IEEE operations as the C build (-ffp-contract=off)
