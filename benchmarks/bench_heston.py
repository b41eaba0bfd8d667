"""Heston QE Monte Carlo benchmark: path-steps per second of the C kernel (kernels/heston_qe_kernel.h through
argus.kernels.heston_mc.mc_european, one core, Philox4x32-10 (one call per two steps) + AS241 normals,
branch-free QE step vectorised over 16 lockstep paths) against a straightforward
vectorised numpy implementation of the same Andersen QE scheme with martingale correction (numpy's
Generator for the random numbers), on the same paths x steps, in the same run.  Both price the same
strikes; the prices are printed next to the Lewis (2000) reference as a sanity check.

Also the Heston calibration (argus.analytics.heston.calibrate_heston: analytic Jacobian of the Lewis
integral, cached Gauss–Legendre domain per expiry, widening panels) against the previous method in the
same run: scipy least_squares with its finite-difference Jacobian over `heston_price` on evenly spaced
panels of width 4; both fit the same 3-expiry chain (7, 14 and 42 days, 28 strikes each, priced by the
model) from the same start, with spread_pop's settings (tolerances 1e-6, at most 20 evaluations).

GPU section (only where argus.options.gpu.available(): cupy and a CUDA device; else "gpu: not available"):
path-steps/s of the same kernel source compiled by NVRTC (argus.options.gpu.mc_european, --gpu-paths x
--steps, best of --runs after one warm-up that includes the compile), and a 100-spread chain end to end:
calibrate_heston on the 3-expiry chain above, then 100 put verticals (short strikes across the 3 expiries,
widths 5 and 10) priced by argus.options.gpu.mc_spread at 200,000 paths each, wall time from the chain to
the last result.

Usage: python benchmarks/bench_heston.py [--json] [--paths N] [--steps M] [--runs R] [--gpu-paths N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from argus.kernels.heston_mc import mc_european  # noqa: E402

# Lewis (2000) case; reference prices (REFERENCES.md)
PARAMS = dict(S0=100.0, r=0.01, q=0.02, v0=0.04, kappa=4.0, theta=0.25, sigma=1.0, rho=-0.5, T=1.0)
STRIKES = np.array([80.0, 100.0, 120.0])
REF_CALLS = np.array([26.774758743998854, 16.070154917028834, 9.024913483457836])


def numpy_qe(S0, r, q, v0, kappa, theta, sigma, rho, T, strikes, n_paths, n_steps, seed):
    """Vectorised QE (psi_c = 1.5, gamma1 = gamma2 = 0.5, martingale-corrected K0*) for calls."""
    rng = np.random.Generator(np.random.Philox(key=seed))
    dt = T / n_steps
    E = np.exp(-kappa * dt)
    c1 = sigma * sigma * E * (1 - E) / kappa
    c2 = theta * sigma * sigma * (1 - E) ** 2 / (2 * kappa)
    kr = kappa * rho / sigma - 0.5
    K0 = -rho * kappa * theta * dt / sigma
    K1 = 0.5 * dt * kr - rho / sigma
    K2 = 0.5 * dt * kr + rho / sigma
    K3 = K4 = 0.5 * dt * (1 - rho * rho)
    A = K2 + 0.5 * K4
    Kv = K1 + 0.5 * K3
    x = np.full(n_paths, np.log(S0))
    v = np.full(n_paths, v0)
    for _ in range(n_steps):
        uv = rng.random(n_paths)
        zv = rng.standard_normal(n_paths)
        zx = rng.standard_normal(n_paths)
        m = theta + (v - theta) * E
        psi = (v * c1 + c2) / (m * m)
        quad = psi <= 1.5
        # quadratic branch
        ip = 2.0 / np.where(quad, psi, 1.0)
        b2 = ip - 1 + np.sqrt(ip) * np.sqrt(np.maximum(ip - 1, 0.0))
        a = m / (1 + b2)
        den = 1 - 2 * A * a
        vq = a * (np.sqrt(b2) + zv) ** 2
        k0q = np.where(den > 0, -A * b2 * a / np.where(den > 0, den, 1.0) + 0.5 * np.log(np.where(den > 0, den, 1.0)) - Kv * v, K0)
        # exponential branch
        ps = np.where(quad, 2.0, psi)
        p = (ps - 1) / (ps + 1)
        beta = (1 - p) / m
        ve = np.where(uv <= p, 0.0, np.log((1 - p) / (1 - uv)) / beta)
        ok = A < beta
        k0e = np.where(ok, -np.log(p + beta * (1 - p) / np.where(ok, beta - A, 1.0)) - Kv * v, K0)
        vn = np.where(quad, vq, ve)
        k0 = np.where(quad, k0q, k0e)
        x += (r - q) * dt + k0 + K1 * v + K2 * vn + np.sqrt(K3 * v + K4 * vn) * zx
        v = vn
    st = np.exp(x)
    pay = np.maximum(st[:, None] - strikes[None, :], 0.0) * np.exp(-r * T)
    return pay.mean(axis=0), pay.std(axis=0, ddof=1) / np.sqrt(n_paths)


def calibration_bench(runs: int) -> dict:
    """Seconds and parameter error of the new and the previous calibration on one chain (best of runs)."""
    from scipy.optimize import least_squares

    import argus.analytics.heston as H

    true = H.HestonParams(v0=0.03, kappa=3.0, theta=0.05, sigma=0.8, rho=-0.7)
    S, r, q = 487.0, 0.05, 0.013
    expiries = np.repeat(np.array([7.0, 14.0, 42.0]) / 365.0, 28)
    strikes = np.tile(np.linspace(405.0, 540.0, 28), 3)
    rights = np.where(strikes >= S, "call", "put")
    prices = np.concatenate([H.heston_price(S, strikes[i * 28:(i + 1) * 28], T, r, q, true, rights[i * 28:(i + 1) * 28])
                             for i, T in enumerate(np.unique(expiries))])
    x0 = np.array([0.04, 2.0, 0.04, 0.5, -0.5])

    def new() -> tuple[float, np.ndarray, int]:
        t = time.perf_counter()
        res = H.calibrate_heston(S, r, q, strikes, expiries, prices, rights, x0=x0, xtol=1e-6, ftol=1e-6,
                                 gtol=1e-6, max_nfev=20)
        return time.perf_counter() - t, res.params.as_array(), res.iterations

    def previous() -> tuple[float, np.ndarray, int]:
        saved = H._MAX_WIDTH, H._GROWTH
        H._MAX_WIDTH, H._GROWTH = 4.0, 1.0  # the previous domain: even panels of width 4
        try:
            groups = [(T, np.nonzero(expiries == T)[0]) for T in np.unique(expiries)]

            def resid(x):
                p = H.HestonParams(*x)
                out = np.empty(strikes.size)
                for T, idx in groups:
                    out[idx] = H.heston_price(S, strikes[idx], T, r, q, p, rights[idx])
                return out - prices

            lo, hi = H._DEFAULT_BOUNDS
            t = time.perf_counter()
            res = least_squares(resid, x0, bounds=(lo, hi), method="trf", x_scale="jac", xtol=1e-6, ftol=1e-6,
                                gtol=1e-6, max_nfev=20)
            return time.perf_counter() - t, res.x, res.nfev
        finally:
            H._MAX_WIDTH, H._GROWTH = saved

    out = {}
    for name, fn in (("analytic_jacobian", new), ("previous_fd_jacobian", previous)):
        best = None
        for _ in range(runs):
            got = fn()
            best = got if best is None or got[0] < best[0] else best
        sec, x, nfev = best
        out[name] = {"seconds": sec, "nfev": int(nfev), "max_param_error": float(np.max(np.abs(x - true.as_array())))}
    out["speedup"] = out["previous_fd_jacobian"]["seconds"] / out["analytic_jacobian"]["seconds"]
    out["chain"] = "3 expiries (7, 14, 42 days) x 28 strikes, model prices, x0 = (0.04, 2, 0.04, 0.5, -0.5)"
    return out


def gpu_bench(steps: int, runs: int, gpu_paths: int) -> dict:
    """The GPU figures (see the module doc), or {"available": False, "reason": ...} without a device."""
    from argus.options import gpu

    if not gpu.available():
        return {"available": False, "reason": gpu.unavailable_reason()}
    import cupy

    import argus.analytics.heston as H

    P = PARAMS
    args = (P["S0"], P["r"], P["q"], P["v0"], P["kappa"], P["theta"], P["sigma"], P["rho"], P["T"], STRIKES,
            ["C"] * len(STRIKES))
    t = time.perf_counter()
    gpu.mc_european(*args, 100_000, steps, 0)  # compile (or load from cupy's cache) + warm-up
    first_call_s = time.perf_counter() - t
    times = []
    for i in range(runs):
        cupy.cuda.Device().synchronize()
        t = time.perf_counter()
        px, se = gpu.mc_european(*args, gpu_paths, steps, 1 + i)  # results come back: synchronous
        times.append(time.perf_counter() - t)
    work = gpu_paths * steps

    true = H.HestonParams(v0=0.03, kappa=3.0, theta=0.05, sigma=0.8, rho=-0.7)
    S, r, q = 487.0, 0.05, 0.013
    days = np.array([7.0, 14.0, 42.0])
    expiries = np.repeat(days / 365.0, 28)
    strikes = np.tile(np.linspace(405.0, 540.0, 28), 3)
    rights = np.where(strikes >= S, "call", "put")
    prices = np.concatenate([H.heston_price(S, strikes[i * 28:(i + 1) * 28], T, r, q, true, rights[i * 28:(i + 1) * 28])
                             for i, T in enumerate(np.unique(expiries))])
    spreads = [(T, k, k - w) for T in days / 365.0 for k in np.linspace(430.0, 485.0, 17) for w in (5.0, 10.0)][:100]
    chain_s = []
    for _ in range(runs):
        t = time.perf_counter()
        fit = H.calibrate_heston(S, r, q, strikes, expiries, prices, rights, xtol=1e-6, ftol=1e-6, gtol=1e-6,
                                 max_nfev=20)
        hp = fit.params
        pops = [gpu.mc_spread(S, r, q, hp.v0, hp.kappa, hp.theta, hp.sigma, hp.rho, T, k1, k2, "put", 1.0,
                              200_000, max(16, int(np.ceil(50 * T))), 7)["pop"] for T, k1, k2 in spreads]
        chain_s.append(time.perf_counter() - t)
    dev = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    return {
        "available": True, "device": dev["name"].decode() if isinstance(dev["name"], bytes) else str(dev["name"]),
        "paths": gpu_paths, "steps": steps, "path_steps": work, "seconds": min(times),
        "path_steps_per_s": work / min(times), "first_call_seconds": first_call_s,
        "prices": np.asarray(px).tolist(), "stderrs": np.asarray(se).tolist(),
        "chain_100_spreads": {"spreads": len(spreads), "paths": 200_000, "seconds": min(chain_s),
                              "fit_rmse": fit.rmse, "pop_range": [min(pops), max(pops)]},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--paths", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gpu-paths", type=int, default=10_000_000)
    args = ap.parse_args()
    P = PARAMS
    work = args.paths * args.steps

    import argus.kernels.heston_mc as hm

    def timed_all_cores() -> float:
        hm.set_threads(0)
        best = float("inf")
        for i in range(args.runs):
            t = time.perf_counter()
            mc_european(P["S0"], P["r"], P["q"], P["v0"], P["kappa"], P["theta"], P["sigma"], P["rho"], P["T"],
                        STRIKES, ["C"] * len(STRIKES), args.paths, args.steps, 1 + i)
            best = min(best, time.perf_counter() - t)
        return best

    all_cores_s = timed_all_cores()
    hm.set_threads(1)  # the per-core figure
    c_times = []
    for i in range(args.runs):
        t = time.perf_counter()
        c_px, c_se = mc_european(P["S0"], P["r"], P["q"], P["v0"], P["kappa"], P["theta"], P["sigma"], P["rho"],
                                 P["T"], STRIKES, ["C"] * len(STRIKES), args.paths, args.steps, 1 + i)
        c_times.append(time.perf_counter() - t)
        if i == 0:
            c_first = (c_px, c_se)  # report the seed-1 prices
    n_times = []
    for i in range(max(1, args.runs - 1)):
        t = time.perf_counter()
        n_px, n_se = numpy_qe(**P, strikes=STRIKES, n_paths=args.paths, n_steps=args.steps, seed=1 + i)
        n_times.append(time.perf_counter() - t)
        if i == 0:
            n_first = (n_px, n_se)
    (c_px, c_se), (n_px, n_se) = c_first, n_first
    c_rate = work / min(c_times)
    n_rate = work / min(n_times)
    res = dict(
        paths=args.paths, steps=args.steps, path_steps=work,
        c_seconds=min(c_times), numpy_seconds=min(n_times),
        c_path_steps_per_s=c_rate, numpy_path_steps_per_s=n_rate, speedup=c_rate / n_rate,
        c_ns_per_path_step=1e9 / c_rate,
        c_all_cores_path_steps_per_s=work / all_cores_s, all_cores_threads=os.cpu_count(),
        strikes=STRIKES.tolist(), reference=REF_CALLS.tolist(),
        c_prices=np.asarray(c_px).tolist(), c_stderrs=np.asarray(c_se).tolist(),
        numpy_prices=n_px.tolist(), numpy_stderrs=n_se.tolist(),
        python=platform.python_version(), numpy=np.__version__, machine=platform.machine(),
        cpus=os.cpu_count(),
        calibration=calibration_bench(args.runs),
        gpu=gpu_bench(args.steps, args.runs, args.gpu_paths),
    )
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"Heston QE MC, {args.paths} paths x {args.steps} steps = {work:,} path-steps (one core)")
    print(f"  C kernel : {c_rate / 1e6:8.2f} M path-steps/s  ({min(c_times):.3f} s, {1e9 / c_rate:.1f} ns/step)")
    print(f"  numpy    : {n_rate / 1e6:8.2f} M path-steps/s  ({min(n_times):.3f} s)")
    print(f"  ratio    : {c_rate / n_rate:8.1f} x")
    print(f"  C kernel, all {os.cpu_count()} cores (OpenMP): {work / all_cores_s / 1e6:8.2f} M path-steps/s")
    for k, ref, cp, cs, npx, ns in zip(STRIKES, REF_CALLS, c_px, c_se, n_px, n_se, strict=True):
        print(f"  K={k:5.0f} ref {ref:9.5f}  C {cp:9.5f} ({(cp - ref) / cs:+.2f} se)  "
              f"numpy {npx:9.5f} ({(npx - ref) / ns:+.2f} se)")
    cal = res["calibration"]
    print(f"Heston calibration, {cal['chain']}:")
    for name in ("analytic_jacobian", "previous_fd_jacobian"):
        c = cal[name]
        print(f"  {name:21s}: {c['seconds']:.3f} s, {c['nfev']} evaluations, max |param error| {c['max_param_error']:.2e}")
    print(f"  speedup: {cal['speedup']:.1f} x")
    g = res["gpu"]
    if not g["available"]:
        print(f"gpu: not available ({g['reason']})")
        return
    print(f"Heston QE MC on the GPU ({g['device']}), {g['paths']} paths x {g['steps']} steps:")
    print(f"  kernel   : {g['path_steps_per_s'] / 1e9:8.2f} G path-steps/s  ({g['seconds']:.3f} s; first call, "
          f"with the compile, {g['first_call_seconds']:.2f} s)")
    c = g["chain_100_spreads"]
    print(f"  chain    : {c['spreads']} spreads calibrated + priced at {c['paths']} paths in {c['seconds']:.3f} s")


if __name__ == "__main__":
    main()
