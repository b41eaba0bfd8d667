"""Research-sweep benchmark (issue #9 item 9): configurations per second of an `sma_cross` parameter sweep
(`argus.research.runner.run_research`) over a market log of provider Bar events (the log of
benchmarks/bench_backtest.py: `instruments` seeded random walks x `bars` daily bars), next to baselines
measured in the same run on the same log and configurations:

  fan-out    - run_research serially (workers=1): the trials in groups of `--group-size`, one replay pass
               per group feeding every configuration of it (argus.replay.fanout.run_many);
  separate   - one run_backtest per configuration (its own replay pass; no run log, as in the sweep),
               timed on `--sample` configurations spread over the grid and extrapolated to configs/s;
               separate_with_run_log: the same as `argusctl backtest` runs it (its run log built and hashed);
  pool       - run_research(workers=2), a local process pool;
  dask_trim  - run_research on a Dask LocalCluster of 2 single-threaded workers with Dask's default
               nanny environment (MALLOC_TRIM_THRESHOLD_=65536; argus.research.cluster.local_cluster's
               default);
  dask_notrim - the same with MALLOC_TRIM_THRESHOLD_ removed (local_cluster(trim_malloc=False)).

Scale. The issue's scale is 1,000 configurations over 50 instruments x 20,000 bars. On the 2-core VM of
benchmarks/RESULTS.md its sweep stage alone takes 3-5 minutes per way (about 15 minutes for the four), and
each whole run_research adds a statistics stage over 1,000 x 20,000-day return series (arch's block
lengths and SPA variances grow with the number of configurations), so the defaults are 1,000
configurations over 50 x 2,000 bars (every way, whole run_research, under two minutes); the issue's
scale is measured with `--bars 20000 --sweep-only` (the sweep stage alone, in every way).

Every run_research writes into a fresh run directory (no cache) and must give the same results digest.
"sweep" figures time the sweep stage alone (from the plan to the last group cached: what configs/s is
about); "total" adds the statistics, robustness reruns and files of the run. The cluster's start-up is
not timed. The sampled separate backtests' metrics are checked against the sweep's.

Usage: python benchmarks/bench_research.py [--json] [--configs 1000] [--instruments 50] [--bars 2000]
       [--sample 10] [--group-size 64] [--runs 1] [--modes serial,pool,dask_trim,dask_notrim] [--sweep-only]
       [--profile FILE]
       python benchmarks/bench_research.py --json --bars 20000 --sweep-only     # the issue's scale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backtest import COMMISSION, QTY, SLIPPAGE_BPS, market, write_log  # noqa: E402

from argus.log import EventLog  # noqa: E402
from argus.replay.backtest import NO_RUN_LOG, run_backtest  # noqa: E402
from argus.research import runner  # noqa: E402
from argus.research.config import load_research_config  # noqa: E402
from argus.research.sweep import GROUP_SIZE, backtest_config, metrics_json, plan  # noqa: E402
from argus.strategies.registry import default_registry  # noqa: E402

CASH = 10_000_000.0
MODES = ("serial", "pool", "dask_trim", "dask_notrim")


def grid(n: int) -> tuple[list[int], list[int]]:
    """fast x slow lists with exactly n combinations (fast < slow always): a x b, a the largest divisor
    of n not above sqrt(n)... so 1,000 = 25 fast x 40 slow."""
    a = max(d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0)
    b = n // a
    fast = [5 + 2 * i for i in range(a)]
    slow = [fast[-1] + 5 + 5 * j for j in range(b)]
    return fast, slow


def research_config(symbols: list[str], n: int):
    fast, slow = grid(n)
    return load_research_config({
        "name": "bench", "data": {"symbols": symbols, "timeframe": "1d", "bar_source": "provider"},
        "strategies": [{"name": "sma_cross", "grid": {"fast": fast, "slow": slow}}],
        "execution": {"commission_rate": COMMISSION, "slippage_bps": SLIPPAGE_BPS, "qty": QTY, "cash": CASH},
        # the sweep is what is measured: the per-bar regime labels (a Python on_bar pass) are off, and the
        # bootstraps of the statistics stage are small
        "robustness": {"regimes": False, "bootstrap_paths": 100, "reps": 100, "top": 2},
        "gates": {"dsr_min": 0.95, "min_trades": 10},
    })


def timed_research(cfg, data: Path, out: Path, **kw) -> dict:
    marks: dict[str, float] = {}

    def on_plan(n):
        marks["plan"] = time.perf_counter()

    def progress(k):
        marks["last"] = time.perf_counter()

    t = time.perf_counter()
    summary = runner.run_research(cfg, data, out, on_plan=on_plan, progress=progress, **kw)
    total = time.perf_counter() - t
    sweep = marks["last"] - marks["plan"]
    return {"sweep_seconds": sweep, "sweep_configs_per_s": summary["configs"] / sweep, "total_seconds": total,
            "total_configs_per_s": summary["configs"] / total, "results_digest": summary["results_digest"],
            "configs": summary["configs"], "computed": summary["computed"]}


def timed_sweep(cfg, data: Path, out: Path, *, workers: int = 1, cluster: str | None = None,
                group_size: int = GROUP_SIZE) -> dict:
    """The sweep stage alone: what run_research runs before its statistics (argus.research.runner._execute
    over the planned groups, every group cached), and the results digest run_research would report."""
    log_path = str(data / "log")
    with EventLog(log_path, readonly=True) as lg:
        head = lg.head()
    trials = plan(cfg, head)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    runner._execute(log_path, cfg, runner.groups_of(trials, group_size), head, True, out, workers, cluster, None)
    sweep = time.perf_counter() - t
    cached, _ = runner._load_cache(out)
    digest = runner.results_digest([x.key for x in trials], [cached[x.key] for x in trials])
    return {"sweep_seconds": sweep, "sweep_configs_per_s": len(trials) / sweep, "results_digest": digest,
            "configs": len(trials), "computed": len(trials)}


def run_mode(mode: str, cfg, data: Path, tmp: Path, group_size: int, runs: int, sweep_only: bool) -> dict:
    timed = timed_sweep if sweep_only else timed_research
    best = None
    for r in range(runs):
        out = tmp / f"run-{mode}-{r}"
        if mode == "serial":
            res = timed(cfg, data, out, workers=1, group_size=group_size)
        elif mode == "pool":
            res = timed(cfg, data, out, workers=2, group_size=group_size)
        else:
            from argus.research.cluster import local_cluster

            with local_cluster(2, trim_malloc=mode == "dask_trim") as cluster:
                res = timed(cfg, data, out, cluster=cluster.scheduler_address, group_size=group_size)
        shutil.rmtree(out, ignore_errors=True)
        if best is None or res["sweep_seconds"] < best["sweep_seconds"]:
            best = res
    return best


def separate(cfg, data: Path, k: int, cached: dict | None) -> dict:
    """run_backtest of `k` configurations spread over the plan, each alone (its own replay pass): without
    a run log (as the sweep runs them) and, second, as `argusctl backtest` runs one (the run log built and
    hashed in memory, runs_dir=None)."""
    reg = default_registry()
    out: dict = {}
    with EventLog(data / "log", readonly=True) as log:
        head = log.head()
        trials = plan(cfg, head)
        picks = sorted({round(i * (len(trials) - 1) / max(1, k - 1)) for i in range(k)})
        for name, runs_dir in (("separate", NO_RUN_LOG), ("separate_with_run_log", None)):
            seconds, same = [], True
            for i in picks:
                t = trials[i]
                bcfg = backtest_config(cfg, t.strategy, t.params, head)
                t0 = time.perf_counter()
                res = run_backtest(log, bcfg, reg.create(t.strategy, t.params), runs_dir=runs_dir)
                seconds.append(time.perf_counter() - t0)
                if cached is not None:
                    same &= _digest(res.metrics) == cached[t.key]
            mean = sum(seconds) / len(seconds)
            out[name] = {"sample": len(picks), "seconds_each_mean": mean, "seconds_each_min": min(seconds),
                         "seconds_each_max": max(seconds), "configs_per_s": 1.0 / mean,
                         "same_metrics_as_sweep": same if cached is not None else None}
    return out


def _digest(metrics: dict) -> str:
    """results.parquet's `digest` of a trial's metrics (argus.research.runner)."""
    return hashlib.blake2b(metrics_json(metrics).encode(), digest_size=16).hexdigest()


def sweep_metrics(out: Path) -> dict:
    """The serial run's per-trial metrics digests, by key, from its run directory's results table."""
    import pandas as pd

    df = pd.read_parquet(out / "results.parquet")
    return dict(zip(df["key"], df["digest"], strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--instruments", type=int, default=50)
    ap.add_argument("--bars", type=int, default=2_000, help="bars per instrument (the issue's scale: 20000)")
    ap.add_argument("--sample", type=int, default=10, help="configurations backtested one by one")
    ap.add_argument("--group-size", type=int, default=GROUP_SIZE, help="configurations per replay pass")
    ap.add_argument("--runs", type=int, default=1, help="best of, per sweep mode")
    ap.add_argument("--modes", default=",".join(MODES), help=f"subset of {','.join(MODES)}")
    ap.add_argument("--sweep-only", action="store_true",
                    help="time the sweep stage alone (no statistics stage; for the full scale, where the "
                         "statistics of 1,000 x 20,000-day series take minutes per run)")
    ap.add_argument("--profile", default=None, help="cProfile the serial run_research into FILE (not timed)")
    ap.add_argument("--dir", default=None, help="where the temporary log and run directories go")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f"--modes: unknown {sorted(unknown)}")
    tmp = Path(tempfile.mkdtemp(prefix="argus-bench-research-", dir=args.dir))
    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
                 "configs": args.configs, "instruments": args.instruments, "bars_per_instrument": args.bars,
                 "bars": args.instruments * args.bars, "group_size": args.group_size, "runs": args.runs,
                 "strategy": f"sma_cross grid {grid(args.configs)}, long-only qty={QTY}, next open, "
                             f"commission {COMMISSION:.1%}, slippage {SLIPPAGE_BPS:g} bps"}
    try:
        data = tmp / "data"
        data.mkdir()
        symbols = write_log(data / "log", market(args.instruments, args.bars))
        cfg = research_config(symbols, args.configs)
        if args.profile:
            import cProfile

            cProfile.runctx("run_research(cfg, data, tmp / 'profile', group_size=args.group_size)", globals(),
                            {"run_research": runner.run_research, "cfg": cfg, "data": data, "tmp": tmp, "args": args},
                            args.profile)
            shutil.rmtree(tmp / "profile", ignore_errors=True)
        sweeps: dict = {}
        digests: dict = {}
        cached = None
        for mode in modes:
            if mode == "serial":
                out = tmp / "run-serial-check"
                if args.sweep_only:
                    sweeps[mode] = timed_sweep(cfg, data, out, workers=1, group_size=args.group_size)
                    cached = {k: _digest(v["metrics"]) for k, v in runner._load_cache(out)[0].items()}
                else:
                    sweeps[mode] = timed_research(cfg, data, out, workers=1, group_size=args.group_size)
                    cached = sweep_metrics(out)
                shutil.rmtree(out, ignore_errors=True)
                if args.runs > 1:
                    again = run_mode(mode, cfg, data, tmp, args.group_size, args.runs - 1, args.sweep_only)
                    if again["sweep_seconds"] < sweeps[mode]["sweep_seconds"]:
                        sweeps[mode] = again
            else:
                sweeps[mode] = run_mode(mode, cfg, data, tmp, args.group_size, args.runs, args.sweep_only)
            digests[mode] = sweeps[mode]["results_digest"]
        res["sweeps"] = sweeps
        res["same_results_digest"] = len(set(digests.values())) == 1
        res.update(separate(cfg, data, args.sample, cached))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ratios: dict = {}
    targets: dict = {}
    sep = res["separate"]["configs_per_s"]
    sep_log = res["separate_with_run_log"]["configs_per_s"]
    if "serial" in sweeps:
        ratios["fanout_serial_vs_separate"] = sweeps["serial"]["sweep_configs_per_s"] / sep
        ratios["fanout_serial_vs_separate_with_run_log"] = sweeps["serial"]["sweep_configs_per_s"] / sep_log
        if "total_configs_per_s" in sweeps["serial"]:
            ratios["fanout_serial_total_vs_separate"] = sweeps["serial"]["total_configs_per_s"] / sep
        targets["fanout_ge_10x_separate"] = ratios["fanout_serial_vs_separate"] >= 10
        targets["fanout_ge_10x_separate_with_run_log"] = ratios["fanout_serial_vs_separate_with_run_log"] >= 10
    if "pool" in sweeps:
        pool = sweeps["pool"]["sweep_configs_per_s"]
        if "serial" in sweeps:
            ratios["pool_vs_serial"] = pool / sweeps["serial"]["sweep_configs_per_s"]
        for mode in ("dask_trim", "dask_notrim"):
            if mode in sweeps:
                ratios[f"{mode}_vs_pool"] = sweeps[mode]["sweep_configs_per_s"] / pool
        if "dask_trim" in sweeps:  # local_cluster's default
            targets["dask_within_15pct_of_pool"] = ratios["dask_trim_vs_pool"] >= 0.85
    res["ratios"] = ratios
    res["targets"] = targets
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{args.configs:,} configs x {res['bars']:,} bars ({args.instruments} x {args.bars:,}), {res['strategy']}")
    for mode, s in sweeps.items():
        total = (f"   total {s['total_configs_per_s']:8.2f} configs/s ({s['total_seconds']:.1f} s)"
                 if "total_seconds" in s else "")
        print(f"  {mode:10s} sweep {s['sweep_configs_per_s']:8.2f} configs/s ({s['sweep_seconds']:.1f} s){total}")
    for name in ("separate", "separate_with_run_log"):
        r = res[name]
        print(f"  {name:10s} {r['configs_per_s']:8.2f} configs/s ({r['seconds_each_mean']:.2f} s each, "
              f"sample {r['sample']})")
    print(f"  same results digest: {res['same_results_digest']}")
    print(json.dumps(ratios, indent=2))
    print(json.dumps(targets, indent=2))


if __name__ == "__main__":
    main()
