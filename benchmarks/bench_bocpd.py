"""BOCPD benchmark: change-point steps per second of the Cython BocpdReducer (feed_bars over closed bars of
several instruments) against the numpy reference of the same truncated algorithm
(tests/kernels/bocpd_reference.py, vectorised over run lengths), measured in the same run on the same bars.
The numpy reference gets fewer steps (it is slow); both are reported per step. The reducer's rows are
checked against the reference's on the steps both ran.

Usage: python benchmarks/bench_bocpd.py [--json] [--bars N] [--instruments K] [--max-run R]
       [--numpy-bars M] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from argus.kernels.bars import BAR_FIELDS  # noqa: E402
from argus.kernels.bocpd import BocpdReducer, config_hash  # noqa: E402
from tests.kernels.bocpd_reference import BocpdReference  # noqa: E402

BAR_DTYPE = np.dtype(list(BAR_FIELDS))
MINUTE = 60_000_000_000


def make_bars(n: int, instruments: int, seed: int = 5) -> np.ndarray:
    """n closed bars, round-robin over the instruments, random walks with a few volatility regimes."""
    rng = np.random.Generator(np.random.Philox(key=seed))
    per = -(-n // instruments)
    vol = np.repeat(rng.choice([0.002, 0.01, 0.03], (instruments, per // 100 + 1)), 100, axis=1)[:, :per]
    rets = rng.normal(0.0, 1.0, (instruments, per)) * vol
    closes = (50.0 + 450.0 * rng.random((instruments, 1))) * np.exp(np.cumsum(rets, axis=1))
    bars = np.zeros(per * instruments, dtype=BAR_DTYPE)
    bars["instrument_id"] = np.tile(np.arange(instruments, dtype=np.uint32), per)
    bars["close"] = closes.T.reshape(-1)
    bars = bars[:n]
    bars["offset"] = np.arange(len(bars))
    bars["ts_end"] = (np.arange(len(bars)) // instruments + 1) * MINUTE
    return bars


def cython_run(bars: np.ndarray, max_run: int, runs: int) -> tuple[float, np.ndarray]:
    best = math.inf
    rows = None
    for _ in range(runs):
        r = BocpdReducer("bocpd", config_hash(1, max_run=max_run), 1, max_run=max_run)
        t0 = time.perf_counter()
        r.feed_bars(bars)
        elapsed = time.perf_counter() - t0
        rows = r.outputs()[0][1].drain()
        best = min(best, elapsed)
    return best, rows


def numpy_run(bars: np.ndarray, max_run: int) -> tuple[float, int, dict]:
    """The reference over the same bars (per-instrument models, same order); (seconds, steps, results)."""
    models: dict[int, BocpdReference] = {}
    prev: dict[int, float] = {}
    results = {}
    steps = 0
    iids = bars["instrument_id"].tolist()
    closes = bars["close"].tolist()
    t0 = time.perf_counter()
    for i, (iid, close) in enumerate(zip(iids, closes, strict=True)):
        if iid in prev:
            model = models.get(iid)
            if model is None:
                model = models[iid] = BocpdReference(max_run=max_run)
            results[i] = model.step(math.log(close / prev[iid]))
            steps += 1
        prev[iid] = close
    return time.perf_counter() - t0, steps, results


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--bars", type=int, default=200_000)
    ap.add_argument("--instruments", type=int, default=10)
    ap.add_argument("--max-run", type=int, default=300)
    ap.add_argument("--numpy-bars", type=int, default=10_000, help="bars given to the numpy reference")
    ap.add_argument("--runs", type=int, default=3, help="best of, for the Cython reducer")
    args = ap.parse_args()

    bars = make_bars(args.bars, args.instruments)
    cy_s, rows = cython_run(bars, args.max_run, args.runs)
    cy_steps = int(np.count_nonzero(rows["map_run_length"] >= 0))
    np_bars = bars[: min(args.numpy_bars, len(bars))]
    np_s, np_steps, ref = numpy_run(np_bars, args.max_run)
    # same data, same answers: the reducer's first rows against the reference
    idx = np.fromiter(ref.keys(), dtype=np.int64)
    ref_p = np.array([v[0] for v in ref.values()])
    ref_r = np.array([v[1] for v in ref.values()])
    max_diff = float(np.max(np.abs(rows["p_change"][idx] - ref_p))) if len(idx) else 0.0
    run_equal = bool(np.array_equal(rows["map_run_length"][idx], ref_r))

    cy_rate = cy_steps / cy_s
    np_rate = np_steps / np_s
    result = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu_name(),
                    "cores": os.cpu_count()},
        "bars": len(bars), "instruments": args.instruments, "max_run": args.max_run,
        "cython": {"steps": cy_steps, "seconds": cy_s, "steps_per_s": cy_rate, "bars_per_s": len(bars) / cy_s},
        "numpy": {"steps": np_steps, "seconds": np_s, "steps_per_s": np_rate},
        "ratio": cy_rate / np_rate,
        "parity": {"steps_compared": int(len(idx)), "max_abs_p_change_diff": max_diff,
                   "map_run_length_equal": run_equal},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    m = result["machine"]
    print(f"machine: {m['platform']} | {m['cpu']} | {m['cores']} cores | Python {m['python']}")
    print(f"BOCPD, R_max = {args.max_run}, {len(bars):,} bars over {args.instruments} instruments")
    print(f"  Cython BocpdReducer.feed_bars : {cy_steps:>9,} steps in {cy_s:8.3f} s = {cy_rate:>12,.0f} steps/s "
          f"(best of {args.runs})")
    print(f"  numpy reference (vectorised)  : {np_steps:>9,} steps in {np_s:8.3f} s = {np_rate:>12,.0f} steps/s")
    print(f"  ratio (Cython / numpy)        : {cy_rate / np_rate:,.1f}x")
    print(f"  parity on {len(idx):,} steps: max |p_change diff| = {max_diff:.2e}, MAP run lengths equal: {run_equal}")


if __name__ == "__main__":
    main()
