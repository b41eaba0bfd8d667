"""`argusctl research run`: the sweep, then the statistics that kill the lucky configurations.

Stages:
1. plan the trials (argus.research.sweep.plan) and run the ones not in the cache, in groups (one replay
   pass each), serially, on a process pool or on a Dask cluster; every finished group is cached;
2. the T x N matrix of daily returns (T New York trading days of the window, N trials) and, per trial,
   the per-period Sharpe ratio, its skew and kurtosis, PSR (against 0), DSR (the number of trials and
   the variance of the trials' Sharpe ratios from this sweep), MinTRL;
3. across trials: the effective number of trials, PBO (CSCV), White's Reality Check and Hansen's SPA
   against the buy-and-hold benchmark, walk-forward folds (IS selection, OOS result, efficiency) and
   combinatorially purged CV of the selection, the parameter-stability penalty on each strategy's grid;
4. the gates (argus.research.stats.apply_gates; thresholds from the config): a trial is killed by the
   first gate it fails, in gate-name order, which is recorded with its value and threshold;
5. robustness of the top survivors (or the top trials when none survives), rerun once more for their
   trades: stationary block bootstrap of trade P&L, slippage sensitivity with the break-even cost
   multiplier, per-regime statistics and the hostile-regime stress;
6. allocation of the survivors (argus.sizing.AllocationEngine) and the files of docs/research-run-dir.md.

The results digest is BLAKE2b over the trials in key order (key, metrics, daily equity bytes): it is the
same whichever way the sweep ran.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from argus.log import EventLog
from argus.research import stats
from argus.research.config import ResearchConfig, expand_grid
from argus.research.sweep import (
    GROUP_SIZE,
    Trial,
    backtest_config,
    config_hash,
    daily_returns,
    groups_of,
    metrics_json,
    plan,
    run_group,
)

__all__ = ["results_digest", "run_research"]

_CACHE = "cache"


def _cache_dir(out: Path) -> Path:
    return out / _CACHE


def _load_cache(out: Path) -> tuple[dict[str, dict], dict[str, Any]]:
    """Cached trial results by key, and the cached extras (days, benchmark, regimes) if any."""
    trials: dict[str, dict] = {}
    extras: dict[str, Any] = {}
    d = _cache_dir(out)
    if not d.is_dir():
        return trials, extras
    for path in sorted(d.glob("group-*.json")):
        doc = json.loads(path.read_text())
        for t in doc["trials"]:
            t["equity_by_day"] = np.asarray(t["equity_by_day"], dtype=np.float64)
            trials[t["key"]] = t
        if "benchmark_close" in doc:
            extras = doc
    return trials, extras


def _store_group(out: Path, result: dict[str, Any]) -> None:
    d = _cache_dir(out)
    d.mkdir(parents=True, exist_ok=True)
    doc = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in result.items() if k != "trials"}
    doc["trials"] = [{**t, "equity_by_day": np.asarray(t["equity_by_day"]).tolist()} for t in result["trials"]]
    name = hashlib.blake2b("".join(t["key"] for t in result["trials"]).encode() + (b"x" if "benchmark_close" in doc
                                                                                  else b""), digest_size=8).hexdigest()
    tmp = d / f".group-{name}.tmp"
    tmp.write_text(json.dumps(doc, sort_keys=True, default=_json_default))
    os.replace(tmp, d / f"group-{name}.json")  # atomic: an interrupted run leaves whole groups only


def _json_default(x):
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    raise TypeError(type(x))


def _execute(log_path: str, cfg: ResearchConfig, todo: list[list[Trial]], head: int, need_extras: bool,
             out: Path, workers: int, cluster: str | None, progress: Callable[[int], None] | None) -> None:
    jobs = [([t.as_tuple() for t in g], need_extras and k == 0) for k, g in enumerate(todo)]
    if need_extras and not jobs:
        jobs = [([], True)]
    doc = cfg.canonical()
    if cluster is not None:
        from distributed import Client
        from distributed import as_completed as dask_completed

        with Client(cluster) as client:
            futures = [client.submit(run_group, log_path, doc, trials, head, extras, pure=False)
                       for trials, extras in jobs]
            for fut in dask_completed(futures):
                result = fut.result()
                _store_group(out, result)
                if progress is not None:
                    progress(len(result["trials"]))
        return
    if workers <= 1 or len(jobs) <= 1:
        for trials, extras in jobs:
            result = run_group(log_path, doc, trials, head, extras)
            _store_group(out, result)
            if progress is not None:
                progress(len(result["trials"]))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_group, log_path, doc, trials, head, extras) for trials, extras in jobs]
        for fut in as_completed(futures):
            result = fut.result()
            _store_group(out, result)
            if progress is not None:
                progress(len(result["trials"]))


def run_research(cfg: ResearchConfig, data_dir: str | Path, out_dir: str | Path, *, workers: int = 1,
                 cluster: str | None = None, progress: Callable[[int], None] | None = None,
                 on_plan: Callable[[int], None] | None = None, group_size: int = GROUP_SIZE) -> dict[str, Any]:
    """Run (or resume) a research run; write RUN_DIR's files; return summary.json's content. Trials go
    in groups of `group_size` (one replay pass each)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = str(Path(data_dir) / "log")
    with EventLog(log_path, readonly=True) as lg:
        head = lg.head()
    trials = _optuna(cfg, head, log_path, out, progress) if cfg.search.kind == "optuna" else plan(cfg, head)
    if not trials:
        raise ValueError("strategies: the grids expand to no valid configuration")
    if on_plan is not None:
        on_plan(len(trials))
    import yaml

    (out / "config.yaml").write_text(yaml.safe_dump(cfg.canonical(), sort_keys=False))
    cached, extras = _load_cache(out)
    todo = [t for t in trials if t.key not in cached]
    if progress is not None and len(trials) - len(todo):
        progress(len(trials) - len(todo))
    _execute(log_path, cfg, groups_of(todo, group_size), head, not extras, out, workers, cluster, progress)
    cached, extras = _load_cache(out)
    done = [cached[t.key] for t in trials]
    summary = _analyse(cfg, trials, done, extras, head, out, log_path)
    seconds = time.perf_counter() - t0
    summary.update({"seconds": seconds, "configs_per_s": len(trials) / seconds if seconds > 0 else 0.0,
                    "computed": len(todo), "cached": len(trials) - len(todo)})
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return summary


def _optuna(cfg: ResearchConfig, head: int, log_path: str, out: Path,
            progress: Callable[[int], None] | None) -> list[Trial]:
    """`search.trials` TPE trials (seeded) over the first strategy's grid as a search space; the study
    lives in RUN_DIR/optuna.journal, so a rerun resumes it. Each trial's backtest is cached like a grid
    trial's, and every trial counts toward the deploy gates' number of trials."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from argus.research.config import LogRangeSpec, RangeSpec
    from argus.research.sweep import trial_key
    from argus.strategies.registry import default_registry

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sweep = cfg.strategies[0]
    cls = default_registry().get(sweep.name)
    declared = {p.name: p for p in cls.params}
    storage = JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
    study = optuna.create_study(study_name=f"{cfg.name}-{config_hash(cfg)}", storage=storage, load_if_exists=True,
                                direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.search.seed))
    chash = config_hash(cfg)
    trials: list[Trial] = []
    for ft in study.trials:  # the finished trials of an earlier run, in order
        if ft.state == optuna.trial.TrialState.COMPLETE:
            full = cls(**ft.params).p
            trials.append(Trial(trial_key(sweep.name, full, chash, head), sweep.name, full))
    cached, _ = _load_cache(out)
    while len(trials) < cfg.search.trials:
        trial = study.ask()
        params = {}
        for name, spec in sweep.grid.items():
            p = declared[name]
            if isinstance(spec, RangeSpec):
                if p.type == "int":
                    params[name] = trial.suggest_int(name, int(spec.start), int(spec.stop), step=int(spec.step))
                else:
                    params[name] = trial.suggest_float(name, spec.start, spec.stop, step=spec.step)
            elif isinstance(spec, LogRangeSpec):
                params[name] = trial.suggest_float(name, spec.log[0], spec.log[1], log=True)
            elif isinstance(spec, list):
                params[name] = trial.suggest_categorical(name, spec)
            else:
                params[name] = spec
        try:
            full = cls(**params).p
        except ValueError:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        t = Trial(trial_key(sweep.name, full, chash, head), sweep.name, full)
        if t.key not in cached:
            result = run_group(log_path, cfg.canonical(), [t.as_tuple()], head, False)
            _store_group(out, result)
            cached[t.key] = result["trials"][0]
            if progress is not None:
                progress(1)
        value = cached[t.key]["metrics"].get(cfg.search.metric)
        study.tell(trial, float(value) if value is not None and math.isfinite(value) else -1e9)
        trials.append(t)
    seen: set[str] = set()
    return [t for t in trials if not (t.key in seen or seen.add(t.key))]


def _opt(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _analyse(cfg: ResearchConfig, trials: list[Trial], done: list[dict], extras: dict[str, Any], head: int,
             out: Path, log_path: str) -> dict[str, Any]:
    days = np.asarray(extras["days"], dtype=np.int64)
    cash = cfg.execution.cash
    keys = [t.key for t in trials]
    n = len(trials)
    R = np.column_stack([daily_returns(d["equity_by_day"], cash) for d in done]) if n else np.empty((len(days), 0))
    bench_close = np.asarray(extras["benchmark_close"], dtype=np.float64)
    bench = np.zeros(len(days))
    with np.errstate(invalid="ignore", divide="ignore"):
        bench[1:] = bench_close[1:] / bench_close[:-1] - 1.0
    bench[~np.isfinite(bench)] = 0.0
    T = len(days)
    # -- per trial: Sharpe statistics ------------------------------------------------------------
    moments = [stats.sharpe_moments(R[:, j]) if T >= 3 else None for j in range(n)]
    sr = np.array([m.sr if m is not None else np.nan for m in moments])
    finite = sr[np.isfinite(sr)]
    sr_var = float(np.var(finite, ddof=1)) if len(finite) >= 2 else 0.0
    n_trials = n
    psr, dsr, mintrl = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    for j, m in enumerate(moments):
        if m is None or not np.isfinite(m.sr):
            continue
        try:
            psr[j] = stats.probabilistic_sharpe_ratio(m.sr, 0.0, m.n_obs, m.skew, m.kurtosis)
            dsr[j] = stats.deflated_sharpe_ratio(m.sr, sr_var, n_trials, m.n_obs, m.skew, m.kurtosis)
            mintrl[j] = stats.min_track_record_length(m.sr, 0.0, m.skew, m.kurtosis, 0.05)
        except ValueError:
            pass
    effective = float(stats.effective_number_of_trials(R)) if n >= 2 and T >= 3 else float(n)
    # -- across trials -----------------------------------------------------------------------------
    n_splits = min(16, (T // 2) // 2 * 2)
    pbo = stats.probability_of_backtest_overfitting(R, n_splits=n_splits) if n >= 2 and n_splits >= 2 else None
    rc = spa = None
    if n >= 1 and T >= 10:
        rc = stats.reality_check(R, bench, reps=cfg.robustness.reps, seed=cfg.robustness.seed)
        spa = stats.spa_test(R, bench, reps=cfg.robustness.reps, seed=cfg.robustness.seed)
    folds_rows, wf = _walk_forward(cfg, R, days, keys)
    cpcv = _cpcv(cfg, R, max((int(d.get("max_hold_days", 0)) for d in done), default=0))
    stability = _stability(cfg, trials, np.array([_opt(d["metrics"].get("sharpe")) or np.nan for d in done]))
    # -- gates ------------------------------------------------------------------------------------
    gates = dict(cfg.gates)
    chash = config_hash(cfg)
    killed: dict[str, int] = {}
    rows = []
    for j, (t, d) in enumerate(zip(trials, done, strict=True)):
        m = d["metrics"]
        values = {"dsr": dsr[j], "psr": psr[j], "trades": float(d["trades"]),
                  "max_drawdown": m.get("max_drawdown") if m.get("max_drawdown") is not None else np.nan,
                  "sharpe": m.get("sharpe") if m.get("sharpe") is not None else np.nan,
                  "stability": stability[j][1], "pbo": np.nan if pbo is None else pbo,
                  "spa_pvalue": np.nan if spa is None else spa.pvalue,
                  "wfe": np.nan if wf is None or wf.get("efficiency") is None else wf["efficiency"]}
        results = stats.apply_gates({k: values[k] for k in values}, gates) if gates else ()
        failed = next((g for g in results if not g.passed), None)
        if failed is not None:
            killed[failed.name] = killed.get(failed.name, 0) + 1
        row = {"key": t.key, "strategy": t.strategy, "params": json.dumps(t.params, sort_keys=True),
               "config_hash": chash, "log_head": head, "trades": d["trades"],
               "final_equity": d["final_equity"], "total_commission": d["total_commission"]}
        for name in ("sharpe", "sortino", "calmar", "cagr", "max_drawdown", "max_drawdown_days", "win_rate",
                     "profit_factor", "expectancy", "exposure", "turnover"):
            row[name] = _opt(m.get(name))
        row.update({"psr": _opt(psr[j]), "dsr": _opt(dsr[j]), "min_trl": _opt(mintrl[j]),
                    "stability": _opt(stability[j][0]), "killed": failed is not None,
                    "kill_gate": failed.name if failed else None, "kill_value": _opt(failed.value) if failed else None,
                    "kill_threshold": float(failed.threshold) if failed else None,
                    "digest": hashlib.blake2b(metrics_json(m).encode(), digest_size=16).hexdigest()})
        for p, v in t.params.items():
            row[f"p_{p}"] = v
        rows.append(row)
    results_df = pd.DataFrame(rows)
    survivors = [r["key"] for r in rows if not r["killed"]]
    # -- robustness of the top configurations -----------------------------------------------------
    order = sorted(range(n), key=lambda j: (-(rows[j]["sharpe"] if rows[j]["sharpe"] is not None else -math.inf),
                                            rows[j]["key"]))
    pool = [j for j in order if not rows[j]["killed"]] or order
    top = pool[: cfg.robustness.top]
    robustness, curves, trades = _robustness(cfg, trials, top, R, days, extras, head, log_path, bench_close)
    # -- allocation -------------------------------------------------------------------------------
    allocations = _allocate(cfg, trials, [keys.index(k) for k in survivors])
    # -- files ------------------------------------------------------------------------------------
    dates = pd.to_datetime(days, unit="D").date
    returns_df = pd.DataFrame({"date": dates, **{k: R[:, j] for j, k in enumerate(keys)}, "benchmark": bench})
    returns_df.to_parquet(out / "returns.parquet", index=False)
    results_df.to_parquet(out / "results.parquet", index=False)
    pd.DataFrame(folds_rows).to_parquet(out / "folds.parquet", index=False)
    curves.to_parquet(out / "curves.parquet", index=False)
    trades.to_parquet(out / "trades.parquet", index=False)
    (out / "robustness.json").write_text(json.dumps(robustness, indent=1, default=_json_default) + "\n")
    (out / "allocations.json").write_text(json.dumps(allocations, indent=1, default=_json_default) + "\n")
    best = order[0] if order else None
    bench_sr = stats.sharpe_moments(bench).sr if T >= 3 else np.nan
    return {
        "run_dir": str(out), "name": cfg.name, "configs": n, "folds": len({r["fold"] for r in folds_rows}),
        "survivors": len(survivors), "killed": dict(sorted(killed.items())), "results_digest": results_digest(keys, done),
        "market": {"head": head, "symbols": cfg.data.symbols, "timeframe": cfg.data.timeframe,
                   "from": str(dates[0]) if T else None, "to": str(dates[-1]) if T else None, "days": T},
        "trials": {"n": n_trials, "effective": effective, "sr_variance": sr_var, "sr_units": "per day",
                   "expected_max_sr": float(stats.expected_max_sharpe(sr_var, n_trials)) if n_trials else None},
        "stats": {"pbo": pbo, "pbo_splits": n_splits,
                  "reality_check_pvalue": None if rc is None else rc.pvalue,
                  "spa_pvalue": None if spa is None else spa.pvalue,
                  "pvalues": "Reality Check: arch SPA 'upper' p-value on raw differentials; SPA: arch 'consistent' "
                             "p-value on studentised differentials (argus.research.stats)",
                  "best_key": keys[best] if best is not None else None},
        "gates": gates, "walk_forward": wf, "cpcv": cpcv,
        "benchmark": {"symbol": cfg.data.symbols[0], "sharpe": _opt(bench_sr * math.sqrt(252)) if T >= 3 else None,
                      "total_return": _opt(bench_close[-1] / bench_close[0] - 1) if T else None,
                      "cagr": _opt((bench_close[-1] / bench_close[0]) ** (252 / T) - 1) if T else None},
    }


def results_digest(keys: list[str], done: list[dict]) -> str:
    """BLAKE2b-256 over the trials in key order: key, metrics (canonical JSON), daily equity bytes."""
    digest = hashlib.blake2b(digest_size=32)
    for j in sorted(range(len(keys)), key=lambda j: keys[j]):
        digest.update(keys[j].encode() + metrics_json(done[j]["metrics"]).encode())
        digest.update(np.ascontiguousarray(done[j]["equity_by_day"], dtype="<f8").tobytes())
    return digest.hexdigest()


def _folds(cfg: ResearchConfig, T: int):
    from argus.research.splits import walk_forward_folds

    f = cfg.folds
    test = int(T * (1 - f.train_fraction) / f.n)
    if test < 2:
        return []
    train = T - f.n * test - f.purge_days  # the first fold's training length (anchored folds then grow)
    if train < 2:
        return []
    return walk_forward_folds(T, train, test, anchored=f.kind == "anchored", purge=f.purge_days)


def _walk_forward(cfg: ResearchConfig, R: np.ndarray, days: np.ndarray, keys: list[str]):
    from argus.research.walkforward import annualised_return, sharpe_ratio, walk_forward

    folds = _folds(cfg, R.shape[0])
    if not folds or R.shape[1] == 0:
        return [], None
    res = walk_forward(R, folds)
    ts = pd.to_datetime(days, unit="D", utc=True)
    rows = []
    for f, fr in zip(folds, res.folds, strict=True):
        is_sr, oos_sr = sharpe_ratio(R[f.train]), sharpe_ratio(R[f.test])
        is_ret, oos_ret = annualised_return(R[f.train]), annualised_return(R[f.test])
        for j, k in enumerate(keys):
            rows.append({"key": k, "fold": f.index, "kind": "walk_forward", "is_start": ts[f.train_start],
                         "is_end": ts[f.train_stop - 1], "oos_start": ts[f.test_start], "oos_end": ts[f.test_stop - 1],
                         "is_sharpe": float(is_sr[j]), "oos_sharpe": float(oos_sr[j]), "is_return": float(is_ret[j]),
                         "oos_return": float(oos_ret[j]), "selected": j == fr.selected})
    wf = {"folds": len(folds), "efficiency": _opt(res.efficiency), "oos_sharpe": _opt(res.oos_score),
          "oos_annual_return": _opt(res.oos_annual_return),
          "selected": [keys[fr.selected] for fr in res.folds]}
    return rows, wf


def _cpcv(cfg: ResearchConfig, R: np.ndarray, horizon: int) -> dict[str, Any] | None:
    """Combinatorially purged CV of the selection rule (best in-sample Sharpe): the distribution of the
    selected configuration's out-of-sample Sharpe over all C(N, k) splits. One sample per day; a day's
    label runs until the longest trade of the sweep could exit (`horizon` days later), so a training day
    whose trades may still be open in a test block is purged (by exit time), then `embargo_days` more."""
    from argus.research.splits import combinatorial_purged_splits, n_backtest_paths
    from argus.research.walkforward import sharpe_ratio

    f = cfg.folds
    T = R.shape[0]
    if R.shape[1] == 0 or T < 4 * f.cpcv_groups:
        return None
    idx = np.arange(T)
    exits = np.minimum(idx + max(0, int(horizon)), T - 1)
    splits = combinatorial_purged_splits(idx, exits, f.cpcv_groups, f.cpcv_test_groups, embargo=f.embargo_days)
    oos = []
    for s in splits:
        is_sr = sharpe_ratio(R[s.train])
        j = int(np.nanargmax(np.where(np.isfinite(is_sr), is_sr, -np.inf)))
        oos.append(float(sharpe_ratio(R[s.test][:, [j]])[0]))
    arr = np.asarray(oos)
    ok = arr[np.isfinite(arr)]
    return {"splits": len(splits), "paths": n_backtest_paths(f.cpcv_groups, f.cpcv_test_groups),
            "purge_horizon_days": int(horizon), "embargo_days": f.embargo_days,
            "train_days_mean": float(np.mean([len(s.train) for s in splits])),
            "oos_sharpe_mean": _opt(ok.mean()) if len(ok) else None,
            "oos_sharpe_std": _opt(ok.std(ddof=1)) if len(ok) > 1 else None,
            "oos_sharpe_min": _opt(ok.min()) if len(ok) else None,
            "share_oos_sharpe_le_0": float(np.mean(ok <= 0)) if len(ok) else None}


def _stability(cfg: ResearchConfig, trials: list[Trial], sharpe: np.ndarray) -> list[tuple[float, float]]:
    """Per trial: (neighbour-median Sharpe, ratio neighbour median / own Sharpe; 1 without neighbours
    or for a non-positive Sharpe) over its strategy's parameter grid."""
    from argus.research.walkforward import parameter_stability
    from argus.strategies.registry import default_registry

    out = [(np.nan, 1.0)] * len(trials)
    reg = default_registry()
    index = {(t.strategy, json.dumps(t.params, sort_keys=True)): j for j, t in enumerate(trials)}
    for sweep in cfg.strategies:
        cls = reg.get(sweep.name)
        combos = expand_grid(sweep, cls)
        names = [p.name for p in cls.params if p.name in sweep.grid]
        axes = [sorted({c[nm] for c in combos}, key=lambda v: (str(type(v)), v)) for nm in names]
        varying = [k for k, a in enumerate(axes) if len(a) > 1]
        if not varying:
            continue
        shape = tuple(len(axes[k]) for k in varying)
        grid = np.full(shape, np.nan)
        where: dict[int, tuple[int, ...]] = {}
        for c in combos:
            full = cls(**c).p
            j = index.get((sweep.name, json.dumps(full, sort_keys=True)))
            if j is None:
                continue
            pos = tuple(axes[k].index(c[names[k]]) for k in varying)
            grid[pos] = sharpe[j]
            where[j] = pos
        res = parameter_stability(grid, radius=1, min_ratio=0.5)
        for j, pos in where.items():
            med = float(res.neighbour_median[pos])
            own = sharpe[j]
            ratio = med / own if np.isfinite(med) and np.isfinite(own) and own > 0 else 1.0
            out[j] = (med, float(ratio))
    return out


def _robustness(cfg: ResearchConfig, trials: list[Trial], top: list[int], R: np.ndarray, days: np.ndarray,
                extras: dict[str, Any], head: int, log_path: str, bench_close: np.ndarray):
    from argus.replay.backtest import NO_RUN_LOG
    from argus.replay.fanout import run_many
    from argus.research.bootstrap import bootstrap_trades, regime_subset_stress, slippage_sensitivity
    from argus.research.walkforward import regime_sensitivity
    from argus.strategies.registry import default_registry

    rb = cfg.robustness
    reg = default_registry()
    chosen = [trials[j] for j in top]
    strategies = [reg.create(t.strategy, t.params) for t in chosen]
    cfgs = [backtest_config(cfg, t.strategy, t.params, head) for t in chosen]
    with EventLog(log_path, readonly=True) as lg:
        results = run_many(lg, cfgs, strategies, runs_dir=NO_RUN_LOG)
    labels = np.asarray(extras.get("market_regime") or ["unknown"] * len(days))
    vol_labels = np.asarray(extras.get("vol_regime") or ["unknown"] * len(days))
    out: dict[str, Any] = {}
    curve_parts, trade_parts = [], []
    ts_days = pd.to_datetime(days, unit="D", utc=True)
    for j, t, res in zip(top, chosen, results, strict=True):
        tr = res.tables["trades"]
        closed = (tr["exit_reason"] != "open") if len(tr["symbol"]) else np.zeros(0, bool)
        pnl = np.asarray(tr["pnl"], dtype=np.float64)[closed]
        costs = (np.asarray(tr["commission"], dtype=np.float64) + np.asarray(tr["slippage_cost"], dtype=np.float64))[closed]
        doc: dict[str, Any] = {}
        if len(pnl) >= 2:
            b = bootstrap_trades(pnl, starting_equity=cfg.execution.cash, n_paths=rb.bootstrap_paths, seed=rb.seed,
                                 ruin=rb.ruin, worst_fraction=rb.worst_fraction)
            doc["bootstrap"] = {"n_paths": b.n_paths, "block_length": b.block_length,
                                "drawdown_quantiles": {str(q): v for q, v in b.drawdown_quantiles.items()},
                                "ruin_threshold": b.ruin, "ruin_probability": b.ruin_probability,
                                "worst_fraction": b.worst_fraction, "worst_mean_final_pnl": b.worst_mean_final_pnl,
                                "worst_mean_max_drawdown": b.worst_mean_max_drawdown,
                                "edge_le_zero_probability": b.edge_le_zero_probability,
                                "final_pnl_quantiles": {str(q): float(np.quantile(b.final_pnl, q))
                                                        for q in (0.05, 0.25, 0.5, 0.75, 0.95)},
                                "fan": _fan(pnl, b.block_length, rb, cfg.execution.cash)}
        if len(pnl):
            s = slippage_sensitivity(pnl + costs, costs, tuple(rb.cost_multipliers))
            doc["slippage"] = {"multipliers": list(s.multipliers), "net_pnl": [float(x) for x in s.net_pnl],
                               "break_even_multiplier": _opt(s.break_even_multiplier)}
        r = R[:, j]
        regimes = []
        for name, lab in (("market", labels), ("volatility", vol_labels)):
            sens = regime_sensitivity(r, lab)
            for label, count, value in zip(sens.labels.tolist(), sens.counts.tolist(), sens.values.tolist(),
                                           strict=True):
                sub = r[lab == label]
                eq = np.cumprod(1 + sub)
                mdd = float(np.max(1 - eq / np.maximum.accumulate(eq))) if len(sub) else None
                regimes.append({"label": f"{name}:{label}", "periods": int(count), "sharpe": _opt(value),
                                "annual_return": _opt(float(np.mean(sub)) * 252) if len(sub) else None,
                                "max_drawdown": mdd})
            if name == "market":
                doc["regime_sensitivity"] = _opt(sens.score)
        doc["regimes"] = regimes
        stress = regime_subset_stress(r, labels, set(rb.hostile_regimes))
        doc["sessions"] = _session_table(tr, closed)
        doc["hostile_stress"] = {"labels": list(rb.hostile_regimes), "periods": stress.hostile.n_periods,
                                 "sharpe": _opt(stress.hostile.sharpe),
                                 "annual_return": _opt(stress.hostile.annual_return),
                                 "max_drawdown": _opt(stress.hostile.max_drawdown)}
        out[t.key] = doc
        eq = res.tables["equity"]
        from argus.research.sweep import _last_per_day, ny_days

        curve_parts.append(pd.DataFrame({"key": t.key, "ts": ts_days,
                                         "equity": _last_per_day(ny_days(eq["ts"]), np.asarray(eq["equity"]), days)}))
        cols = {k: tr[k] for k in ("symbol", "side", "qty", "entry_ts", "entry_price", "exit_ts", "exit_price", "pnl",
                                   "commission", "slippage_cost", "mae", "mfe", "exit_reason")}
        df = pd.DataFrame({k: np.asarray(v) for k, v in cols.items()})
        for c in ("entry_ts", "exit_ts"):
            v = np.asarray(df[c], dtype=np.int64)
            df[c] = pd.to_datetime(np.where(v < 0, np.iinfo(np.int64).min, v), utc=True)
        df.insert(0, "key", t.key)
        df["symbol"] = df["symbol"].astype(str)
        df["exit_reason"] = df["exit_reason"].astype(str)
        trade_parts.append(df)
    if rb.regimes:
        for t, doc in zip(chosen, _hostile_reruns(cfg, chosen, head, log_path), strict=True):
            out[t.key]["hostile_rerun"] = doc
    with np.errstate(invalid="ignore", divide="ignore"):
        bench_eq = cfg.execution.cash * bench_close / bench_close[np.isfinite(bench_close)][0] \
            if np.isfinite(bench_close).any() else np.full(len(days), np.nan)
    curve_parts.append(pd.DataFrame({"key": "benchmark", "ts": ts_days, "equity": bench_eq}))
    curves = pd.concat(curve_parts, ignore_index=True)
    trades = pd.concat(trade_parts, ignore_index=True) if trade_parts else pd.DataFrame(
        {"key": pd.Series(dtype=str)})
    return out, curves, trades


def _session_table(trades: dict[str, np.ndarray], closed: np.ndarray) -> list[dict[str, Any]]:
    """Closed trades by the global session of their entry (argus.projections.sessions): count, win rate,
    mean and total P&L."""
    from argus.projections.sessions import SESSION_NAMES, label_at

    if not closed.any():
        return []
    entry = np.asarray(trades["entry_ts"], dtype=np.int64)[closed]
    pnl = np.asarray(trades["pnl"], dtype=np.float64)[closed]
    labels = label_at(entry)
    rows = []
    for code in sorted(set(labels.tolist())):
        p = pnl[labels == code]
        rows.append({"session": SESSION_NAMES[int(code)], "trades": int(len(p)), "win_rate": float(np.mean(p > 0)),
                     "mean_pnl": float(p.mean()), "total_pnl": float(p.sum())})
    return rows


def _hostile_reruns(cfg: ResearchConfig, chosen: list[Trial], head: int, log_path: str) -> list[dict[str, Any]]:
    """The top configurations rerun with entries allowed only while the market regime is hostile
    (robustness.hostile_regimes): what the strategy does when the market turns against it."""
    from argus.kernels.market_regime import MARKET_REGIME_NAMES
    from argus.replay.backtest import NO_RUN_LOG
    from argus.replay.fanout import run_many
    from argus.strategies.base import RegimeGate
    from argus.strategies.registry import default_registry

    hostile = set(cfg.robustness.hostile_regimes)
    gate = RegimeGate(frozenset(set(MARKET_REGIME_NAMES) - hostile))
    reg = default_registry()
    strategies = []
    for t in chosen:
        s = reg.create(t.strategy, t.params)
        s.filters = gate if s.filters is None else s.filters & gate
        s.uses = s.uses | {"market_regime"}  # the gate reads the market regime: the pass must compute it
        strategies.append(s)
    cfgs = [backtest_config(cfg, t.strategy, t.params, head) for t in chosen]
    with EventLog(log_path, readonly=True) as lg:
        results = run_many(lg, cfgs, strategies, runs_dir=NO_RUN_LOG)
    out = []
    for res in results:
        tr = res.tables["trades"]
        closed = (tr["exit_reason"] != "open") if len(tr["symbol"]) else np.zeros(0, bool)
        pnl = np.asarray(tr["pnl"], dtype=np.float64)[closed]
        out.append({"labels": sorted(hostile), "trades": int(len(pnl)), "total_pnl": float(pnl.sum()),
                    "final_equity": res.final_equity, "sharpe": _opt(res.metrics.get("sharpe")),
                    "max_drawdown": _opt(res.metrics.get("max_drawdown"))})
    return out


def _fan(pnl: np.ndarray, block: float, rb, cash: float) -> dict[str, Any]:
    """Quantiles of the bootstrapped equity after each trade (the fan chart), same seed as the bootstrap."""
    from arch.bootstrap import StationaryBootstrap

    bs = StationaryBootstrap(block, pnl, seed=np.random.default_rng(rb.seed))
    paths = np.array([args[0] for args, _ in bs.bootstrap(rb.bootstrap_paths)])
    eq = cash + np.cumsum(paths, axis=1)
    steps = np.unique(np.linspace(0, eq.shape[1] - 1, min(eq.shape[1], 200)).astype(int))
    q = np.quantile(eq[:, steps], [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    return {"steps": (steps + 1).tolist(), **{f"q{int(p * 100):02d}": q[k].tolist()
                                              for k, p in enumerate((0.05, 0.25, 0.5, 0.75, 0.95))}}


def _allocate(cfg: ResearchConfig, trials: list[Trial], survivors: list[int]) -> dict[str, Any]:
    """The survivors, equally weighted, through the AllocationEngine (per-play cap, gross cap, budgets)."""
    from argus.sizing import AllocationConfig, AllocationEngine

    a = cfg.allocation
    budgets = {} if a.strategy_budget is None else {trials[j].strategy: a.strategy_budget for j in survivors}
    engine = AllocationEngine(AllocationConfig(per_play_cap=a.per_play_cap, gross_cap=a.gross_cap,
                                               strategy_budgets=budgets, max_change=a.max_change))
    requested = {(trials[j].strategy, trials[j].key): 1.0 / len(survivors) for j in survivors} if survivors else {}
    alloc = engine.allocate(a.equity, requested)
    doc = alloc.to_json()
    params = {t.key: t.params for t in trials}
    for line in doc.get("allocations", []):
        line["params"] = params.get(line.get("play"), {})
    return doc
