"""Option spreads in a backtest: orders filled leg by leg at the natural price, marks, exits, settlement.

Rules (DESIGN.md §1.5, issue #8 item 2):
- A spread order decided at offset d fills on the next OptionChainSnapshot of its underlying at an
  offset > d (argus.replay.execution.fill_spread): every leg at once or none (sell at the bid, buy at
  the ask), refused on a stale chain, a missing leg, an unquoted leg, missing greeks or too little
  displayed size. A refused opening order is dropped (the strategy may ask again); a refused closing
  order stays and is tried again on each later chain, until it fills or the spread settles.
- Every chain marks the open spreads: `close_cost` is the natural price of closing (buy back the short
  legs at the ask, sell the long legs at the bid), used by the exits; the equity curve uses the mid.
- Exits, per spread: profit target (close when close_cost <= credit x (1 - target%)), stop (close_cost
  >= credit x stop multiple), a time exit N days before expiry; they become closing orders that fill on
  the next chain.
- Settlement at expiry against the underlying's official close, the close of its first bar ending at or
  after the expiry instant: index options are cash-settled at intrinsic value; equity options are
  exercised/assigned (in-the-money legs only), which moves shares of the underlying at the strikes; the
  harness then sells or buys those shares back at the next bar (reason "assignment").
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from argus.events.osi import osi_symbol
from argus.events.types import OptionRight
from argus.options.pop import Chain
from argus.replay.execution import FillReport, RejectReport, fill_spread, settle_spread
from argus.strategies.base import SpreadIntent

__all__ = ["OptionsBook", "SpreadPosition", "osi_symbol"]

MULTIPLIER = 100.0
_DAY_NS = 86_400 * 10**9


@dataclass
class SpreadPosition:
    position_id: int
    symbol: str
    legs: list[tuple[int, float, int, int]]  # (expiry_ns, strike, right, side)
    quantity: float
    credit: float  # per share, net received at entry (negative for a debit)
    entry_ts: int
    entry_offset: int
    exits: Any
    expiry_ns: int
    commission: float = 0.0
    close_cost: float = math.nan
    mid_value: float = 0.0
    closing: int | None = None  # order id of the pending closing order


@dataclass
class _SpreadOrder:
    order_id: int
    symbol: str
    legs: list[tuple[int, float, int, int]]
    quantity: float
    decision_offset: int
    position_id: int | None  # set for closing orders
    intent: SpreadIntent | None
    reason: str


@dataclass
class OptionsBook:
    """Spread orders and positions of one run; `run` is the harness (events, cash, instruments)."""

    run: Any
    max_age_ns: int
    style_of: dict[str, str]  # underlying symbol -> "cash" | "physical"
    orders: list[_SpreadOrder] = field(default_factory=list)
    positions: dict[int, SpreadPosition] = field(default_factory=dict)
    next_position: int = 1
    trips: list[dict[str, Any]] = field(default_factory=list)

    def submit(self, intent: SpreadIntent, quantity: float, index: int) -> None:
        legs = [(int(lg.expiry_ns), float(lg.strike), int(OptionRight[lg.right.upper()]), int(lg.side))
                for lg in intent.legs]
        oid = self.run.spread_order_events(intent.symbol, legs, quantity, intent.reason or "spread", index)
        self.orders.append(_SpreadOrder(oid, intent.symbol, legs, quantity, self.run.ctx.offset, None, intent,
                                        intent.reason or "spread"))
        self.count_open()

    def close(self, pos: SpreadPosition, reason: str) -> None:
        if pos.closing is not None:
            return
        legs = [(e, k, r, -s) for e, k, r, s in pos.legs]
        oid = self.run.spread_order_events(pos.symbol, legs, pos.quantity, reason, 0, exit_=True)
        pos.closing = oid
        self.orders.append(_SpreadOrder(oid, pos.symbol, legs, pos.quantity, self.run.ctx.offset, pos.position_id,
                                        None, reason))

    def on_chain(self, chain: Chain) -> None:
        lookup = {(int(r["expiry_ns"]), float(r["strike"]), int(r["right"])): r for r in chain.rows}
        waiting = []
        for order in self.orders:
            if order.symbol != chain.symbol or order.decision_offset >= chain.offset:
                waiting.append(order)
                continue
            rows = [lookup.get((e, k, r)) for e, k, r, _ in order.legs]
            if any(row is None for row in rows):
                result = RejectReport(order.order_id, chain.offset, chain.ts_recv, "a leg is not in the chain")
            else:
                result = fill_spread([(row, s) for row, (_, _, _, s) in zip(rows, order.legs, strict=True)],
                                     chain_offset=chain.offset, chain_ts_recv=chain.ts_recv,
                                     now_ts=self.run.ctx.now, max_age_ns=self.max_age_ns,
                                     costs=self.run.costs, quantity=order.quantity, order_id=order.order_id,
                                     multiplier=MULTIPLIER)
            if isinstance(result, RejectReport):
                self.run.spread_rejected(order.order_id, order.symbol, result.reason)
                if order.position_id is not None:  # exits keep trying
                    waiting.append(order)
                continue
            self._filled(order, result, chain)
        self.orders = waiting
        self._mark(chain, lookup)
        self.count_open()

    def count_open(self) -> None:
        """Publish the open spreads (and opening orders) per underlying to the strategy context."""
        counts: dict[str, int] = {}
        for p in self.positions.values():
            counts[p.symbol] = counts.get(p.symbol, 0) + 1
        for o in self.orders:
            if o.position_id is None:
                counts[o.symbol] = counts.get(o.symbol, 0) + 1
        self.run.ctx._open_spreads = counts

    def _filled(self, order: _SpreadOrder, fills: list[FillReport], chain: Chain) -> None:
        net = math.fsum(-f.quantity * f.price for f in fills) / order.quantity  # per share: + received
        commission = math.fsum(f.commission for f in fills)
        pid = order.position_id if order.position_id is not None else self.next_position
        for f, (e, k, r, _) in zip(fills, order.legs, strict=True):
            self.run.option_fill(order.symbol, e, k, r, f, pid)
        if order.position_id is None:
            self.next_position += 1
            self.positions[pid] = SpreadPosition(pid, order.symbol, order.legs, order.quantity, net, chain.ts_recv,
                                                 chain.offset, order.intent.exits if order.intent else None,
                                                 max(e for e, _, _, _ in order.legs), commission)
        else:
            pos = self.positions.pop(pid)
            self._trip(pos, -net, chain.ts_recv, chain.offset, order.reason, commission)

    def _mark(self, chain: Chain, lookup: dict) -> None:
        for pos in self.positions.values():
            if pos.symbol != chain.symbol:
                continue
            cost = mid = 0.0
            ok = True
            for e, k, r, s in pos.legs:
                row = lookup.get((e, k, r))
                if row is None or not (row["bid"] >= 0 and row["ask"] > 0):
                    ok = False
                    break
                cost += float(row["ask"]) if s < 0 else -float(row["bid"])
                mid += -s * (float(row["bid"]) + float(row["ask"])) / 2
            if not ok:
                continue
            pos.close_cost, pos.mid_value = cost, -mid * pos.quantity * MULTIPLIER
            ex = pos.exits
            if ex is None or pos.closing is not None:
                continue
            if ex.profit_target_pct is not None and pos.credit > 0 and cost <= pos.credit * (1 - ex.profit_target_pct / 100):
                self.close(pos, "profit_target")
            elif ex.stop_multiple is not None and pos.credit > 0 and cost >= pos.credit * ex.stop_multiple:
                self.close(pos, "stop")
            elif ex.days_before_expiry is not None and pos.expiry_ns - self.run.ctx.now <= ex.days_before_expiry * _DAY_NS:
                self.close(pos, "days_before_expiry")

    def settle(self, symbol: str, close: float, ts: int, offset: int) -> float:
        """Settle the spreads of `symbol` expired by `ts` at `close`; returns the shares delivered."""
        shares = 0.0
        for pid in sorted(self.positions):
            pos = self.positions[pid]
            if pos.symbol != symbol or pos.expiry_ns > ts:
                continue
            style = self.style_of.get(symbol, "physical")
            rows = [_leg_row(e, k, r) for e, k, r, _ in pos.legs]
            st = settle_spread([(row, s) for row, (_, _, _, s) in zip(rows, pos.legs, strict=True)], pos.quantity,
                               close, MULTIPLIER, style)
            self.run.settled(pos, st)
            shares += st.shares
            value_per_share = st.value / (pos.quantity * MULTIPLIER)
            del self.positions[pid]
            self.orders = [o for o in self.orders if o.position_id != pid]
            self._trip(pos, -value_per_share, ts, offset, "settlement", 0.0)
        self.count_open()
        return shares

    def _trip(self, pos: SpreadPosition, exit_cost: float, ts: int, offset: int, reason: str, commission: float):
        e = pos.expiry_ns
        name = " ".join(f"{'+' if s > 0 else '-'}{'C' if r == OptionRight.CALL else 'P'}{k:g}"
                        for _, k, r, s in pos.legs)
        label = f"{pos.symbol} {dt.datetime.fromtimestamp(e / 1e9, tz=dt.UTC):%Y-%m-%d} {name}"
        total_comm = pos.commission + commission
        self.trips.append({"symbol": label, "side": -1 if pos.credit > 0 else 1, "qty": pos.quantity,
                           "entry_ts": pos.entry_ts, "entry_price": pos.credit, "exit_ts": ts, "exit_price": exit_cost,
                           "pnl": (pos.credit - exit_cost) * pos.quantity * MULTIPLIER - total_comm,
                           "commission": total_comm, "slippage_cost": 0.0, "mae": math.nan, "mfe": math.nan,
                           "exit_reason": reason, "entry_offset": pos.entry_offset, "exit_offset": offset})

    def exposure(self) -> float:
        """Gross exposure of the open spreads: their maximum loss, width x contracts x multiplier."""
        return math.fsum((max(k for _, k, _, _ in p.legs) - min(k for _, k, _, _ in p.legs)) * p.quantity * MULTIPLIER
                         for p in self.positions.values())

    def value(self) -> float:
        """The open spreads at their last mid marks (negative for credit spreads: a liability)."""
        return math.fsum(p.mid_value for p in self.positions.values())


def _leg_row(expiry_ns: int, strike: float, right: int) -> np.void:
    from argus.events.layout import OPTION_ROW_DTYPE

    row = np.zeros(1, dtype=OPTION_ROW_DTYPE)[0]
    row["expiry_ns"], row["strike"], row["right"] = expiry_ns, strike, right
    return row
