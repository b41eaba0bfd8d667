"""The sweep: every configuration of a research run backtested over one replay pass per group.

Trials are keyed by (strategy, canonical parameters, the run's config hash, the market log head): the
key names a result in the cache (`RUN_DIR/cache/*.parquet`), so a rerun skips what is done and an
interrupted run resumes where it stopped. Trials are cut into groups of `GROUP_SIZE`; each group is one
replay pass (argus.replay.fanout.run_many) whose bars and regimes serve all its trials. Groups run one
after the other, on a local process pool (`workers`), or on a Dask cluster (`cluster`); each result
depends only on its trial, so every way gives the same bytes.

A trial's result is its backtest metrics and its equity at the close of each New York trading day of
the window (the per-period series of the deploy gates). Two pseudo-strategies ride in the first pass of
a run: the benchmark (the first symbol's closes: buy and hold) and, when asked, the regime labels of
each day (market regime and the first symbol's volatility regime).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from argus.log import EventLog
from argus.replay.backtest import NO_RUN_LOG
from argus.replay.fanout import run_many
from argus.replay.settings import BacktestConfig, ExecutionSettings, parse_bound
from argus.research.config import ResearchConfig, expand_grid
from argus.strategies.base import Strategy
from argus.strategies.registry import StrategyRegistry, default_registry

__all__ = ["GROUP_SIZE", "Trial", "backtest_config", "config_hash", "plan", "run_group"]

GROUP_SIZE = 64
_NY = "America/New_York"


@dataclass(frozen=True)
class Trial:
    key: str
    strategy: str
    params: dict[str, Any]

    def as_tuple(self) -> tuple[str, str, str]:
        return self.key, self.strategy, json.dumps(self.params, sort_keys=True)


def config_hash(cfg: ResearchConfig) -> str:
    """BLAKE2b-128 of what decides a backtest's result besides its strategy: data window and execution."""
    doc = {"data": cfg.canonical()["data"], "execution": cfg.canonical()["execution"]}
    return hashlib.blake2b(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(), digest_size=16).hexdigest()


def trial_key(strategy: str, params: dict[str, Any], chash: str, head: int) -> str:
    text = json.dumps([strategy, params, chash, head], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def plan(cfg: ResearchConfig, head: int, registry: StrategyRegistry | None = None) -> list[Trial]:
    """The grid's trials, in configuration order (strategies as given, then the parameter product)."""
    reg = registry or default_registry()
    chash = config_hash(cfg)
    trials = []
    for sweep in cfg.strategies:
        cls = reg.get(sweep.name)
        for params in expand_grid(sweep, cls):
            full = cls(**params).p
            trials.append(Trial(trial_key(sweep.name, full, chash, head), sweep.name, full))
    keys = [t.key for t in trials]
    if len(set(keys)) != len(keys):
        seen = set()
        trials = [t for t in trials if not (t.key in seen or seen.add(t.key))]
    return trials


def backtest_config(cfg: ResearchConfig, strategy: str, params: dict[str, Any], head: int) -> BacktestConfig:
    d, ex = cfg.data, cfg.execution
    from_offset, from_ts = parse_bound(d.start, end=False)
    to_offset, to_ts = parse_bound(d.end, end=True)
    execution = ExecutionSettings(fill=ex.fill, latency_ms=ex.latency_ms, slippage_bps=ex.slippage_bps,
                                  slippage_ticks=ex.slippage_ticks, tick_size=ex.tick_size,
                                  commission_rate=ex.commission_rate, commission_per_share=ex.commission_per_share,
                                  commission_per_contract=ex.commission_per_contract,
                                  commission_min=ex.commission_min)
    return BacktestConfig(strategy=strategy, symbols=tuple(d.symbols), params=params, timeframe=d.timeframe,
                          bar_source=d.bar_source, from_offset=from_offset or 0,
                          to_offset=head if to_offset is None else min(to_offset, head), from_ts=from_ts,
                          to_ts=to_ts, cash=ex.cash, qty=ex.qty, execution=execution)


class _Closes(Strategy):
    """Records the first symbol's closes (the buy-and-hold benchmark); never trades."""

    name = "benchmark"
    instrument_kinds = frozenset({"any"})

    def __init__(self, **params):
        super().__init__(**params)
        self.ts: list[np.ndarray] = []
        self.close: list[np.ndarray] = []

    def on_bars(self, ctx, block):
        first = block.sym == 0
        self.ts.append(block.ts_end[first])
        self.close.append(block.close[first])
        return np.full(len(block.sym), np.nan)


class _Regimes(Strategy):
    """Records, at each bar of the first symbol, the market regime and its volatility regime; never trades."""

    name = "regimes"
    instrument_kinds = frozenset({"any"})
    uses = frozenset({"market_regime", "regimes"})

    def __init__(self, **params):
        super().__init__(**params)
        self.rows: list[tuple[int, str, str]] = []

    def on_bar(self, ctx, bar):
        if bar.symbol == ctx.symbols[0]:
            vol = (ctx.regime(bar.symbol) or {}).get("vol", "unknown")
            self.rows.append((bar.ts_end, ctx.market_regime(), vol))


def ny_days(ts: np.ndarray) -> np.ndarray:
    """The New York calendar day (days since 1970-01-01) of each ns UTC instant."""
    ts = np.asarray(ts, dtype=np.int64)
    if not len(ts):
        return np.empty(0, np.int64)
    # Convert each distinct UTC hour once: New York's offset is constant within an hour.
    hours, inverse = np.unique(ts // 3_600_000_000_000, return_inverse=True)
    local = pd.DatetimeIndex(hours * 3_600_000_000_000, tz="UTC").tz_convert(_NY)
    offset = np.asarray([int(x.utcoffset().total_seconds()) for x in local], dtype=np.int64) * 1_000_000_000
    return (ts + offset[inverse]) // 86_400_000_000_000


def _last_per_day(days: np.ndarray, values: np.ndarray, all_days: np.ndarray) -> np.ndarray:
    """The last value of each of `all_days` (carried forward over days without one; NaN before the first)."""
    out = np.full(len(all_days), np.nan)
    if len(days):
        last = np.r_[np.flatnonzero(days[1:] != days[:-1]), len(days) - 1]
        idx = np.searchsorted(all_days, days[last])
        out[idx] = values[last]
        filled = pd.Series(out).ffill().to_numpy()
        out = filled
    return out


def run_group(log_path: str, cfg_doc: dict[str, Any], trials: Sequence[tuple[str, str, str]], head: int,
              extras: bool) -> dict[str, Any]:
    """Backtest `trials` [(key, strategy, params json)] over one replay pass; with `extras`, also the
    benchmark and the regime labels. Returns plain, picklable data (it runs in worker processes)."""
    cfg = ResearchConfig.model_validate(cfg_doc)
    reg = default_registry()
    strategies: list[Strategy] = [reg.create(name, json.loads(params)) for _, name, params in trials]
    cfgs = [backtest_config(cfg, s.name, s.p, head) for s in strategies]
    closes = regimes = None
    if extras:
        closes = _Closes()
        strategies.append(closes)
        cfgs.append(backtest_config(cfg, "sma_cross", {}, head))
        if cfg.robustness.regimes:
            regimes = _Regimes()
            strategies.append(regimes)
            cfgs.append(backtest_config(cfg, "sma_cross", {}, head))
    with EventLog(log_path, readonly=True) as lg:
        results = run_many(lg, cfgs, strategies, runs_dir=NO_RUN_LOG)
    out: dict[str, Any] = {"trials": []}
    if not results:
        return out
    ts = results[0].tables["equity"]["ts"]
    days = ny_days(ts)
    out["days"] = np.unique(days)
    for (key, name, params), res in zip(trials, results, strict=False):
        eq = np.asarray(res.tables["equity"]["equity"], dtype=np.float64)
        trades = res.tables["trades"]
        closed = trades["exit_reason"] != "open" if len(trades["symbol"]) else np.zeros(0, bool)
        held = (np.asarray(trades["exit_ts"], dtype=np.int64)[closed]
                - np.asarray(trades["entry_ts"], dtype=np.int64)[closed])
        out["trials"].append({
            "key": key, "strategy": name, "params": params, "metrics": res.metrics, "final_equity": res.final_equity,
            "total_commission": res.total_commission, "fills": res.fills,
            "trades": int(closed.sum()), "equity_by_day": _last_per_day(days, eq, out["days"]),
            # the longest trade, in days (rounded up): the label horizon CPCV purges by
            "max_hold_days": int(math.ceil(held.max() / 86_400e9)) if len(held) else 0,
        })
    if closes is not None:
        cts = np.concatenate(closes.ts) if closes.ts else np.empty(0, np.int64)
        cc = np.concatenate(closes.close) if closes.close else np.empty(0)
        out["benchmark_close"] = _last_per_day(ny_days(cts), cc, out["days"])
    if regimes is not None:
        rts = np.array([r[0] for r in regimes.rows], dtype=np.int64)
        rdays = ny_days(rts)
        by_day: dict[int, tuple[str, str]] = {}
        for d, (_, m, v) in zip(rdays.tolist(), regimes.rows, strict=True):
            by_day[d] = (m, v)  # the last bar of the day
        out["market_regime"] = [by_day.get(int(d), ("unknown", "unknown"))[0] for d in out["days"]]
        out["vol_regime"] = [by_day.get(int(d), ("unknown", "unknown"))[1] for d in out["days"]]
    return out


def daily_returns(equity_by_day: np.ndarray, cash: float) -> np.ndarray:
    """Per-day fractional returns of an equity series (the first day against the starting cash)."""
    eq = np.asarray(equity_by_day, dtype=np.float64)
    prev = np.concatenate([[cash], eq[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = eq / prev - 1.0
    r[~np.isfinite(r)] = 0.0
    return r


def metrics_json(metrics: dict[str, Any]) -> str:
    return json.dumps({k: (None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v)
                       for k, v in metrics.items()}, sort_keys=True, separators=(",", ":"))


def groups_of(trials: Sequence[Trial], size: int = GROUP_SIZE) -> list[list[Trial]]:
    return [list(trials[i:i + size]) for i in range(0, len(trials), size)]


ProgressFn = Callable[[int], None]
