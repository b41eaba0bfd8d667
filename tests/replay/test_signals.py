"""`argusctl signals`: a strategy on the live market log appends its Signal events there, the same
signals a backtest of the same range decides, exactly once."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from argus.events.codec import Event
from argus.events.types import EventType
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.replay.backtest import run_backtest
from argus.replay.settings import BacktestConfig
from argus.replay.signals import run_signals
from argus.strategies.registry import default_registry

DAY = 86_400 * 10**9


def bars(start: int, n: int, seed: int) -> list[Event]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    out = []
    for i, c in enumerate(close):
        t = (start + i + 1) * DAY + 19_000 * DAY
        o = c * (1 + rng.normal(0, 0.002))
        out.append(Event(EventType.BAR, t, t, 0, {"open": o, "high": max(o, c) * 1.01, "low": min(o, c) * 0.99,
                                                  "close": c, "volume": 1e6, "interval_ns": DAY, "trade_count": 0}))
    return out


@pytest.fixture
def market(tmp_path):
    with EventLog.open(tmp_path / "log") as lg:
        lg.append([instrument_event(0, "ABC")])
        lg.append(bars(0, 300, 1))
    return tmp_path / "log"


def signals_of(path) -> list[tuple[str, float, int]]:
    with EventLog(path, readonly=True) as lg:
        return [(e.data["signal_id"], e.data["target_quantity"], e.ts_recv) for _, e in lg.events(0)
                if e.type == EventType.SIGNAL]


def config(**kw) -> BacktestConfig:
    return BacktestConfig(strategy="sma_cross", symbols=("ABC",), params={"fast": 5, "slow": 20}, qty=10, **kw)


def test_signals_match_the_backtest_and_are_appended_once(market, tmp_path):
    reg = default_registry()
    with EventLog(market) as lg:
        first = run_signals(lg, config(), reg.create("sma_cross", {"fast": 5, "slow": 20}))
        again = run_signals(lg, config(), reg.create("sma_cross", {"fast": 5, "slow": 20}))
    assert first["appended"] > 4 and first["duplicates"] == 0
    assert again["appended"] == 0 and again["duplicates"] == first["appended"]
    live = signals_of(market)
    assert len(live) == first["appended"]
    # The backtest of the same range (a copy of the log without the signals) decides the same signals.
    copy = tmp_path / "copy"
    with EventLog.open(copy) as out, EventLog(market, readonly=True) as src:
        out.append([instrument_event(0, "ABC")])
        out.append([e for _, e in src.events(1) if e.type == EventType.BAR])
    with EventLog(copy, readonly=True) as lg:
        res = run_backtest(lg, config(), reg.create("sma_cross", {"fast": 5, "slow": 20}), runs_dir=tmp_path)
    backtested = signals_of(tmp_path / res.run_id / "log")
    assert [(s, q) for s, q, _ in live] == [(s, q) for s, q, _ in backtested]


def test_follow_picks_up_appended_bars(market):
    reg = default_registry()
    done = threading.Event()
    out = {}
    with EventLog(market) as lg:  # one writer per log: the follower and this test share it

        def follow():
            out.update(run_signals(lg, config(), reg.create("sma_cross", {"fast": 5, "slow": 20}), follow=True,
                                   poll_interval=0.02, should_stop=done.is_set))

        t = threading.Thread(target=follow)
        t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not signals_of_log(lg):
            time.sleep(0.02)  # caught up with the first 300 bars
        head = lg.head()
        lg.append(bars(300, 200, 2))
        while time.monotonic() < deadline and not [ts for _, _, ts in signals_of_log(lg) if ts > LATE]:
            time.sleep(0.05)
        done.set()
        t.join(10)
        assert not t.is_alive()
        assert out["last_offset"] >= head + 200
        assert [ts for _, _, ts in signals_of_log(lg) if ts > LATE]  # decided on bars appended while following


LATE = (300 + 19_000) * DAY


def signals_of_log(lg) -> list[tuple[str, float, int]]:
    return [(e.data["signal_id"], e.data["target_quantity"], e.ts_recv) for _, e in lg.events(0)
            if e.type == EventType.SIGNAL]
