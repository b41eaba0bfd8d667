"""A small, fake research run directory that follows docs/research-run-dir.md exactly.

`fake_run_dir(path, seed)` writes every file of the contract (config.yaml, summary.json, results.parquet,
folds.parquet, returns.parquet, curves.parquet, trades.parquet, robustness.json, allocations.json) with
made-up but self-consistent numbers: 16 `sma_cross` configurations (fast × slow) and 4 `zscore_revert`
ones (window), 300 New York trading days, 4 walk-forward folds, the top 5 configurations in curves,
trades and robustness. The same (path contents aside) seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["FILES", "TOP", "fake_run_dir"]

#: Every file of the run-directory contract.
FILES = ("config.yaml", "summary.json", "results.parquet", "folds.parquet", "returns.parquet", "curves.parquet",
         "trades.parquet", "robustness.json", "allocations.json")
TOP = 5
N_DAYS = 300
N_FOLDS = 4
CONFIG_HASH = "c0ffee" * 5 + "00"
LOG_HEAD = 4242
START_EQUITY = 100_000.0

CONFIG_YAML = """\
# fake research config (tests/research/fixtures.py)
name: fake-sweep
market: {symbols: [SPY], timeframe: 1d}
strategies:
  sma_cross: {fast: [5, 10, 15, 20], slow: [30, 50, 80, 120]}
  zscore_revert: {window: {start: 10, stop: 40, step: 10}}
gates: {dsr_min: 0.95, min_trades: 30}
"""


def _key(strategy: str, params: dict) -> str:
    text = json.dumps([strategy, params, CONFIG_HASH, LOG_HEAD], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _configs() -> list[tuple[str, dict]]:
    out = [("sma_cross", {"fast": f, "slow": s}) for f in (5, 10, 15, 20) for s in (30, 50, 80, 120)]
    out += [("zscore_revert", {"window": w}) for w in (10, 20, 30, 40)]
    return out


def _write(table: pd.DataFrame, path: Path, schema: Iterable[tuple[str, pa.DataType]]) -> None:
    fields = list(schema)
    arrays = [pa.array([_cell(v, t) for v in table[name].tolist()], type=t) for name, t in fields]
    pq.write_table(pa.table(arrays, names=[n for n, _ in fields]), path)


def _cell(v: object, t: pa.DataType) -> object:
    """One value for pyarrow: NaN / NaT / None → null, whole floats → int for integer columns."""
    if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    return int(v) if pa.types.is_integer(t) else v


def _sharpe(r: np.ndarray) -> float:
    sd = r.std(ddof=1)
    return float(r.mean() / sd * math.sqrt(252)) if sd > 0 else math.nan


def _max_dd(equity: np.ndarray) -> float:
    return float(np.max(1.0 - equity / np.maximum.accumulate(equity)))


def fake_run_dir(path: str | Path, seed: int = 0) -> Path:
    """Write a complete fake research run directory under ``path`` (created) and return it."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    configs = _configs()
    keys = [_key(s, p) for s, p in configs]

    # returns.parquet: one row per NY trading day (weekdays stand in for the exchange calendar here)
    days = pd.bdate_range("2023-01-03", periods=N_DAYS)
    bench = rng.normal(0.0004, 0.011, N_DAYS)
    drift = rng.normal(0.0002, 0.0004, len(keys))
    rets = {k: 0.4 * bench + rng.normal(mu, 0.008, N_DAYS) for k, mu in zip(keys, drift, strict=True)}
    returns = pd.DataFrame({"date": days.date, **rets, "benchmark": bench})
    _write(returns, root / "returns.parquet",
           [("date", pa.date32())] + [(k, pa.float64()) for k in keys] + [("benchmark", pa.float64())])

    # results.parquet
    sharpe = {k: _sharpe(rets[k]) for k in keys}
    ranked = sorted(keys, key=lambda k: (-sharpe[k], k))
    rows = []
    for (strategy, params), k in zip(configs, keys, strict=True):
        r = rets[k]
        eq = START_EQUITY * np.cumprod(1.0 + r)
        n_trades = int(rng.integers(12, 90))
        psr, dsr = float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.2, 1.0))
        killed, gate, value, threshold = False, None, None, None
        if n_trades < 30:
            killed, gate, value, threshold = True, "min_trades", float(n_trades), 30.0
        elif dsr < 0.95 and k != ranked[0]:
            killed, gate, value, threshold = True, "dsr", dsr, 0.95
        cagr = float(eq[-1] / START_EQUITY) ** (252 / N_DAYS) - 1.0
        mdd = _max_dd(eq)
        rows.append({
            "key": k, "strategy": strategy, "params": json.dumps(params, sort_keys=True, separators=(",", ":")),
            "config_hash": CONFIG_HASH, "log_head": LOG_HEAD, "trades": n_trades, "final_equity": float(eq[-1]),
            "total_commission": float(n_trades * 1.3), "sharpe": sharpe[k],
            "sortino": sharpe[k] * 1.4, "calmar": cagr / mdd if mdd > 0 else None, "cagr": cagr,
            "max_drawdown": mdd, "max_drawdown_days": int(rng.integers(5, 120)),
            "win_rate": float(rng.uniform(0.35, 0.6)), "profit_factor": float(rng.uniform(0.8, 1.6)),
            "expectancy": float(rng.normal(5.0, 20.0)), "exposure": float(rng.uniform(0.3, 0.9)),
            "turnover": float(rng.uniform(2.0, 20.0)), "psr": psr, "dsr": dsr,
            "min_trl": float(rng.uniform(100, 3000)), "stability": sharpe[k] * float(rng.uniform(0.5, 1.0)),
            "killed": killed, "kill_gate": gate, "kill_value": value, "kill_threshold": threshold,
            "digest": hashlib.blake2b(k.encode(), digest_size=16).hexdigest(),
            "p_fast": params.get("fast"), "p_slow": params.get("slow"), "p_window": params.get("window"),
        })
    results = pd.DataFrame(rows)
    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    _write(results, root / "results.parquet", [
        ("key", s), ("strategy", s), ("params", s), ("config_hash", s), ("log_head", i64), ("trades", i64),
        ("final_equity", f64), ("total_commission", f64), ("sharpe", f64), ("sortino", f64), ("calmar", f64),
        ("cagr", f64), ("max_drawdown", f64), ("max_drawdown_days", i64), ("win_rate", f64),
        ("profit_factor", f64), ("expectancy", f64), ("exposure", f64), ("turnover", f64), ("psr", f64),
        ("dsr", f64), ("min_trl", f64), ("stability", f64), ("killed", pa.bool_()), ("kill_gate", s),
        ("kill_value", f64), ("kill_threshold", f64), ("digest", s), ("p_fast", i64), ("p_slow", i64),
        ("p_window", i64),
    ])

    # folds.parquet: anchored walk-forward, 4 folds of 60 days after a 60-day warm-up
    ts = pd.DatetimeIndex(days).tz_localize("America/New_York") + pd.Timedelta(hours=16)
    ts = ts.tz_convert("UTC")
    fold_rows = []
    for fold in range(N_FOLDS):
        is_lo, is_hi, oos_hi = 0, 60 * (fold + 1), 60 * (fold + 2)
        is_sr = {k: _sharpe(rets[k][is_lo:is_hi]) for k in keys}
        winner = min(keys, key=lambda k: (-is_sr[k], k))
        for k in keys:
            r_oos = rets[k][is_hi:oos_hi]
            fold_rows.append({
                "key": k, "fold": fold, "kind": "walk_forward", "is_start": ts[is_lo], "is_end": ts[is_hi - 1],
                "oos_start": ts[is_hi], "oos_end": ts[oos_hi - 1], "is_sharpe": is_sr[k],
                "oos_sharpe": _sharpe(r_oos), "is_return": float(np.mean(rets[k][is_lo:is_hi]) * 252),
                "oos_return": float(np.mean(r_oos) * 252), "selected": k == winner,
            })
    tsu = pa.timestamp("ns", tz="UTC")
    _write(pd.DataFrame(fold_rows), root / "folds.parquet", [
        ("key", s), ("fold", i64), ("kind", s), ("is_start", tsu), ("is_end", tsu), ("oos_start", tsu),
        ("oos_end", tsu), ("is_sharpe", f64), ("oos_sharpe", f64), ("is_return", f64), ("oos_return", f64),
        ("selected", pa.bool_()),
    ])

    # curves.parquet: the top configurations and the benchmark
    top = ranked[:TOP]
    curve_rows = []
    for k in [*top, "benchmark"]:
        r = bench if k == "benchmark" else rets[k]
        eq = START_EQUITY * np.cumprod(1.0 + r)
        curve_rows += [{"key": k, "ts": t, "equity": float(e)} for t, e in zip(ts, eq, strict=True)]
    _write(pd.DataFrame(curve_rows), root / "curves.parquet", [("key", s), ("ts", tsu), ("equity", f64)])

    # trades.parquet: round trips of the top configurations (columns of a backtest's trades.parquet)
    trade_rows = []
    for k in top:
        n = 40
        entries = np.sort(rng.choice(N_DAYS - 6, size=n, replace=False))
        for j, e in enumerate(entries):
            side = 1 if rng.random() < 0.6 else -1
            qty = float(rng.integers(10, 100))
            entry_price = float(400 * (1 + rng.normal(0, 0.05)))
            exit_price = entry_price * (1 + side * rng.normal(0.002, 0.02))
            commission = 0.005 * qty * 2
            pnl = side * (exit_price - entry_price) * qty - commission
            mae = min(0.0, pnl - abs(rng.normal(0, 150)))
            mfe = max(0.0, pnl + abs(rng.normal(0, 150)))
            last = j == n - 1
            trade_rows.append({
                "key": k, "symbol": "SPY", "side": side, "qty": qty, "entry_ts": ts[e],
                "entry_price": entry_price, "exit_ts": None if last else ts[e + int(rng.integers(1, 5))],
                "exit_price": exit_price, "pnl": pnl, "commission": commission,
                "slippage_cost": 0.01 * qty * 2, "mae": mae, "mfe": mfe, "exit_reason": "open" if last else "signal",
            })
    _write(pd.DataFrame(trade_rows), root / "trades.parquet", [
        ("key", s), ("symbol", s), ("side", i64), ("qty", f64), ("entry_ts", tsu), ("entry_price", f64),
        ("exit_ts", tsu), ("exit_price", f64), ("pnl", f64), ("commission", f64), ("slippage_cost", f64),
        ("mae", f64), ("mfe", f64), ("exit_reason", s),
    ])

    # robustness.json: per top configuration key
    robustness = {}
    for k in top:
        pnl = np.array([t["pnl"] for t in trade_rows if t["key"] == k])
        steps = list(range(len(pnl) + 1))
        paths = START_EQUITY + np.cumsum(rng.choice(pnl, size=(200, len(pnl))), axis=1)
        paths = np.hstack([np.full((200, 1), START_EQUITY), paths])
        fan = {f"q{int(q * 100):02d}": [float(v) for v in np.quantile(paths, q, axis=0)]
               for q in (0.05, 0.25, 0.5, 0.75, 0.95)}
        dd = np.array([_max_dd(p) for p in paths])
        finals = paths[:, -1] - START_EQUITY
        gross = float(pnl.sum() + 40 * 1.0)
        net = [gross - m * 40 * 1.0 - m * 300.0 for m in (1, 1.25, 1.5, 2)]
        robustness[k] = {
            "bootstrap": {
                "n_paths": 200, "block_length": float(rng.uniform(1.5, 4.0)),
                "drawdown_quantiles": {str(q): float(np.quantile(dd, q)) for q in (0.5, 0.9, 0.95, 0.99)},
                "ruin_threshold": 0.2, "ruin_probability": float(np.mean(dd >= 0.2)), "worst_fraction": 0.05,
                "worst_mean_final_pnl": float(np.sort(finals)[:10].mean()),
                "worst_mean_max_drawdown": float(np.sort(dd)[-10:].mean()),
                "edge_le_zero_probability": float(np.mean(finals <= 0)),
                "final_pnl_quantiles": {str(q): float(np.quantile(finals, q)) for q in (0.05, 0.5, 0.95)},
                "fan": {"steps": steps, **fan},
            },
            "slippage": {"multipliers": [1, 1.25, 1.5, 2], "net_pnl": net,
                         "break_even_multiplier": gross / (40.0 + 300.0) if gross > 0 else 0.0},
            "regimes": [{"label": lab, "periods": int(rng.integers(40, 120)), "sharpe": float(rng.normal(0.5, 1)),
                         "annual_return": float(rng.normal(0.05, 0.1)), "max_drawdown": float(rng.uniform(0.02, 0.2))}
                        for lab in ("trend_up", "trend_down", "range", "high_vol")],
            "regime_sensitivity": float(rng.uniform(0, 1)),
            "hostile_stress": {"labels": ["trend_down", "high_vol"], "sharpe": float(rng.normal(-0.2, 0.5)),
                               "annual_return": float(rng.normal(-0.02, 0.05)),
                               "max_drawdown": float(rng.uniform(0.05, 0.3))},
        }
    (root / "robustness.json").write_text(json.dumps(robustness, indent=1, sort_keys=True))

    survivors = [k for k in ranked if not results.set_index("key").loc[k, "killed"]]
    by_key = dict(zip(keys, configs, strict=True))
    alloc = [{"strategy": by_key[k][0], "play": "equity", "params": by_key[k][1],
              "weight": 1.0 / len(survivors), "notional": START_EQUITY / len(survivors),
              "reason": "risk parity", "reasons": ["survived every gate", "risk parity"]} for k in survivors]
    (root / "allocations.json").write_text(json.dumps(
        {"equity": START_EQUITY, "gross": 1.0, "config": {"method": "risk_parity"},
         "strategies": sorted({by_key[k][0] for k in survivors}), "allocations": alloc}, indent=1, sort_keys=True))

    killed = results[results["killed"]]["kill_gate"].value_counts()
    sr_daily = results["sharpe"].to_numpy() / math.sqrt(252)
    summary = {
        "run_dir": str(root), "name": "fake-sweep", "configs": len(keys), "folds": N_FOLDS, "seconds": 3.2,
        "configs_per_s": len(keys) / 3.2, "survivors": len(survivors),
        "killed": {str(g): int(n) for g, n in sorted(killed.items())},
        "results_digest": hashlib.blake2b("".join(keys).encode(), digest_size=16).hexdigest(),
        "market": {"head": LOG_HEAD, "symbols": ["SPY"], "timeframe": "1d", "from": ts[0].isoformat(),
                   "to": ts[-1].isoformat()},
        "trials": {"n": len(keys), "effective": 9.3, "sr_variance": float(np.var(sr_daily, ddof=1))},
        "stats": {"pbo": 0.41, "reality_check_pvalue": 0.3, "spa_pvalue": 0.2, "best_key": ranked[0]},
        "gates": {"dsr_min": 0.95, "min_trades": 30},
        "walk_forward": {"efficiency": 0.4, "oos_sharpe": 0.8},
        "benchmark": {"symbol": "SPY", "sharpe": _sharpe(bench), "cagr": float(np.prod(1 + bench)) ** (252 / N_DAYS) - 1},
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    (root / "config.yaml").write_text(CONFIG_YAML)
    return root
