"""Many backtests over one replay pass: the bars, indicators and regimes are computed once and every
strategy instance is fed the same rows (DESIGN.md §7: parameter sweeps).

The runs must share the data window (symbols, timeframe, bar source, offsets and dates) and the fill
mode; each keeps its own strategy, simulator and state, so each result is the one run_backtest gives
for it alone (the fast path where the run is eligible, the general path otherwise). A fast run that
turns out to need the general path is rerun alone on the general path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

from argus.log import EventLog
from argus.projections.engine import ProjectionEngine
from argus.replay import fast
from argus.replay.backtest import (
    BacktestResult,
    GeneralRun,
    _prepare,
    market_scan,
    projection_config,
    run_backtest,
)
from argus.replay.settings import BacktestConfig
from argus.strategies.base import Strategy

__all__ = ["run_many"]

_SHARED = ("symbols", "timeframe", "bar_source", "from_offset", "to_offset", "from_ts", "to_ts")


def run_many(log: EventLog, cfgs: Sequence[BacktestConfig], strategies: Sequence[Strategy], *,
             runs_dir: Path | None = None, progress: Callable[[int], None] | None = None) -> list[BacktestResult]:
    """run_backtest of each (cfg, strategy) pair, over one pass of the market log, in the given order.
    `runs_dir` as in run_backtest (argus.replay.backtest.NO_RUN_LOG: no run logs, no digests)."""
    if len(cfgs) != len(strategies):
        raise ValueError(f"cfgs: {len(cfgs)} configurations for {len(strategies)} strategies")
    if not cfgs:
        return []
    first = cfgs[0]
    for c in cfgs[1:]:
        for name in _SHARED:
            if getattr(c, name) != getattr(first, name):
                raise ValueError(f"{name} = {getattr(c, name)!r}: every run of one pass must share it "
                                 f"(the first has {getattr(first, name)!r})")
        if c.execution.fill != first.execution.fill:
            raise ValueError(f"execution.fill = {c.execution.fill!r}: every run of one pass must share it")
    t0 = time.perf_counter()
    head = log.head()
    to_offset = head if first.to_offset is None else min(first.to_offset, head)
    scan = market_scan(log, first.from_offset, to_offset)
    prepared = [_prepare(log, c, s, scan) for c, s in zip(cfgs, strategies, strict=True)]
    runs: list = []
    for c, s, p in zip(cfgs, strategies, prepared, strict=True):
        runs.append(fast.FastRun(log, c, s, p) if fast.eligible(c, s) else GeneralRun(log, c, s, p))
    # The projections every strategy needs: the union of what they read.
    union = SimpleNamespace(uses=frozenset().union(*(s.uses for s in strategies)),
                            p={k: v for s in strategies for k, v in s.p.items() if k == "regime_index"})
    engine = ProjectionEngine(log, projection_config(first, union, prepared[0][2]))
    alive = [True] * len(runs)
    n_events = 0
    for chunk, rows in engine.stream(first.from_offset, to_offset):
        n_events += chunk.stop - chunk.start
        for k, run in enumerate(runs):
            if alive[k] and not run.feed(chunk, rows):
                alive[k] = False
        if progress is not None:
            progress(chunk.stop - chunk.start)
    out = []
    for k, run in enumerate(runs):
        if alive[k]:
            out.append(run.finish(n_events, runs_dir, t0))
        else:
            out.append(run_backtest(log, cfgs[k], type(strategies[k])(**strategies[k].p), runs_dir=runs_dir,
                                    fast=False))
    return out
