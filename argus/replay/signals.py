"""A strategy on the live market log: the backtest harness's feeding, with its intents appended to the
market log itself as Signal events (DESIGN.md §7: live trading appends Signal/Order/Fill events to the
market log). No execution is simulated; orders belong to a broker connector, so the strategy's position
is taken to be its latest target.

The same strategy object and the same feeding (argus.replay.backtest._feed) run here and in a backtest,
so a signal emitted live at offset d is the signal the backtest's strategy decides at d. Appends are
idempotent: the producer id is "signals:<strategy>:<config hash>" and the sequence the market offset
the batch was decided at, so a restarted runner does not write a signal twice (the log refuses the
older sequences, which are counted as duplicates).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from argus.errors import ProducerSequenceError
from argus.events.codec import Event
from argus.events.types import EventType
from argus.log import EventLog
from argus.projections.engine import ProjectionEngine
from argus.replay.backtest import _feed, _prepare, _Run, _session_closes, projection_config
from argus.replay.settings import BacktestConfig
from argus.strategies.base import SpreadIntent, Strategy, signal_id

__all__ = ["run_signals"]


class _SignalRun(_Run):
    """The harness with intents turned into Signal events for the market log."""

    def _emit(self, etype: EventType, inst, data: dict[str, Any]) -> None:
        if etype == EventType.SIGNAL:
            now = self.ctx.now
            self.events.append(Event(type=etype, ts_event=now, ts_recv=now, instrument_id=inst.market_id, data=data))

    def _submit(self, sym: str, qty: float, otype: str, limit: float, stop: float, tif: str, reason: str, exits,
                role: str, index: int, units: float) -> int:
        ctx = self.ctx
        sid = signal_id(self.strategy.strategy_id(), self.config_hash, ctx.offset, index + 1000 * (role == "exit"))
        self.n_signals += 1
        # The same Signal fields as the backtest's run log: the intent's position units.
        self._emit(EventType.SIGNAL, self.by_symbol[sym], {"signal_id": sid, "strategy_id": self.strategy.strategy_id(),
                                                            "config_hash": self.config_hash,
                                                            "target_quantity": float(units), "reason": reason})
        ctx.positions[sym] += qty  # signals only: the position is assumed to reach its target
        return 0

    def _spread_intent(self, intent: SpreadIntent, index: int) -> None:
        legs = " ".join(f"{'+' if lg.side > 0 else '-'}{lg.right[0].upper()}{lg.strike:g}@{lg.expiry_ns}"
                        for lg in intent.legs)
        sid = signal_id(self.strategy.strategy_id(), self.config_hash, self.ctx.offset, index)
        self.n_signals += 1
        self._emit(EventType.SIGNAL, self.by_symbol[intent.symbol], {
            "signal_id": sid, "strategy_id": self.strategy.strategy_id(), "config_hash": self.config_hash,
            "target_quantity": float(intent.units), "reason": f"{intent.reason} [{legs}]".strip()})


def run_signals(log: EventLog, cfg: BacktestConfig, strategy: Strategy, *, follow: bool = False,
                poll_interval: float = 0.2, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run `strategy` from cfg.from_offset to the head (and on, with `follow`, until should_stop())
    appending its signals to `log` (opened writable). Returns counts and the last offset processed."""
    _, instruments, source, _, _, config_hash = _prepare(log, cfg, strategy)
    run = _SignalRun(cfg, strategy, instruments, config_hash)
    engine = ProjectionEngine(log, projection_config(cfg, strategy, source))
    run.session_close = _session_closes(engine.config)
    ids = np.array([i.market_id for i in instruments], dtype=np.uint32)
    producer = f"signals:{strategy.strategy_id()}:{config_hash}"
    strategy.on_start(run.ctx)
    position, resume, appended, duplicates = cfg.from_offset, False, 0, 0
    while True:
        head = log.head() if cfg.to_offset is None else min(cfg.to_offset, log.head())
        batches = []
        for chunk, rows in engine.stream(position, head, resume=resume):
            resume = True
            _feed(run, cfg, chunk, rows, ids)
            if run.events:
                batches.append((chunk.stop, run.events))
                run.events = []
        for sequence, events in batches:  # appended once the read of the range is over
            try:
                result = log.append(events, producer_id=producer, sequence=sequence)
            except ProducerSequenceError:  # an older batch of a previous run: already in the log
                duplicates += len(events)
                continue
            if result.duplicate:
                duplicates += len(events)
            else:
                appended += len(events)
        position = max(position, head)
        if not follow or (should_stop is not None and should_stop()) or cfg.to_offset is not None:
            break
        time.sleep(poll_interval)
    return {"strategy": strategy.strategy_id(), "config_hash": config_hash, "producer_id": producer,
            "signals": run.n_signals, "appended": appended, "duplicates": duplicates, "last_offset": position}
