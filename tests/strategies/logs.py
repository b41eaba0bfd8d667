"""Hand-made market logs for the strategy tests: provider Bar events of fixed interval, one per symbol
per period, written period by period in the order the symbols are given (so within a period the
first symbol's bar has the lower offset)."""

from __future__ import annotations

from pathlib import Path

from argus.events.codec import Event
from argus.events.types import EventType, InstrumentKind
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.replay.backtest import run_backtest
from argus.replay.settings import BacktestConfig, ExecutionSettings
from argus.strategies.registry import default_registry

S = 1_000_000_000
HOUR = 3600 * S


def bar(iid: int, end: int, interval: int, o: float, h: float, lo: float, c: float) -> Event:
    return Event(EventType.BAR, ts_event=end, ts_recv=end, instrument_id=iid,
                 data={"open": o, "high": h, "low": lo, "close": c, "volume": 1000.0, "interval_ns": interval,
                       "trade_count": 10})


def write_bars(path: Path, t0: int, interval: int, series: dict[str, list[tuple[float, float]]],
               kinds: dict[str, InstrumentKind] | None = None) -> Path:
    """A log at `path`: the symbols defined (ids 0..n-1), then period k = [t0 + k·interval, t0 + (k+1)·interval)
    of every symbol: series[symbol][k] = (open, close), high/low = max/min of them ± 0.5."""
    kinds = kinds or {}
    syms = list(series)
    n = len(series[syms[0]])
    with EventLog.open(path) as log:
        log.append([instrument_event(i, s, kind=kinds.get(s, InstrumentKind.EQUITY)) for i, s in enumerate(syms)])
        events = []
        for k in range(n):
            for i, s in enumerate(syms):
                o, c = series[s][k]
                events.append(bar(i, t0 + (k + 1) * interval, interval, o, max(o, c) + 0.5, min(o, c) - 0.5, c))
        log.append(events)
    return path


def backtest(path: Path, strategy: str, symbols: tuple[str, ...], params: dict, timeframe: str = "1h",
             qty: float = 10.0, mode: str = "chunk", **execution):
    cfg = BacktestConfig(strategy=strategy, symbols=symbols, params=params, timeframe=timeframe, qty=qty,
                         cash=100_000.0, execution=ExecutionSettings(**execution))
    with EventLog(path, readonly=True) as log:
        return run_backtest(log, cfg, default_registry().create(strategy, params), mode=mode)


def fills(res) -> list[tuple[str, float, float]]:
    """(symbol, signed quantity, price) of every fill, in fill order."""
    f = res.tables["fills"]
    return [(str(s), float(q), float(p)) for s, q, p in zip(f["symbol"], f["quantity"], f["price"], strict=True)]
