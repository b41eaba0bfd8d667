"""Option spreads through the backtest harness on a hand-made log (issue #8 item 2, options bullet).

The log: one underlying with a few trades a day over four XNYS sessions (2024-03-11..14, New York is
UTC-4 then), a Clock after each close so the session bars close, and two chain snapshots on the first
day. A strategy asks, on the first chain, to sell the 100 put and buy the 95 put expiring at the close
of the third session. Worked by hand:
- the order is decided at chain A and fills on chain B (the next snapshot), never on A: sell 100P at
  B's bid 1.90, buy 95P at B's ask 0.90 -> credit 1.00 per share = 100 per contract, commission
  2 x 0.65;
- settlement at the third session's close, 97 (the last trade of that day): the 100 put is worth 3, the
  95 put 0. Cash-settled (an index): pay 300 -> P&L = 100 - 300 - 1.30 = -201.30. Physical (an
  equity): assigned 100 shares at 100 (-10,000 cash), sold back at the fourth session's open, 98
  (+9,800) -> P&L = 100 - 1.30 - 200 = -101.30.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from argus.events import codec
from argus.events.codec import Event
from argus.events.layout import OPTION_ROW_DTYPE
from argus.events.types import EventType, InstrumentKind, OptionRight
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.replay.backtest import run_backtest
from argus.replay.settings import BacktestConfig, ExecutionSettings
from argus.strategies.base import SpreadExits, SpreadIntent, SpreadLeg, Strategy

UTC = dt.UTC


def ns(y, mo, d, h, mi=0) -> int:
    """ns of a New York wall time in March 2024 after the DST change (UTC-4)."""
    return int(dt.datetime(y, mo, d, h + 4, mi, tzinfo=UTC).timestamp()) * 10**9


EXPIRY = ns(2024, 3, 13, 16)


def chain_rows(put100: tuple[float, float], put95: tuple[float, float]) -> np.ndarray:
    rows = np.zeros(2, dtype=OPTION_ROW_DTYPE)
    for row, k, (bid, ask) in zip(rows, (100.0, 95.0), (put100, put95), strict=True):
        row["expiry_ns"], row["strike"], row["right"] = EXPIRY, k, int(OptionRight.PUT)
        row["bid"], row["ask"], row["bid_size"], row["ask_size"] = bid, ask, 10, 10
        row["open_interest"], row["iv"], row["delta"] = 100, 0.3, -0.3
        row["contract_id"] = 0xFFFFFFFF
    return rows


def build_log(path, kind: InstrumentKind) -> None:
    events = [instrument_event(0, "XYZ", kind=kind)]
    seq = [0]

    def trade(t: int, price: float) -> None:
        seq[0] += 1
        events.append(Event(EventType.TRADE, t, t, 0, {"price": price, "size": 10.0, "trade_id": seq[0],
                                                       "aggressor": 0}))

    def clock(t: int) -> None:
        events.append(Event(EventType.CLOCK, t, t))

    day_prices = {11: (101.0, 100.5), 12: (100.0, 99.0), 13: (98.5, 97.0), 14: (98.0, 98.5)}
    body = []
    for day, (first, last) in day_prices.items():
        trade(ns(2024, 3, day, 9, 31), first)
        if day == 11:
            flush = len(events)
            body.append(flush)
            events.append(("chain", ns(2024, 3, 11, 10), chain_rows((2.0, 2.2), (0.8, 1.0))))
            events.append(("chain", ns(2024, 3, 11, 11), chain_rows((1.9, 2.1), (0.7, 0.9))))
        trade(ns(2024, 3, day, 15, 59), last)
        clock(ns(2024, 3, day, 16, 1))
    with EventLog.open(path) as lg:
        batch = []
        for ev in events:
            if isinstance(ev, tuple):
                _, t, rows = ev
                if batch:
                    lg.append(batch)
                    batch = []
                lg.append(codec.encode_option_chain(0, t, t, 100.0, 1, rows))
            else:
                batch.append(ev)
        lg.append(batch)


class SellOnce(Strategy):
    name = "sell_once"
    family = "options_income"
    instrument_kinds = frozenset({"equity", "index"})
    uses = frozenset({"chains"})

    def __init__(self, exits=None, **params):
        super().__init__(**params)
        self.exits = exits
        self.seen: list[int] = []

    def on_chain(self, ctx, chain):
        self.seen.append(chain.offset)
        if len(self.seen) == 1:
            legs = (SpreadLeg(EXPIRY, 100.0, "put", -1), SpreadLeg(EXPIRY, 95.0, "put", 1))
            return SpreadIntent("XYZ", legs, 1.0, self.exits, "test")
        return None


def run(tmp_path, kind, exits=None):
    build_log(tmp_path / "log", kind)
    cfg = BacktestConfig(strategy="sell_once", symbols=("XYZ",), timeframe="session", bar_source="trades",
                         execution=ExecutionSettings(commission_per_contract=0.65))
    with EventLog(tmp_path / "log", readonly=True) as lg:
        return run_backtest(lg, cfg, SellOnce(exits))


def test_cash_settled_index_spread(tmp_path):
    res = run(tmp_path, InstrumentKind.INDEX)
    fills = res.tables["fills"]
    opening = fills["source"] == "chain"
    assert fills["price"][opening].tolist() == [1.9, 0.9]  # chain B's bid (sold) and ask (bought), not chain A's
    assert fills["quantity"][opening].tolist() == [-1.0, 1.0]
    trades = res.tables["trades"]
    assert len(trades["symbol"]) == 1 and trades["exit_reason"][0] == "settlement"
    assert trades["entry_price"][0] == pytest.approx(1.0)
    assert trades["exit_price"][0] == pytest.approx(3.0)
    assert trades["pnl"][0] == pytest.approx(-201.30)
    assert res.final_equity == pytest.approx(100_000 - 201.30)
    settle = fills["source"] == "settlement"
    assert fills["price"][settle].tolist() == [3.0]  # the 100 put at intrinsic (close 97); the 95 put expired


def test_physically_settled_equity_spread_is_assigned_and_sold_back(tmp_path):
    res = run(tmp_path, InstrumentKind.EQUITY)
    fills = res.tables["fills"]
    assigned = fills["source"] == "assignment"
    assert fills["quantity"][assigned].tolist() == [100.0] and fills["price"][assigned].tolist() == [100.0]
    sold = (fills["source"] == "bar_open") & (fills["symbol"] == "XYZ")
    assert fills["quantity"][sold].tolist() == [-100.0] and fills["price"][sold].tolist() == [98.0]
    assert res.final_equity == pytest.approx(100_000 - 101.30)


def test_an_exit_needs_a_later_chain_else_the_spread_settles(tmp_path):
    # Chain B marks the spread at a cost to close of 2.1 - 0.7 = 1.4 > credit: with a stop of 1.3x credit the
    # spread is closed, but only at a chain after the one that filled it; there is none, so it settles.
    res = run(tmp_path, InstrumentKind.INDEX, SpreadExits(stop_multiple=1.3))
    assert res.tables["trades"]["exit_reason"].tolist() == ["settlement"]
    assert res.rejected == 0
