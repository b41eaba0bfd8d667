"""The GPU Monte Carlo (argus.options.gpu): the device plumbing (CPU only), compile checks of the exact CUDA
source the GPU runs (NVRTC through cupy, or nvcc; no device needed; fmad off, so no fma in the PTX), and,
where a CUDA device is present, CPU/GPU equality on the same seeds and MC against the analytic price.
Each group skips with its reason when cupy, NVRTC, nvcc or a device is missing."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest

from argus.options import gpu, pricing

LEWIS = dict(S0=100.0, r=0.01, q=0.02, v0=0.04, kappa=4.0, theta=0.25, sigma=1.0, rho=-0.5, T=1.0)
LEWIS_CALL_100 = 16.070154917028834
FO = dict(S0=100.0, r=0.0, q=0.0, v0=0.0175, kappa=1.5768, theta=0.0398, sigma=0.5751, rho=-0.5711, T=1.0)


def _args(p):
    return (p["S0"], p["r"], p["q"], p["v0"], p["kappa"], p["theta"], p["sigma"], p["rho"], p["T"])


# ------------------------------------------------------------------ plumbing (CPU only)


def test_available_is_a_bool_and_never_raises():
    assert isinstance(gpu.available(), bool)
    reason = gpu.unavailable_reason()
    assert (reason is None) == gpu.available()


def test_resolve_device_without_a_gpu(monkeypatch):
    monkeypatch.setattr(gpu, "available", lambda: False)
    monkeypatch.setattr(gpu, "unavailable_reason", lambda: "cupy is not installed (pip install 'argus[gpu]')")
    assert pricing.resolve_device("cpu") == "cpu"
    assert pricing.resolve_device("auto") == "cpu"
    assert pricing.resolve_device("AUTO") == "cpu"
    with pytest.raises(ValueError, match=r"device gpu: unavailable, cupy is not installed.*--device cpu"):
        pricing.resolve_device("gpu")
    monkeypatch.setattr(gpu, "unavailable_reason", lambda: "no CUDA device")
    with pytest.raises(ValueError, match="device gpu: unavailable, no CUDA device"):
        pricing.resolve_device("gpu")
    with pytest.raises(ValueError, match="must be one of auto, cpu, gpu"):
        pricing.resolve_device("tpu")


def test_resolve_device_with_a_gpu(monkeypatch):
    monkeypatch.setattr(gpu, "available", lambda: True)
    monkeypatch.setattr(gpu, "unavailable_reason", lambda: None)
    assert pricing.resolve_device("auto") == "gpu"
    assert pricing.resolve_device("gpu") == "gpu"
    assert pricing.resolve_device("cpu") == "cpu"
    assert pricing.mc_functions("gpu") == (gpu.mc_european, gpu.mc_spread)
    from argus.kernels import heston_mc

    assert pricing.mc_functions("cpu") == (heston_mc.mc_european, heston_mc.mc_spread)


def test_gpu_entry_points_refuse_cleanly_without_a_device():
    if gpu.available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="GPU Monte Carlo unavailable"):
        gpu.mc_spread(*_args(LEWIS), 95.0, 90.0, "put", 1.0, 1000, 16, 1)


def test_the_kernel_source_is_the_cpu_header_plus_the_wrapper():
    src = gpu.kernel_source()
    header = gpu.header_path().read_text()
    assert header in src
    for name in gpu.KERNEL_NAMES:
        assert f'extern "C" __global__ void {name}(' in src
    assert "--fmad=false" in gpu.NVRTC_OPTIONS
    # the chunking of the float sums mirrors the CPU wrapper's (same summation order)
    assert f"#define HQE_GPU_CHUNK {gpu.CHUNK}" in src and gpu.BATCH_PATHS % gpu.CHUNK == 0


# ------------------------------------------------------------------ compile checks (no device needed)


def _check_ptx(ptx: str) -> None:
    for name in gpu.KERNEL_NAMES:
        assert f".entry {name}(" in ptx, name
    assert "fma." not in ptx  # --fmad=false: the same IEEE operations as the C build (-ffp-contract=off)


def test_the_gpu_source_compiles_with_nvrtc_for_sm90_without_contraction():
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="cupy (the gpu extra) is not installed")
    try:
        prog = nvrtc.createProgram(gpu.kernel_source(), "heston_qe_gpu.cu", [], [])
    except Exception as err:  # the NVRTC shared library itself is missing
        pytest.skip(f"NVRTC unavailable: {err}")
    try:
        nvrtc.compileProgram(prog, ["-arch=compute_90", *gpu.NVRTC_OPTIONS])
    except Exception:
        pytest.fail("NVRTC failed:\n" + nvrtc.getProgramLog(prog))
    ptx = nvrtc.getPTX(prog)
    _check_ptx(ptx.decode() if isinstance(ptx, bytes) else ptx)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA toolkit) is not on PATH")
def test_the_gpu_source_compiles_with_nvcc_for_sm90_without_contraction(tmp_path):
    src = tmp_path / "heston_qe_gpu.cu"
    src.write_text(gpu.kernel_source())

    def ptx(*flags):
        out = tmp_path / "out.ptx"
        res = subprocess.run(["nvcc", "-arch=sm_90", "-ptx", "-x", "cu", *flags, str(src), "-o", str(out)],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        return out.read_text()

    _check_ptx(ptx(*gpu.NVRTC_OPTIONS))
    assert "fma." in ptx("--std=c++14")  # the check above means something: contraction on gives fma


# ------------------------------------------------------------------ on a device

needs_device = pytest.mark.skipif(not gpu.available(), reason=f"no GPU: {gpu.unavailable_reason()}")
SPREADS = [  # (params, K1, K2, right, credit, steps, seed)
    (LEWIS, 95.0, 90.0, "put", 1.2, 50, 11),
    (LEWIS, 110.0, 120.0, "call", 2.0, 33, 12),
    (FO, 100.0, 105.0, "put", -2.5, 16, 2**63 + 5),  # a debit, a seed with the high key word set
    (FO, 98.0, 96.0, "P", 0.4, 7, 0),
]


@needs_device
def test_terminal_paths_bit_identical_to_the_cpu():
    hm = pytest.importorskip("argus.kernels.heston_mc")
    for p, steps, seed in ((LEWIS, 64, 3), (FO, 7, 2**40 + 1)):
        cpu = hm.mc_terminal(*_args(p), 10_007, steps, seed)
        dev = gpu.mc_terminal(*_args(p), 10_007, steps, seed)
        for a, b in zip(cpu, dev, strict=True):
            assert np.array_equal(a.view(np.uint64), b.view(np.uint64))


@needs_device
@pytest.mark.parametrize("case", SPREADS)
def test_spread_equals_the_cpu(case):
    hm = pytest.importorskip("argus.kernels.heston_mc")
    p, k1, k2, right, credit, steps, seed = case
    n = 3 * gpu.CHUNK * 10 + 1234  # a partial last chunk
    cpu = hm.mc_spread(*_args(p), k1, k2, right, credit, n, steps, seed, multiplier=100.0)
    dev = gpu.mc_spread(*_args(p), k1, k2, right, credit, n, steps, seed, multiplier=100.0)
    assert list(dev) == list(cpu)
    for key in ("pop", "p_touch", "p_max_loss", "p_max_profit", "q05", "q50", "q95", "max_loss", "max_profit",
                "n_paths", "pop_se", "p_touch_se", "p_max_loss_se"):
        assert dev[key] == cpu[key], key  # counts (and the histogram, hence the quantiles) are exact
    for key in ("expected_pnl", "expected_pnl_se", "mean_ST", "mean_ST_se"):
        assert math.isclose(dev[key], cpu[key], rel_tol=1e-12, abs_tol=1e-12), key  # by design: bit equal


@needs_device
def test_batches_do_not_change_the_result(monkeypatch):
    hm = pytest.importorskip("argus.kernels.heston_mc")
    monkeypatch.setattr(gpu, "BATCH_PATHS", 2 * gpu.CHUNK)
    cpu = hm.mc_spread(*_args(LEWIS), 95.0, 90.0, "put", 1.2, 5 * gpu.CHUNK + 17, 16, 9)
    dev = gpu.mc_spread(*_args(LEWIS), 95.0, 90.0, "put", 1.2, 5 * gpu.CHUNK + 17, 16, 9)
    assert dev["pop"] == cpu["pop"] and dev["q50"] == cpu["q50"]
    assert math.isclose(dev["expected_pnl"], cpu["expected_pnl"], rel_tol=1e-12, abs_tol=1e-12)
    k = [80.0, 100.0, 120.0]
    cp, cs = hm.mc_european(*_args(LEWIS), k, "C", 5 * gpu.CHUNK + 17, 16, 9)
    gp, gs = gpu.mc_european(*_args(LEWIS), k, "C", 5 * gpu.CHUNK + 17, 16, 9)
    np.testing.assert_allclose(gp, cp, rtol=1e-12)
    np.testing.assert_allclose(gs, cs, rtol=1e-12)


@needs_device
def test_european_equals_the_cpu_and_the_analytic_price():
    hm = pytest.importorskip("argus.kernels.heston_mc")
    k, rights = [80.0, 100.0, 100.0, 120.0], ["C", "C", "P", "C"]
    cp, cs = hm.mc_european(*_args(LEWIS), k, rights, 100_000, 64, 1)
    gp, gs = gpu.mc_european(*_args(LEWIS), k, rights, 100_000, 64, 1)
    np.testing.assert_allclose(gp, cp, rtol=1e-12)
    np.testing.assert_allclose(gs, cs, rtol=1e-12)
    assert abs(gp[1] - LEWIS_CALL_100) < 3 * gs[1]


@needs_device
def test_price_option_on_the_gpu_within_three_stderr():
    out = pricing.price_option("heston", spot=100.0, strike=100.0, years=1.0, rate=0.01, div=0.02, right="call",
                               v0=0.04, kappa=4.0, theta=0.25, sigma=1.0, rho=-0.5, method="mc", paths=100_000,
                               steps=64, seed=1, device="gpu")
    assert out["device"] == "gpu" and out["method"] == "mc"
    assert abs(out["price"] - LEWIS_CALL_100) < 3 * out["stderr"]


# ------------------------------------------------------------------ the wrapper on the CPU (no device needed)

_EMU_SHIM = r"""
#include <cmath>
#include <cstring>
using std::floor; using std::fabs; using std::sqrt;
struct hqe_emu_dim { long long x; };
static hqe_emu_dim blockIdx, threadIdx, blockDim, gridDim;
extern "C" void hqe_emu_set(long long b, long long t, long long bd, long long gd) {
    blockIdx.x = b; threadIdx.x = t; blockDim.x = bd; gridDim.x = gd;
}
#define __CUDACC__ 1
#define __device__
#define __global__
#define __forceinline__ inline
#define __shared__ static
static inline void __syncthreads() {}
static inline long long __double_as_longlong(double x) { long long b; memcpy(&b, &x, 8); return b; }
static inline double __longlong_as_double(long long b) { double x; memcpy(&x, &b, 8); return x; }
template <class T, class U> static inline T atomicAdd(T *p, U v) { T o = *p; *p = o + (T)v; return o; }
"""


def _fake_cupy(build_dir):
    """A stand-in for cupy: RawModule builds the exact CUDA source (the header's CUDA branch + the wrapper)
    with g++ (no contraction) and runs each kernel over its blocks and threads in turn; kernels with
    __syncthreads run one thread per block (their loops stride by blockDim, so any block size is valid)."""
    import ctypes
    import types

    class RawModule:
        def __init__(self, code, options, backend):
            assert "--fmad=false" in options and backend == "nvrtc"
            (build_dir / "k.cpp").write_text(_EMU_SHIM + code)
            res = subprocess.run(["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-w", str(build_dir / "k.cpp"),
                                  "-o", str(build_dir / "k.so")], capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, res.stderr
            self.lib = ctypes.CDLL(str(build_dir / "k.so"))

        def get_function(self, name):
            fn, lib = getattr(self.lib, name), self.lib
            types_ = {np.float64: ctypes.c_double, np.int64: ctypes.c_longlong, np.uint64: ctypes.c_ulonglong,
                      np.int32: ctypes.c_int}

            def call(grid, block, args):
                cargs = [ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else types_[type(a)](a.item())
                         for a in args]
                g, b = (grid[0], block[0]) if name.endswith("_reduce") else (min(grid[0], 3), 1)
                for bi in range(g):
                    for ti in range(b):
                        lib.hqe_emu_set(bi, ti, b, g)
                        fn(*cargs)
            return call

    return types.SimpleNamespace(
        float64=np.float64, uint64=np.uint64, RawModule=RawModule, asnumpy=np.array,
        asarray=np.ascontiguousarray, empty=lambda n, dtype=np.float64: np.empty(n, dtype=dtype),
        zeros=lambda n, dtype=np.float64: np.zeros(n, dtype=dtype),
        cuda=types.SimpleNamespace(Device=lambda: types.SimpleNamespace(attributes={"MultiProcessorCount": 2})))


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not on PATH")
def test_the_wrapper_emulated_on_the_cpu_equals_the_cpu_kernel_bit_for_bit(tmp_path, monkeypatch):
    """The GPU code path end to end (kernels, chunked sums, integer counts, histogram, host-side quantiles,
    batching), run sequentially on the CPU: bit-identical to argus.kernels.heston_mc.  What it cannot check
    is the device itself (NVRTC's code generation, concurrent atomics), which the tests above do on a GPU."""
    import sys

    hm = pytest.importorskip("argus.kernels.heston_mc")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(tmp_path))
    monkeypatch.setattr(gpu, "unavailable_reason", lambda: None)
    gpu._module.cache_clear()
    try:
        n = 2 * gpu.CHUNK + 1234
        c = hm.mc_terminal(*_args(FO), 3001, 7, 2**40 + 1)
        d = gpu.mc_terminal(*_args(FO), 3001, 7, 2**40 + 1)
        assert all(np.array_equal(a.view(np.uint64), b.view(np.uint64)) for a, b in zip(c, d, strict=True))
        for p, k1, k2, right, credit, steps, seed in SPREADS:
            c = hm.mc_spread(*_args(p), k1, k2, right, credit, n, steps, seed, multiplier=100.0)
            assert gpu.mc_spread(*_args(p), k1, k2, right, credit, n, steps, seed, multiplier=100.0) == c
        k, rights = [80.0, 100.0, 100.0, 120.0], ["C", "C", "P", "C"]
        cp, cs = hm.mc_european(*_args(LEWIS), k, rights, n, 16, 1)
        for batch in (gpu.CHUNK, gpu.BATCH_PATHS):
            monkeypatch.setattr(gpu, "BATCH_PATHS", batch)
            gp, gs = gpu.mc_european(*_args(LEWIS), k, rights, n, 16, 1)
            assert np.array_equal(gp, cp) and np.array_equal(gs, cs)
            assert gpu.mc_spread(*_args(LEWIS), 95.0, 90.0, "put", 1.2, n, 16, 9) == \
                hm.mc_spread(*_args(LEWIS), 95.0, 90.0, "put", 1.2, n, 16, 9)
    finally:
        gpu._module.cache_clear()
