"""Pessimistic execution simulator for backtests (DESIGN.md §1.5, issue #8 item 2).

Three pieces, all pure Python and deterministic (no wall clock, no randomness, dicts iterated in
order-id order):

- `CostModel`: slippage (bps, then ticks; always adverse, never clipped to a bar's range), commissions
  (percentage of traded value at the slipped price, per share, per contract, minimum per order), fees
  per order and a `cost_multiplier` for sensitivity sweeps.
- `BarExecution`: fills from closed bars only (the next bar's open, stops, limits that trade through).
- `QuoteExecution`: fills from top-of-book quotes and trades with latency, displayed size, staleness.
- `fill_spread` / `settle_spread`: option spreads leg by leg at the natural price, all or none, and
  their settlement at expiry (cash at intrinsic value, or physical assignment/exercise).

The engines never write events; they return reports (`FillReport`, `CancelReport`, `RejectReport`)
that the backtest harness turns into Fill / OrderCanceled / OrderRejected events of the run log.

Commission minimum and fees, the rule of this module (one order may fill in several pieces):
the commission of a fill is ``max(c, min - charged)`` where ``c`` is the fill's own commission
(`CostModel.commission`) and ``charged`` what the order's earlier fills were charged as commission;
the order's first fill also pays ``fee_per_order``. So the first fill pays ``max(min, c) + fee`` and
later fills pay exactly their own commission (the order total is already >= the minimum). All three
terms are scaled by ``cost_multiplier``. `FillReport.commission` is the total charged on that fill
(commission and fee); `FillReport.fee` says how much of it is the fee.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields

import numpy as np

from argus.errors import ArgusError
from argus.events.types import OptionRight

ORDER_TYPES = ("market", "limit", "stop")
TIMES_IN_FORCE = ("gtc", "day", "ioc")
SETTLEMENT_STYLES = ("cash", "physical")


class ExecutionInputError(ArgusError, ValueError):
    """An execution setting or input broke a rule; the message names the field, the value and the rule."""

    def __init__(self, field_name: str, value: object, rule: str):
        self.field = field_name
        self.value = value
        self.rule = rule
        super().__init__(f"{field_name} = {value!r}: {rule}")


def _is_int(v: object) -> bool:
    """An integer (Python or NumPy), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _is_real(v: object) -> bool:
    """A real number (Python or NumPy), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _finite_nonneg(name: str, value: object) -> None:
    if not _is_real(value):
        raise ExecutionInputError(name, value, "must be a number")
    if not math.isfinite(value):
        raise ExecutionInputError(name, value, "must be finite")
    if value < 0:
        raise ExecutionInputError(name, value, "must be >= 0")


# --------------------------------------------------------------------------------------------- costs


@dataclass(frozen=True)
class CostModel:
    """Transaction costs. Every field is finite and >= 0; `tick_size` is > 0.

    `slipped_price(p, side)` = ``p * (1 + side * bps/1e4 * m) + side * ticks * tick_size * m`` with
    ``m = cost_multiplier``: bps first, then ticks, adverse to the trader (a buy pays more, a sell
    receives less), never clipped to a bar's range. `commission(p, q)` =
    ``m * |q| * (commission_rate * |p| * multiplier + per_share_or_per_contract)``, computed on the
    slipped price; the per-order minimum and `fee_per_order` are applied per order by `order_charge`
    (see the module docstring).
    """

    slippage_bps: float = 0.0
    slippage_ticks: float = 0.0
    tick_size: float = 0.01
    commission_rate: float = 0.0
    commission_per_share: float = 0.0
    commission_per_contract: float = 0.0
    commission_min: float = 0.0
    fee_per_order: float = 0.0
    cost_multiplier: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            _finite_nonneg(f.name, getattr(self, f.name))
        if self.tick_size <= 0:
            raise ExecutionInputError("tick_size", self.tick_size, "must be > 0")

    def slipped_price(self, price: float, side: int) -> float:
        """`price` moved against the trader by the slippage: +1 (buy) pays more, -1 (sell) less."""
        if side not in (1, -1):
            raise ExecutionInputError("side", side, "must be +1 (buy) or -1 (sell)")
        m = self.cost_multiplier
        p = price * (1.0 + side * self.slippage_bps * 1e-4 * m)
        return p + side * self.slippage_ticks * self.tick_size * m

    def commission(self, price: float, quantity: float, *, contracts: bool = False,
                   multiplier: float = 1.0) -> float:
        """Commission of one fill of `quantity` at `price` (before the order minimum and fee).

        `contracts` selects `commission_per_contract` instead of `commission_per_share`; `multiplier`
        (contract size) scales the traded value that `commission_rate` applies to."""
        per_unit = self.commission_per_contract if contracts else self.commission_per_share
        q = abs(quantity)
        return self.cost_multiplier * q * (self.commission_rate * abs(price) * multiplier + per_unit)

    def order_charge(self, raw: float, charged_before: float, first: bool) -> tuple[float, float]:
        """(commission, fee) charged on a fill whose own commission is `raw`, given what the order's
        earlier fills were charged as commission (`charged_before`, fees excluded) and whether this
        is the order's first fill: ``max(raw, min - charged_before)`` and the fee on the first fill."""
        m = self.cost_multiplier
        commission = max(raw, self.commission_min * m - charged_before)
        fee = self.fee_per_order * m if first else 0.0
        return commission, fee


# --------------------------------------------------------------------------------------------- orders


@dataclass
class Order:
    """One order. `quantity` is unsigned; `side` +1 buys, -1 sells. The engines update `filled`.

    `decision_offset` / `decision_ts` are the log offset and `ts_recv` of the event at which the
    strategy decided; nothing at or before that offset (or, with quotes, before `decision_ts` plus
    latency) can fill it. `session` (optional) pins the session of a "day" order in bars mode; when
    it is None the session of the first bar that may fill the order is used."""

    order_id: int
    instrument_id: int
    side: int
    quantity: float
    decision_offset: int
    decision_ts: int
    order_type: str = "market"
    limit_price: float = math.nan
    stop_price: float = math.nan
    time_in_force: str = "gtc"
    filled: float = 0.0
    session: int | None = None

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled


@dataclass(frozen=True)
class FillReport:
    """One fill. `quantity` is signed (+ bought, - sold); `price` includes slippage; `ref_price` is the
    unslipped price it came from (bar open, gapped stop, limit, touch); `slippage_cost` =
    ``|price - ref_price| * |quantity| * multiplier`` (money, >= 0); `commission` includes `fee`;
    `offset` / `ts` are the log offset and `ts_recv` of the bar, quote or trade it was priced from;
    `source` is one of "bar_open", "bar_stop", "bar_limit", "quote", "trade_through" (or "chain" for
    option legs); `remaining` is what is left of the order after this fill."""

    order_id: int
    instrument_id: int
    offset: int
    ts: int
    price: float
    quantity: float
    commission: float
    slippage_cost: float
    ref_price: float
    source: str
    fee: float = 0.0
    liquidity: str = "taker"
    remaining: float = 0.0


@dataclass(frozen=True)
class CancelReport:
    """An order (or its unfilled rest, `leftover`) canceled at log `offset` / `ts`, with the reason."""

    order_id: int
    offset: int
    ts: int
    reason: str
    leftover: float


@dataclass(frozen=True)
class RejectReport:
    """An order refused, with a reason naming the field, its value and the rule."""

    order_id: int
    offset: int
    ts: int
    reason: str


Report = FillReport | CancelReport | RejectReport


def _order_problem(order: Order, known: dict[int, Order]) -> str | None:
    """Why `order` cannot be accepted, or None."""
    if not _is_int(order.order_id):
        return f"order_id = {order.order_id!r}: must be an int"
    if order.order_id in known:
        return f"order_id = {order.order_id}: must be unique (already working)"
    if not _is_int(order.instrument_id) or order.instrument_id < 0:
        return f"instrument_id = {order.instrument_id!r}: must be an int >= 0"
    if not _is_real(order.side) or order.side not in (1, -1):
        return f"side = {order.side!r}: must be +1 (buy) or -1 (sell)"
    q = order.quantity
    if not _is_real(q) or not math.isfinite(q) or q <= 0:
        return f"quantity = {q!r}: must be finite and > 0"
    if order.filled != 0:
        return f"filled = {order.filled!r}: must be 0 at submission"
    for name in ("decision_offset", "decision_ts"):
        v = getattr(order, name)
        if not _is_int(v) or v < 0:
            return f"{name} = {v!r}: must be an int >= 0"
    if order.order_type not in ORDER_TYPES:
        return f"order_type = {order.order_type!r}: must be one of {', '.join(ORDER_TYPES)}"
    if order.time_in_force not in TIMES_IN_FORCE:
        return f"time_in_force = {order.time_in_force!r}: must be one of {', '.join(TIMES_IN_FORCE)}"
    if order.order_type in ("limit", "stop"):
        name = "limit_price" if order.order_type == "limit" else "stop_price"
        v = getattr(order, name)
        if not _is_real(v) or not math.isfinite(v) or v <= 0:
            return f"{name} = {v!r}: must be finite and > 0 for a {order.order_type} order"
    return None


class _Book:
    """Working orders, submission, cancellation and per-order commission bookkeeping."""

    def __init__(self, costs: CostModel, *, contracts: bool = False, multiplier: float = 1.0):
        if not isinstance(costs, CostModel):
            raise ExecutionInputError("costs", costs, "must be a CostModel")
        _finite_nonneg("multiplier", multiplier)
        if multiplier <= 0:
            raise ExecutionInputError("multiplier", multiplier, "must be > 0")
        self.costs = costs
        self.contracts = bool(contracts)
        self.multiplier = float(multiplier)
        self._orders: dict[int, Order] = {}
        self._charged: dict[int, float] = {}  # commission charged so far (fees excluded), per order

    def submit(self, order: Order) -> RejectReport | None:
        """Accept `order` (None) or refuse it (RejectReport at its decision offset/ts)."""
        problem = _order_problem(order, self._orders)
        if problem is not None:
            off = int(order.decision_offset) if _is_int(order.decision_offset) else -1
            ts = int(order.decision_ts) if _is_int(order.decision_ts) else -1
            return RejectReport(order.order_id, off, ts, problem)
        self._orders[order.order_id] = order
        self._accepted(order)
        return None

    def _accepted(self, order: Order) -> None:
        pass

    def cancel(self, order_id: int, offset: int, ts: int, reason: str = "canceled") -> CancelReport | None:
        """Cancel a working order: its CancelReport, or None when no such order is working."""
        order = self._orders.get(order_id)
        if order is None:
            return None
        return self._drop(order, offset, ts, reason)

    def working(self) -> list[Order]:
        """The working orders in order-id order."""
        return [self._orders[k] for k in sorted(self._orders)]

    def _drop(self, order: Order, offset: int, ts: int, reason: str) -> CancelReport:
        del self._orders[order.order_id]
        self._charged.pop(order.order_id, None)
        self._forget(order)
        return CancelReport(order.order_id, offset, ts, reason, order.remaining)

    def _forget(self, order: Order) -> None:
        pass

    def _fill(self, order: Order, quantity: float, price: float, ref: float, offset: int, ts: int,
              source: str, liquidity: str) -> FillReport:
        """Record a fill of `quantity` (unsigned, <= remaining) and return its report."""
        if quantity >= order.remaining:
            quantity = order.remaining
            order.filled = order.quantity  # exact, no float drift
        else:
            order.filled += quantity
        first = order.order_id not in self._charged
        before = self._charged.get(order.order_id, 0.0)
        raw = self.costs.commission(price, quantity, contracts=self.contracts, multiplier=self.multiplier)
        commission, fee = self.costs.order_charge(raw, before, first)
        self._charged[order.order_id] = before + commission
        report = FillReport(
            order_id=order.order_id, instrument_id=order.instrument_id, offset=offset, ts=ts, price=price,
            quantity=order.side * quantity, commission=commission + fee,
            slippage_cost=abs(price - ref) * quantity * self.multiplier, ref_price=ref, source=source,
            fee=fee, liquidity=liquidity, remaining=order.remaining,
        )
        if order.remaining <= 0:
            del self._orders[order.order_id]
            self._charged.pop(order.order_id, None)
            self._forget(order)
        return report


# --------------------------------------------------------------------------------------------- bars


class BarExecution(_Book):
    """Fills from closed bars only; call `on_bar` once per closed bar, in emission order.

    Rules (DESIGN.md §1.5):

    - Only a bar of the order's instrument whose log `offset` is > `order.decision_offset` may fill it,
      so an order decided on a bar's close never fills at that close.
    - market: the bar's open, slipped adversely (bps then ticks, not clipped to the bar's range);
      source "bar_open".
    - stop: a buy stop triggers when high >= stop, a sell stop when low <= stop; it fills at the worse
      of the stop and the open (the open when the bar gaps through the stop), then slipped; "bar_stop".
    - limit: fills only when the bar trades THROUGH the limit (buy: low < limit; sell: high > limit),
      at the limit, or at the open when the bar opens through it (buy: min(open, limit); sell:
      max(open, limit)). No slippage is added to a limit fill: the limit is the worst price the order
      accepts and a resting order is not charged the spread; "bar_limit", liquidity "maker".
    - Bars carry no size, so every fill is for the whole remaining quantity.
    - ioc: only the first bar that may fill it; if that bar does not, it is canceled after it.
    - day: lives for one session: `order.session` if set, else the session of the first bar that may
      fill it; a bar of another session (different `session` value) cancels it unfilled before it
      is tried. gtc stays until filled or canceled.
    - Commission is charged on the slipped fill price (`CostModel.commission`, order minimum and fee
      per the module docstring). Orders are tried in order-id order.
    - A bar with a non-finite or non-positive price, or with low > min(open, close) or high <
      max(open, close), is refused with ExecutionInputError (bars come from the bar reducer).
    """

    def __init__(self, costs: CostModel, *, contracts: bool = False, multiplier: float = 1.0):
        super().__init__(costs, contracts=contracts, multiplier=multiplier)
        self._session: dict[int, int] = {}  # pinned session of day orders

    def _accepted(self, order: Order) -> None:
        if order.time_in_force == "day" and order.session is not None:
            self._session[order.order_id] = order.session

    def _forget(self, order: Order) -> None:
        self._session.pop(order.order_id, None)

    def on_bar(self, instrument_id: int, offset: int, ts: int, open: float, high: float, low: float,
               close: float, session: int = 0) -> list[Report]:
        """Try every working order of `instrument_id` against this closed bar; the reports, in
        order-id order."""
        for name, v in (("open", open), ("high", high), ("low", low), ("close", close)):
            if not (_is_real(v) and math.isfinite(v) and v > 0):
                raise ExecutionInputError(name, v, "bar price must be finite and > 0")
        if low > min(open, close) or high < max(open, close):
            raise ExecutionInputError(
                "low/high", (low, high), f"must bound open {open!r} and close {close!r} (low <= open, "
                "close <= high)")
        reports: list[Report] = []
        for order in self.working():
            if order.instrument_id != instrument_id or offset <= order.decision_offset:
                continue
            if order.time_in_force == "day":
                pinned = self._session.setdefault(order.order_id, session)
                if session != pinned:
                    reports.append(self._drop(order, offset, ts,
                                              f"day order expired: session {pinned} ended (bar of "
                                              f"session {session})"))
                    continue
            fill = self._try(order, offset, ts, open, high, low)
            if fill is not None:
                reports.append(fill)
            elif order.time_in_force == "ioc":
                reports.append(self._drop(order, offset, ts, "ioc: not filled by the next bar"))
        return reports

    def _try(self, order: Order, offset: int, ts: int, open: float, high: float,
             low: float) -> FillReport | None:
        side = order.side
        if order.order_type == "market":
            price = self.costs.slipped_price(open, side)
            return self._fill(order, order.remaining, price, open, offset, ts, "bar_open", "taker")
        if order.order_type == "stop":
            stop = order.stop_price
            if side == 1 and high >= stop:
                ref = max(stop, open)
            elif side == -1 and low <= stop:
                ref = min(stop, open)
            else:
                return None
            price = self.costs.slipped_price(ref, side)
            return self._fill(order, order.remaining, price, ref, offset, ts, "bar_stop", "taker")
        limit = order.limit_price
        if side == 1 and low < limit:
            ref = min(open, limit)
        elif side == -1 and high > limit:
            ref = max(open, limit)
        else:
            return None
        return self._fill(order, order.remaining, ref, ref, offset, ts, "bar_limit", "maker")


# --------------------------------------------------------------------------------------------- quotes


class QuoteExecution(_Book):
    """Fills from top-of-book quotes and trades, with latency, displayed size and staleness.

    Rules (DESIGN.md §1.5):

    - Eligibility: an order sees only quotes/trades with ``ts_recv >= decision_ts + latency_ns`` and
      log ``offset > decision_offset``.
    - Usable quote: bid and ask finite and > 0, ask >= bid, sizes finite and >= 0, and (with
      `stale_after_ns`) ``ts_recv - ts_event <= stale_after_ns``. An unusable quote fills nothing and
      triggers nothing.
    - market: a buy takes the ASK, a sell the BID, slipped adversely (`CostModel.slipped_price`);
      never the mid, never better than the touch. Size <= the displayed size on that side (ask_size
      for buys, bid_size for sells), shared by all orders filled on the same quote in order-id order;
      the rest keeps working on later quotes (gtc/day). Each quote is taken as a fresh snapshot of the
      book (what an earlier fill took is not subtracted from a later quote).
    - limit (buy at L; sells symmetric): on its arrival quote (the first usable eligible quote) it is
      a taker if ask <= L: it fills at min(slipped ask, L) (slippage capped by the limit, so never
      better than the ask) for size <= ask_size. What is left then RESTS and fills only when a TRADE
      prints strictly below L (sell: strictly above), at L, for size <= that trade's size (shared
      by the resting orders in order-id order), liquidity "maker", source "trade_through". A resting
      limit is not filled by later quotes, and trades before its arrival quote do not fill it.
    - stop: triggers on the touch of a usable eligible quote (buy stop: ask >= stop; sell stop: bid <=
      stop) and from then on is a market order (it fills on the triggering quote as above).
    - ioc: gets exactly one chance, the first eligible quote (usable or not); whatever is left after
      it is canceled with CancelReport.leftover. Trades never fill ioc orders.
    - day: quotes carry no session, so a day order works like gtc until the harness calls
      `expire_day_orders` at the session's end.
    """

    def __init__(self, costs: CostModel, latency_ns: float = 0, stale_after_ns: float | None = None, *,
                 contracts: bool = False, multiplier: float = 1.0):
        super().__init__(costs, contracts=contracts, multiplier=multiplier)
        _finite_nonneg("latency_ns", latency_ns)
        if stale_after_ns is not None:
            _finite_nonneg("stale_after_ns", stale_after_ns)
        self.latency_ns = math.ceil(latency_ns)  # whole ns, rounded against the trader
        self.stale_after_ns = stale_after_ns
        self._resting: set[int] = set()    # limit orders past their arrival quote
        self._triggered: set[int] = set()  # stop orders that became market orders

    def _forget(self, order: Order) -> None:
        self._resting.discard(order.order_id)
        self._triggered.discard(order.order_id)

    def _eligible(self, order: Order, instrument_id: int, offset: int, ts_recv: int) -> bool:
        return (order.instrument_id == instrument_id and offset > order.decision_offset
                and ts_recv >= order.decision_ts + self.latency_ns)

    def usable(self, ts_recv: int, ts_event: int, bid: float, ask: float, bid_size: float,
               ask_size: float) -> bool:
        """Whether a quote may fill or trigger anything (see the class docstring)."""
        for v in (bid, ask, bid_size, ask_size):
            if not (_is_real(v) and math.isfinite(v)):
                return False
        if bid <= 0 or ask <= 0 or ask < bid or bid_size < 0 or ask_size < 0:
            return False
        return self.stale_after_ns is None or ts_recv - ts_event <= self.stale_after_ns

    def on_quote(self, instrument_id: int, offset: int, ts_recv: int, ts_event: int, bid: float,
                 ask: float, bid_size: float, ask_size: float) -> list[Report]:
        """Try every eligible working order of `instrument_id` against this quote; reports in
        order-id order."""
        good = self.usable(ts_recv, ts_event, bid, ask, bid_size, ask_size)
        avail = {1: float(ask_size), -1: float(bid_size)} if good else {1: 0.0, -1: 0.0}
        reports: list[Report] = []
        for order in self.working():
            if not self._eligible(order, instrument_id, offset, ts_recv):
                continue
            oid = order.order_id
            if good:
                fill = self._take(order, offset, ts_recv, bid, ask, avail)
                if fill is not None:
                    reports.append(fill)
            if order.time_in_force == "ioc" and oid in self._orders:
                why = "ioc: quote unusable" if not good else "ioc: not filled (in full) by the first quote"
                reports.append(self._drop(order, offset, ts_recv, why))
        return reports

    def _take(self, order: Order, offset: int, ts: int, bid: float, ask: float,
              avail: dict[int, float]) -> FillReport | None:
        side = order.side
        oid = order.order_id
        touch = ask if side == 1 else bid
        if order.order_type == "limit":
            if oid in self._resting:
                return None
            self._resting.add(oid)  # from now on only trades through fill it
            limit = order.limit_price
            if (side == 1 and ask > limit) or (side == -1 and bid < limit):
                return None
            slipped = self.costs.slipped_price(touch, side)
            price = min(slipped, limit) if side == 1 else max(slipped, limit)
        else:
            if order.order_type == "stop" and oid not in self._triggered:
                stop = order.stop_price
                if (side == 1 and ask >= stop) or (side == -1 and bid <= stop):
                    self._triggered.add(oid)
                else:
                    return None
            price = self.costs.slipped_price(touch, side)
        size = min(order.remaining, avail[side])
        if size <= 0:
            return None
        avail[side] -= size
        return self._fill(order, size, price, touch, offset, ts, "quote", "taker")

    def on_trade(self, instrument_id: int, offset: int, ts_recv: int, price: float,
                 size: float) -> list[Report]:
        """Fill resting limit orders that this trade printed through (see the class docstring). A trade
        with a non-finite or non-positive price or size fills nothing."""
        if not all(_is_real(v) and math.isfinite(v) and v > 0 for v in (price, size)):
            return []
        left = float(size)
        reports: list[Report] = []
        for order in self.working():
            if left <= 0:
                break
            if order.order_id not in self._resting or order.time_in_force == "ioc":
                continue
            if not self._eligible(order, instrument_id, offset, ts_recv):
                continue
            limit = order.limit_price
            if (order.side == 1 and price < limit) or (order.side == -1 and price > limit):
                q = min(order.remaining, left)
                left -= q
                reports.append(self._fill(order, q, limit, limit, offset, ts_recv, "trade_through", "maker"))
        return reports

    def expire_day_orders(self, offset: int, ts: int, instrument_id: int | None = None) -> list[CancelReport]:
        """Cancel every working "day" order (of `instrument_id`, or all) at the end of its session."""
        return [self._drop(o, offset, ts, "day order expired: session ended") for o in self.working()
                if o.time_in_force == "day" and (instrument_id is None or o.instrument_id == instrument_id)]


# --------------------------------------------------------------------------------------------- options


def _num(row: np.void, name: str) -> float:
    return float(row[name])


def _right_name(right: int) -> str:
    try:
        return OptionRight(int(right)).name.lower()
    except ValueError:
        return str(int(right))


def fill_spread(legs, *, chain_offset: int, chain_ts_recv: int, now_ts: int, max_age_ns: int,
                costs: CostModel, quantity: float, order_id: int = 0,
                multiplier: float = 100.0) -> list[FillReport] | RejectReport:
    """Fill an option spread leg by leg at the natural price, all or none.

    `legs` is a sequence of ``(row, side)`` with `row` a record of `OPTION_ROW_DTYPE` (an element of
    the chain snapshot's rows) and side +1 (buy) / -1 (sell); `quantity` is contracts per leg.

    Rejected (RejectReport at `chain_offset` / `now_ts`, nothing filled) when: the chain is stale
    (``now_ts - chain_ts_recv > max_age_ns``) or from the future (``chain_ts_recv > now_ts``); a leg has
    expired (``expiry_ns <= now_ts``), a non-finite or non-positive bid or ask, ask < bid, a missing
    greek (NaN iv or delta), a right that is neither call nor put, or a displayed size on its side
    (ask_size for a buy, bid_size for a sell) below `quantity`.

    Otherwise one FillReport per leg, in the legs' order: a buy leg at the ASK, a sell leg at the BID,
    each slipped adversely by `costs` (with the default zero slippage that is exactly the natural
    price), source "chain", offset/ts of the chain. Commission per contract (plus `commission_rate` on
    price × multiplier); the whole spread is one order for the minimum and fee: the first leg pays
    ``max(min, c) + fee``, later legs their own commission. `instrument_id` is the row's contract_id.

    Raises ExecutionInputError for a bad argument (quantity, side, max_age_ns, no legs).
    """
    if not isinstance(costs, CostModel):
        raise ExecutionInputError("costs", costs, "must be a CostModel")
    if not _is_real(quantity) or not math.isfinite(quantity) or quantity <= 0:
        raise ExecutionInputError("quantity", quantity, "must be finite and > 0")
    _finite_nonneg("max_age_ns", max_age_ns)
    _finite_nonneg("multiplier", multiplier)
    legs = list(legs)
    if not legs:
        raise ExecutionInputError("legs", legs, "must hold at least one (row, side)")
    for i, (_row, side) in enumerate(legs):
        if not _is_real(side) or side not in (1, -1):
            raise ExecutionInputError(f"legs[{i}].side", side, "must be +1 (buy) or -1 (sell)")

    def reject(reason: str) -> RejectReport:
        return RejectReport(order_id, chain_offset, now_ts, reason)

    age = now_ts - chain_ts_recv
    if age < 0:
        return reject(f"chain_ts_recv = {chain_ts_recv}: later than now_ts = {now_ts} (no lookahead)")
    if age > max_age_ns:
        return reject(f"chain age = {age} ns: must be <= max_age_ns = {max_age_ns} (stale chain)")
    for i, (row, side) in enumerate(legs):
        where = f"legs[{i}] (strike {_num(row, 'strike')!r} {_right_name(row['right'])})"
        if int(row["expiry_ns"]) <= now_ts:
            return reject(f"{where}.expiry_ns = {int(row['expiry_ns'])}: must be > now_ts = {now_ts}")
        if int(row["right"]) not in (OptionRight.CALL, OptionRight.PUT):
            return reject(f"{where}.right = {int(row['right'])}: must be call (1) or put (2)")
        bid, ask = _num(row, "bid"), _num(row, "ask")
        for name, v in (("bid", bid), ("ask", ask)):
            if not math.isfinite(v) or v <= 0:
                return reject(f"{where}.{name} = {v!r}: must be finite and > 0")
        if ask < bid:
            return reject(f"{where}.ask = {ask!r}: must be >= bid = {bid!r} (crossed quote)")
        for name in ("iv", "delta"):
            v = _num(row, name)
            if not math.isfinite(v):
                return reject(f"{where}.{name} = {v!r}: must be finite (missing greeks)")
        size_name = "ask_size" if side == 1 else "bid_size"
        size = _num(row, size_name)
        if not (math.isfinite(size) and size >= quantity):
            return reject(f"{where}.{size_name} = {size!r}: must be >= quantity = {quantity!r} "
                          "(displayed size)")
    fills: list[FillReport] = []
    charged = 0.0
    for i, (row, side) in enumerate(legs):
        ref = _num(row, "ask") if side == 1 else _num(row, "bid")
        price = costs.slipped_price(ref, side)
        raw = costs.commission(price, quantity, contracts=True, multiplier=multiplier)
        commission, fee = costs.order_charge(raw, charged, i == 0)
        charged += commission
        fills.append(FillReport(
            order_id=order_id, instrument_id=int(row["contract_id"]), offset=chain_offset, ts=chain_ts_recv,
            price=price, quantity=side * quantity, commission=commission + fee,
            slippage_cost=abs(price - ref) * quantity * multiplier, ref_price=ref, source="chain", fee=fee,
            liquidity="taker", remaining=0.0,
        ))
    return fills


@dataclass(frozen=True)
class LegSettlement:
    """One leg at expiry: `intrinsic` per unit of underlying; `cash` (signed, + received) and `shares`
    (signed underlying units, + bought) that this leg moves; `exercised` when it was in the money."""

    strike: float
    right: str
    side: int
    intrinsic: float
    exercised: bool
    cash: float
    shares: float


@dataclass(frozen=True)
class SpreadSettlement:
    """A spread at expiry. "cash": `cash` is the intrinsic value paid (+) or owed (-), `shares` 0.
    "physical": `cash` is the strike money of exercises/assignments, `shares` the net underlying change;
    `value` = cash + shares × underlying_close (equal to the cash style's `cash` for the same legs)."""

    style: str
    underlying_close: float
    cash: float
    shares: float
    value: float
    legs: tuple[LegSettlement, ...] = field(default_factory=tuple)


def settle_spread(legs, quantity: float, underlying_close: float, multiplier: float = 100.0,
                  style: str = "cash") -> SpreadSettlement:
    """Settle `quantity` spreads (legs as in `fill_spread`: (row, side), side +1 long, -1 short) at expiry.

    Intrinsic value per unit: call max(S - K, 0), put max(K - S, 0) with S = `underlying_close` (the
    official close). "cash" (index options): each leg pays ``side × quantity × intrinsic ×
    multiplier`` (a long leg receives, a short leg pays). "physical" (equity options): only legs
    strictly in the money are exercised/assigned (at the money expires worthless), each moving
    ``side × (+1 call, -1 put) × quantity × multiplier`` shares at the strike (a short put assigned
    buys 100 shares per contract at K; a long call exercised buys at K; a short call assigned or a long
    put exercised sells at K), and the opposite cash ``-shares × K``.
    """
    if style not in SETTLEMENT_STYLES:
        raise ExecutionInputError("style", style, f"must be one of {', '.join(SETTLEMENT_STYLES)}")
    if not _is_real(quantity) or not math.isfinite(quantity) or quantity <= 0:
        raise ExecutionInputError("quantity", quantity, "must be finite and > 0")
    s = underlying_close
    if not _is_real(s) or not math.isfinite(s) or s <= 0:
        raise ExecutionInputError("underlying_close", s, "must be finite and > 0")
    _finite_nonneg("multiplier", multiplier)
    out: list[LegSettlement] = []
    for i, (row, side) in enumerate(legs):
        if not _is_real(side) or side not in (1, -1):
            raise ExecutionInputError(f"legs[{i}].side", side, "must be +1 (long) or -1 (short)")
        k = _num(row, "strike")
        right = int(row["right"])
        if right == OptionRight.CALL:
            intrinsic, direction = max(s - k, 0.0), 1
        elif right == OptionRight.PUT:
            intrinsic, direction = max(k - s, 0.0), -1
        else:
            raise ExecutionInputError(f"legs[{i}].right", right, "must be call (1) or put (2)")
        units = quantity * multiplier
        itm = intrinsic > 0
        if style == "cash":
            cash, shares = side * units * intrinsic, 0.0
        elif itm:
            shares = side * direction * units
            cash = -shares * k
        else:
            cash, shares = 0.0, 0.0
        out.append(LegSettlement(k, _right_name(right), side, intrinsic, itm, cash, shares))
    cash = math.fsum(leg.cash for leg in out)
    shares = math.fsum(leg.shares for leg in out)
    return SpreadSettlement(style, float(s), cash, shares, cash + shares * s, tuple(out))
