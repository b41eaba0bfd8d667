"""The backtest harness: replays the market log through a strategy and the pessimistic simulator, and
writes the run as an event log of its own (DESIGN.md §7).

One pass: the projection engine (argus.projections.engine.ProjectionEngine.stream) runs the reducers
over the market log chunk by chunk; the rows each chunk emitted (closed bars, regimes) are merged with
the chunk's quotes and trades in log-offset order and fed, one at a time, first to the execution
simulator (orders decided earlier fill against them) and then to the strategy (which may decide new
orders). "Now" is the ts_recv of the record being processed; a decision at offset d can only fill
against a record at an offset > d (argus.replay.execution), so a strategy never trades at the price
it decided on.

The run log (`<data>/runs/<run_id>/log`) begins with a ConfigRecorded event holding the canonical
configuration and the identity of the market range read (per chunk: range and XXH3 checksum); then the
traded instruments, then every Signal, OrderSubmitted, OrderAccepted/Rejected/Canceled and Fill in the
order they happened, stamped with the market's ts_recv. Its chain head is the run's digest: the same
configuration on the same market log gives the same run id and the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from argus.events import codec
from argus.events.codec import Event
from argus.events.types import EventType, InstrumentKind, OptionRight
from argus.kernels.market_regime import MARKET_REGIME_NAMES
from argus.kernels.regimes import TREND_REGIME_NAMES, VOL_REGIME_NAMES
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.options.pop import Chain
from argus.projections.config import load_config
from argus.projections.engine import ProjectionEngine
from argus.projections.sessions import SESSION_NAMES
from argus.replay import sizing_rules
from argus.replay.context import BarView, QuoteView, StrategyContext, _Series
from argus.replay.execution import BarExecution, CancelReport, FillReport, Order, QuoteExecution, RejectReport
from argus.replay.metrics import compute_metrics, round_trips
from argus.replay.options_book import MULTIPLIER, OptionsBook, osi_symbol
from argus.replay.settings import BacktestConfig, run_id_of
from argus.strategies.base import OrderIntent, SpreadIntent, Strategy, Target, signal_id

__all__ = ["BacktestResult", "run_backtest"]

_KIND_NAMES = {k: k.name.lower() for k in InstrumentKind}
_SIDE = {1: 1, -1: 2}  # OrderSide
_TYPE = {"market": 1, "limit": 2, "stop": 3}  # OrderType
_TIF = {"day": 1, "gtc": 2, "ioc": 3}  # TimeInForce
_NEW_YORK = ZoneInfo("America/New_York")


def _ny_day(ts: int) -> dt.date:
    """The New York calendar date of an instant: the day the trades-per-day cap counts in."""
    return dt.datetime.fromtimestamp(ts / 1e9, tz=_NEW_YORK).date()


@dataclass
class BacktestResult:
    run_id: str
    config_hash: str
    run_dir: str | None
    events: int
    bars: int
    seconds: float
    trades: int
    final_equity: float
    total_commission: float
    metrics: dict[str, float | None]
    digest: str
    orders: int = 0
    rejected: int = 0
    fills: int = 0
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def bars_per_s(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "config_hash": self.config_hash, "run_dir": self.run_dir,
                "events": self.events, "bars": self.bars, "seconds": self.seconds, "bars_per_s": self.bars_per_s,
                "trades": self.trades, "orders": self.orders, "rejected": self.rejected, "fills": self.fills,
                "final_equity": self.final_equity, "total_commission": self.total_commission,
                "metrics": self.metrics, "digest": self.digest}


@dataclass(frozen=True)
class _Instrument:
    market_id: int
    run_id: int
    symbol: str
    kind: str
    multiplier: float


def market_scan(log: EventLog, from_offset: int, to_offset: int) -> tuple[dict[str, Any], dict[str, dict], set[int]]:
    """The identity of [from_offset, to_offset) (BLAKE2b over each chunk's range and checksum), the
    instruments defined before to_offset (symbol -> kind, multiplier, id), and the ids with Bar events."""
    h = hashlib.blake2b(digest_size=32)
    instruments: dict[str, dict] = {}
    with_bars: set[int] = set()
    with log.reader() as reader:
        for chunk in reader.chunks(0, to_offset):
            _, positions = codec.positions_of_type(chunk.body, chunk.first_offset, EventType.INSTRUMENT_DEFINED,
                                                   chunk.start, chunk.stop)
            for pos in positions.tolist():
                view = memoryview(chunk.body).cast("B")
                ev = codec.decode(view[pos:pos + int.from_bytes(view[pos:pos + 4], "little")])
                d = ev.data
                instruments[d["symbol"]] = {"id": int(d["instrument_id"]), "kind": int(d.get("kind", 0)),
                                            "multiplier": float(d.get("multiplier", 0.0) or 1.0)}
            if chunk.stop <= from_offset:
                continue
            h.update(f"{max(chunk.start, from_offset)}:{chunk.stop}:".encode() + chunk.header.body_checksum)
            _, positions = codec.positions_of_type(chunk.body, chunk.first_offset, EventType.BAR, chunk.start,
                                                   chunk.stop)
            if len(positions):  # the instrument ids only (header bytes 8..12), not whole records
                raw = np.frombuffer(memoryview(chunk.body).cast("B"), dtype=np.uint8)
                ids = raw[positions[:, None] + np.arange(8, 12)].copy().view("<u4").reshape(-1)
                with_bars.update(np.unique(ids).tolist())
    return {"from_offset": from_offset, "to_offset": to_offset, "ranges": h.hexdigest()}, instruments, with_bars


def _bar_spec(cfg: BacktestConfig, source: str) -> dict[str, Any]:
    if cfg.timeframe == "session" or (cfg.timeframe == "1d" and source == "trades"):
        return {"kind": "session", "source": source}
    return {"kind": "time", "interval": cfg.timeframe, "source": source}


def projection_config(cfg: BacktestConfig, strategy: Strategy, source: str):
    spec = _bar_spec(cfg, source)
    uses = strategy.uses
    raw: dict[str, Any] = {"bars": [spec], "indicators": [], "positions": False, "sessions": "sessions" in uses,
                           "regimes": {} if "regimes" in uses or "market_regime" in uses else False,
                           "bocpd": {} if "market_regime" in uses else False, "outcomes": False, "hmm": False,
                           "risk_flow": False, "market_regime": False}
    if "market_regime" in uses:
        label = load_config({"bars": [spec]}).bars[0].label
        raw["risk_flow"] = {"spec": label}
        raw["market_regime"] = {"index": strategy.p.get("regime_index", cfg.symbols[0]), "spec": label}
    return load_config(raw)


class _Run:
    """The state of one backtest while it runs."""

    def __init__(self, cfg: BacktestConfig, strategy: Strategy, instruments: list[_Instrument], config_hash: str):
        self.cfg = cfg
        self.strategy = strategy
        self.config_hash = config_hash
        self.by_market = {i.market_id: i for i in instruments}
        self.by_symbol = {i.symbol: i for i in instruments}
        ex = cfg.execution
        costs = ex.costs()
        if ex.fill == "quote":
            stale = None if ex.stale_quote_ms is None else int(ex.stale_quote_ms * 1e6)
            self.execution = QuoteExecution(costs, latency_ns=int(ex.latency_ms * 1e6), stale_after_ns=stale)
        else:
            self.execution = BarExecution(costs)
        self.bars_fill = ex.fill == "next_open"
        self.costs = costs
        self.options = OptionsBook(self, int(ex.max_chain_age_ms * 1e6),
                                   {i.symbol: "cash" if i.kind == "index" else "physical" for i in instruments})
        self.contracts: dict[tuple[str, int, float, int], int] = {}  # run-log ids of traded option contracts
        self.next_instrument = len(instruments)
        self.ctx = StrategyContext(symbols=tuple(i.symbol for i in instruments), cash=cfg.cash)
        self.events: list[Event] = []
        self.next_order = 1
        self.next_fill = 1
        self.orders: dict[int, tuple] = {}  # order id -> (order, role: entry | exit, exits, reason)
        self.pending: dict[str, float] = dict.fromkeys(self.by_symbol, 0.0)  # working signed qty
        self.exit_orders: dict[str, list[int]] = {s: [] for s in self.by_symbol}
        self.exits: dict[str, Any] = {}  # symbol -> (Exits, bars held) of the open position
        self.trades_per_day: dict[tuple[str, dt.date], int] = {}
        self.fills: list[dict[str, Any]] = []
        self.option_fills: list[dict[str, Any]] = []
        self.equity_rows: list[tuple[int, float, float, float]] = []
        self.highs = {s: _Series() for s in self.by_symbol}
        self.lows = {s: _Series() for s in self.by_symbol}
        self.bar_offsets = {s: _Series() for s in self.by_symbol}
        self.vols = {s: _Series() for s in self.by_symbol}
        self.total_commission = 0.0
        self.total_slippage = 0.0
        self.n_orders = self.n_rejected = 0
        self.n_bars = 0
        self.n_signals = 0
        self.bar_start = 0
        self.session_close: dict[int, int] = {}

    # -- events ----------------------------------------------------------------------------------

    def _emit(self, etype: EventType, inst: _Instrument | None, data: dict[str, Any]) -> None:
        now = self.ctx.now
        iid = inst.run_id if inst is not None else 0xFFFFFFFF
        self.events.append(Event(type=etype, ts_event=now, ts_recv=now, instrument_id=iid, data=data))

    # -- orders ----------------------------------------------------------------------------------

    def intents(self, out: Any) -> None:
        if out is None:
            return
        for index, intent in enumerate(out if isinstance(out, list | tuple) else (out,)):
            self._intent(intent, index)

    def _intent(self, intent: Target | OrderIntent | SpreadIntent, index: int) -> None:
        sym = intent.symbol
        if sym not in self.by_symbol:
            raise ValueError(f"intent symbol = {sym!r}: not one of the backtest's symbols {list(self.by_symbol)}")
        ctx = self.ctx
        if isinstance(intent, SpreadIntent):
            self._spread_intent(intent, index)
            return
        price = ctx.last_price.get(sym, math.nan)
        if isinstance(intent, Target):
            self._cancel_working_market(sym)  # a new target replaces what earlier targets still have working
            desired = sizing_rules.quantity(self.cfg, intent.units, price, ctx.equity, self.vols[sym].view(),
                                            self.by_symbol[sym].multiplier)
            delta = desired - ctx.positions[sym] - self.pending[sym]
            if abs(delta) < 1e-12:
                return
            entering = abs(desired) > abs(ctx.positions[sym] + self.pending[sym]) or desired * ctx.positions[sym] < 0
            if entering and self.strategy.filters is not None and not self.strategy.filters.allows(ctx, sym):
                return
            self._submit(sym, delta, "market", math.nan, math.nan, "gtc", intent.reason or "target", intent.exits,
                         "exit" if desired == 0 else "entry", index, intent.units)
        else:
            qty = sizing_rules.quantity(self.cfg, intent.units, price, ctx.equity, self.vols[sym].view(),
                                        self.by_symbol[sym].multiplier)
            if abs(qty) < 1e-12:
                return
            if self.strategy.filters is not None and not self.strategy.filters.allows(ctx, sym):
                return
            self._submit(sym, qty, intent.order_type, intent.limit_price, intent.stop_price, intent.time_in_force,
                         intent.reason or intent.order_type, intent.exits, "entry", index, intent.units)

    def _cancel_working_market(self, sym: str) -> None:
        if abs(self.pending[sym]) < 1e-12:
            return
        iid = self.by_symbol[sym].market_id
        for order in self.execution.working():
            if order.instrument_id == iid and order.order_type == "market":
                rep = self.execution.cancel(order.order_id, self.ctx.offset, self.ctx.now, "replaced by a new target")
                if rep is not None:
                    self.reports([rep])

    def _submit(self, sym: str, qty: float, otype: str, limit: float, stop: float, tif: str, reason: str,
                exits, role: str, index: int, units: float) -> int:
        inst = self.by_symbol[sym]
        ctx = self.ctx
        sid = signal_id(self.strategy.strategy_id(), self.config_hash, ctx.offset, index + 1000 * (role == "exit"))
        if role != "exit_child":
            self.n_signals += 1
            self._emit(EventType.SIGNAL, inst, {"signal_id": sid, "strategy_id": self.strategy.strategy_id(),
                                                 "config_hash": self.config_hash, "target_quantity": float(units),
                                                 "reason": reason})
        oid = self.next_order
        self.next_order += 1
        side = 1 if qty > 0 else -1
        order = Order(order_id=oid, instrument_id=inst.market_id, side=side, quantity=abs(qty),
                      decision_offset=ctx.offset, decision_ts=ctx.now, order_type=otype, limit_price=limit,
                      stop_price=stop, time_in_force=tif)
        self.n_orders += 1
        self._emit(EventType.ORDER_SUBMITTED, inst, {
            "order_id": oid, "signal_id": sid, "side": _SIDE[side], "order_type": _TYPE.get(otype, 0),
            "quantity": abs(qty), "limit_price": 0.0 if math.isnan(limit) else limit,
            "stop_price": 0.0 if math.isnan(stop) else stop, "time_in_force": _TIF.get(tif, 0)})
        why = self._refusal(sym, qty, role)
        rejected = RejectReport(oid, ctx.offset, ctx.now, why) if why else self.execution.submit(order)
        if rejected is not None:
            self.n_rejected += 1
            self._emit(EventType.ORDER_REJECTED, inst, {"order_id": oid, "reason": rejected.reason})
            return oid
        self._emit(EventType.ORDER_ACCEPTED, inst, {"order_id": oid, "venue_order_id": f"sim-{oid}"})
        day = _ny_day(ctx.now)
        self.trades_per_day[(sym, day)] = self.trades_per_day.get((sym, day), 0) + 1
        self.orders[oid] = (order, role if role != "exit_child" else "exit", exits, reason)
        if otype == "market":
            self.pending[sym] += qty
        return oid

    def _refusal(self, sym: str, qty: float, role: str) -> str | None:
        """Why the harness refuses an order before it reaches the simulator, or None."""
        if role != "entry":
            return None
        day = _ny_day(self.ctx.now)
        cap = self.strategy.max_trades_per_day
        if self.trades_per_day.get((sym, day), 0) >= cap * 2:  # an entry and its exit per trade
            return f"max_trades_per_day: {cap:g} trades per day for {sym} reached"
        price = self.ctx.last_price.get(sym, math.nan)
        if not math.isfinite(price):
            return f"no price: {sym} has no closed bar yet"
        ctx = self.ctx
        gross_after = sum(abs(q + (qty if s == sym else 0.0) + self.pending[s]) * ctx.last_price.get(s, 0.0)
                          * self.by_symbol[s].multiplier for s, q in ctx.positions.items())
        limit = max(ctx.equity, 0.0) * self.cfg.leverage
        if gross_after > limit * (1 + 1e-9) and gross_after > sum(
                abs(q + self.pending[s]) * ctx.last_price.get(s, 0.0) * self.by_symbol[s].multiplier
                for s, q in ctx.positions.items()):
            return f"buying power: gross exposure {gross_after:.2f} would exceed equity x leverage {limit:.2f}"
        return None

    # -- option spreads (argus.replay.options_book) ------------------------------------------------

    def _spread_intent(self, intent: SpreadIntent, index: int) -> None:
        if self.strategy.filters is not None and not self.strategy.filters.allows(self.ctx, intent.symbol):
            return
        if self.cfg.sizing == "fixed":
            qty = float(intent.units) * self.cfg.qty
        else:  # a risk budget of the per-play cap (7% of equity) over the spread's max loss
            from argus.sizing import option_contracts

            chain = self.ctx.chain(intent.symbol)
            width, credit = _spread_width_credit(intent, chain)
            qty = float(option_contracts(0.07 * max(self.ctx.equity, 0.0), width, credit)) if credit > 0 else 0.0
        if qty > 0:
            self.options.submit(intent, qty, index)

    def spread_order_events(self, symbol: str, legs: list, quantity: float, reason: str, index: int,
                            exit_: bool = False) -> int:
        inst = self.by_symbol[symbol]
        ctx = self.ctx
        sid = signal_id(self.strategy.strategy_id(), self.config_hash, ctx.offset, index + 1000 * exit_)
        if not exit_:
            self.n_signals += 1
            self._emit(EventType.SIGNAL, inst, {"signal_id": sid, "strategy_id": self.strategy.strategy_id(),
                                                 "config_hash": self.config_hash, "target_quantity": quantity,
                                                 "reason": reason})
        oid = self.next_order
        self.next_order += 1
        self.n_orders += 1
        side = 1 if math.fsum(-s for *_, s in legs) < 0 else -1  # a credit (net selling) spread is a sell
        self._emit(EventType.ORDER_SUBMITTED, inst, {"order_id": oid, "signal_id": sid, "side": _SIDE[side],
                                                      "order_type": _TYPE["market"], "quantity": quantity,
                                                      "time_in_force": _TIF["day"], "position_id": oid})
        self._emit(EventType.ORDER_ACCEPTED, inst, {"order_id": oid, "venue_order_id": f"sim-{oid}"})
        self.orders[oid] = (None, "exit" if exit_ else "entry", None, reason)
        return oid

    def spread_rejected(self, oid: int, symbol: str, reason: str) -> None:
        self.n_rejected += 1
        self._emit(EventType.ORDER_REJECTED, self.by_symbol[symbol], {"order_id": oid, "reason": reason})

    def _contract(self, symbol: str, expiry_ns: int, strike: float, right: int) -> tuple[_Instrument, str]:
        key = (symbol, expiry_ns, strike, right)
        osi = osi_symbol(symbol, expiry_ns, right, strike)
        if key not in self.contracts:
            iid = self.next_instrument
            self.next_instrument += 1
            self.contracts[key] = iid
            self.events.append(instrument_event(iid, osi, kind=InstrumentKind.OPTION, ts=max(self.ctx.now, 1),
                                                multiplier=MULTIPLIER, underlying_id=self.by_symbol[symbol].run_id,
                                                expiry_ns=expiry_ns, strike=strike, right=right))
        return _Instrument(-1, self.contracts[key], osi, "option", MULTIPLIER), osi

    def option_fill(self, symbol: str, expiry_ns: int, strike: float, right: int, rep: FillReport,
                    position_id: int) -> None:
        inst, osi = self._contract(symbol, expiry_ns, strike, right)
        self.ctx.cash -= rep.quantity * rep.price * MULTIPLIER + rep.commission
        self.total_commission += rep.commission
        self._option_fill_event(inst, osi, rep.order_id, rep.quantity, rep.price, rep.commission, position_id,
                                rep.offset, rep.ts, rep.ref_price, "chain", self.orders[rep.order_id][3])

    def _option_fill_event(self, inst: _Instrument, name: str, order_id: int, qty: float, price: float,
                           commission: float, position_id: int, offset: int, ts: int, ref: float, source: str,
                           reason: str) -> None:
        fid = self.next_fill
        self.next_fill += 1
        self._emit(EventType.FILL, inst, {"price": price, "quantity": qty, "commission": commission,
                                          "order_id": order_id, "fill_id": fid, "position_id": position_id,
                                          "account_id": 0, "liquidity": 2})
        self.option_fills.append({"fill_id": fid, "order_id": order_id, "symbol": name, "ts": ts, "offset": offset,
                                  "price": price, "quantity": qty, "commission": commission, "slippage_cost": 0.0,
                                  "ref_price": ref, "source": source, "reason": reason})

    def settled(self, pos, st) -> None:
        """Book a spread's settlement: each leg closes at its intrinsic value (cash) or, for exercised
        equity legs, moves shares at the strike; assigned shares are traded back at the next bar."""
        ctx = self.ctx
        for leg, (e, k, r, s) in zip(st.legs, pos.legs, strict=True):
            inst, osi = self._contract(pos.symbol, e, k, r)
            if st.style == "cash" and leg.intrinsic > 0:
                self._option_fill_event(inst, osi, 0, -s * pos.quantity, leg.intrinsic, 0.0, pos.position_id,
                                        ctx.offset, ctx.now, leg.intrinsic, "settlement", "settlement")
            else:  # worthless, or delivered as shares below: the log's fills need a price > 0
                how = "exercised/assigned" if leg.exercised else "expired worthless"
                self._emit(EventType.ANNOTATION, inst, {"text": f"{osi} {how} at {st.underlying_close:g}",
                                                        "tags": ["expiry", f"position:{pos.position_id}"]})
            if st.style == "cash":
                ctx.cash += leg.cash
            elif leg.shares:
                under = self.by_symbol[pos.symbol]
                self._fill(FillReport(order_id=0, instrument_id=under.market_id, offset=ctx.offset, ts=ctx.now,
                                      price=k, quantity=leg.shares, commission=0.0, slippage_cost=0.0, ref_price=k,
                                      source="assignment"))
        shares = ctx.positions[pos.symbol]
        if st.style == "physical" and st.shares and shares and abs(self.pending[pos.symbol]) < 1e-12:
            self._submit(pos.symbol, -shares, "market", math.nan, math.nan, "gtc", "assignment", None, "exit", 0, 0.0)

    def chain(self, rec: memoryview, offset: int, ts: int) -> None:
        ctx = self.ctx
        ctx.now, ctx.offset = ts, offset
        ev = codec.decode(rec)
        inst = self.by_market[ev.instrument_id]
        # ref_ts_recv = now: the chain is as fresh as the record that brought it
        chain = Chain(inst.symbol, offset, ev.ts_event, ev.ts_recv, float(ev.data["underlying_price"]),
                      ev.data["rows"], ts)
        ctx._chains[inst.symbol] = chain
        self.options.on_chain(chain)
        ctx._options_value = self.options.value()
        self.intents(self.strategy.on_chain(ctx, chain))

    # -- reports ---------------------------------------------------------------------------------

    def reports(self, reps: list) -> None:
        for rep in reps:
            if isinstance(rep, FillReport):
                self._fill(rep)
            elif isinstance(rep, CancelReport):
                order = self.orders[rep.order_id][0]
                inst = self.by_market[order.instrument_id]
                if order.order_type == "market":
                    self.pending[inst.symbol] -= order.side * rep.leftover
                self._emit(EventType.ORDER_CANCELED, inst, {"order_id": rep.order_id, "reason": rep.reason,
                                                            "leftover_quantity": float(rep.leftover)})

    def _fill(self, rep: FillReport) -> None:
        order, role, exits, reason = self.orders.get(rep.order_id, (None, "exit", None, rep.source))
        inst = self.by_market[rep.instrument_id]
        sym = inst.symbol
        ctx = self.ctx
        prev = ctx.positions[sym]
        q = rep.quantity
        ctx.positions[sym] = prev + q
        if abs(ctx.positions[sym]) < 1e-9 * max(1.0, abs(prev)):
            ctx.positions[sym] = 0.0
        if order is not None and order.order_type == "market":
            self.pending[sym] -= q
        ctx.cash -= q * rep.price * inst.multiplier + rep.commission
        self.total_commission += rep.commission
        self.total_slippage += rep.slippage_cost
        fid = self.next_fill
        self.next_fill += 1
        self._emit(EventType.FILL, inst, {"price": rep.price, "quantity": q, "commission": rep.commission,
                                          "order_id": rep.order_id, "fill_id": fid, "position_id": 0,
                                          "account_id": 0, "liquidity": 2})
        market_ts = self.bar_start if rep.source.startswith("bar") else rep.ts
        self.fills.append({"fill_id": fid, "order_id": rep.order_id, "symbol": sym, "ts": market_ts,
                           "offset": rep.offset, "price": rep.price, "quantity": q, "commission": rep.commission,
                           "slippage_cost": rep.slippage_cost, "ref_price": rep.ref_price, "source": rep.source,
                           "reason": reason})
        now_pos = ctx.positions[sym]
        if now_pos == 0.0 or prev * now_pos < 0:
            self._cancel_exits(sym, "position closed")
            self.exits.pop(sym, None)
        if now_pos != 0.0 and role == "entry" and exits is not None and abs(now_pos) > abs(prev):
            self._arm_exits(sym, exits, rep.price, now_pos)
        self.intents(self.strategy.on_fill(ctx, rep))

    def _arm_exits(self, sym: str, exits, entry: float, pos: float) -> None:
        self._cancel_exits(sym, "replaced")
        side = -1.0 if pos > 0 else 1.0
        ids = []
        if exits.stop_loss_pct is not None:
            stop = entry * (1 - exits.stop_loss_pct / 100 * (1 if pos > 0 else -1))
            ids.append(self._submit(sym, side * abs(pos), "stop", math.nan, stop, "gtc", "stop_loss", None,
                                    "exit_child", 0, 0.0))
        if exits.take_profit_pct is not None:
            limit = entry * (1 + exits.take_profit_pct / 100 * (1 if pos > 0 else -1))
            ids.append(self._submit(sym, side * abs(pos), "limit", limit, math.nan, "gtc", "take_profit", None,
                                    "exit_child", 0, 0.0))
        self.exit_orders[sym] = ids
        self.exits[sym] = [exits, 0]

    def _cancel_exits(self, sym: str, reason: str) -> None:
        for oid in self.exit_orders.get(sym, []):
            rep = self.execution.cancel(oid, self.ctx.offset, self.ctx.now, reason)
            if rep is not None:
                self.reports([rep])
        self.exit_orders[sym] = []

    # -- market records --------------------------------------------------------------------------

    def bar(self, row, ts: int) -> None:
        inst = self.by_market[int(row["instrument_id"])]
        ctx = self.ctx
        ctx.now, ctx.offset = ts, int(row["offset"])
        sym = inst.symbol
        self.bar_start = int(row["ts_start"])  # a bar fill happens at its open: the market time of the fill
        if self.bars_fill:
            self.reports(self.execution.on_bar(inst.market_id, ctx.offset, ts, float(row["open"]),
                                               float(row["high"]), float(row["low"]), float(row["close"]),
                                               int(row["session"])))
        prev_close = ctx.last_price.get(sym)
        view = BarView(sym, inst.market_id, ctx.offset, int(row["ts_start"]), int(row["ts_end"]), int(row["session"]),
                       float(row["open"]), float(row["high"]), float(row["low"]), float(row["close"]),
                       float(row["volume"]))
        ctx._bar_closed(view)
        self.highs[sym].append(view.high)
        self.lows[sym].append(view.low)
        self.bar_offsets[sym].append(ctx.offset)
        if prev_close:
            self.vols[sym].append(math.log(view.close / prev_close) if view.close > 0 and prev_close > 0 else 0.0)
        self.n_bars += 1
        if self.options.positions:
            self.options.settle(sym, view.close, view.ts_end, ctx.offset)
            ctx._options_value = self.options.value()
        last_of_session = view.ts_end >= self.session_close.get(view.session, 1 << 62)
        self._time_exits(sym, last_of_session)
        self.intents(self.strategy.on_bar(ctx, view))
        gross = sum(abs(q) * ctx.last_price.get(s, 0.0) * self.by_symbol[s].multiplier
                    for s, q in ctx.positions.items() if q) + (self.options.exposure() if self.options.positions else 0.0)
        self.equity_rows.append((int(row["ts_end"]), ctx.equity, ctx.cash, gross))

    def quote(self, rec, offset: int, ts: int) -> None:
        ctx = self.ctx
        ctx.now, ctx.offset = ts, offset
        inst = self.by_market[int(rec["instrument_id"])]
        self.reports(self.execution.on_quote(inst.market_id, offset, ts, int(rec["ts_event"]), float(rec["bid"]),
                                             float(rec["ask"]), float(rec["bid_size"]), float(rec["ask_size"])))
        if "quotes" in self.strategy.uses:
            self.intents(self.strategy.on_quote(ctx, QuoteView(inst.symbol, offset, int(rec["ts_event"]), ts,
                                                               float(rec["bid"]), float(rec["ask"]),
                                                               float(rec["bid_size"]), float(rec["ask_size"]))))

    def trade(self, rec, offset: int, ts: int) -> None:
        ctx = self.ctx
        ctx.now, ctx.offset = ts, offset
        self.reports(self.execution.on_trade(int(rec["instrument_id"]), offset, ts, float(rec["price"]),
                                             float(rec["size"])))

    def context_row(self, kind: str, row, ts: int) -> None:
        ctx = self.ctx
        ctx.now, ctx.offset = ts, int(row["offset"])
        if kind == "sessions":
            before, after = SESSION_NAMES[int(row["from_label"])], SESSION_NAMES[int(row["to_label"])]
            ctx._session_label = after
            if isinstance(self.execution, QuoteExecution):
                self.reports(self.execution.expire_day_orders(ctx.offset, ts))
            self.intents(self.strategy.on_session(ctx, before, after))
        elif kind == "risk_flow":
            ctx._risk_flow = float(row["value"])
        elif kind == "market_regime":
            ctx._market_regime = MARKET_REGIME_NAMES[int(row["regime"])]
        elif kind == "regimes":
            sym = self.by_market[int(row["instrument_id"])].symbol
            ctx._regime[sym] = {"vol": VOL_REGIME_NAMES[int(row["vol_regime"])],
                                "trend": TREND_REGIME_NAMES[int(row["trend_regime"])], "rv": float(row["rv"]),
                                "rv_percentile": float(row["rv_percentile"]), "adx": float(row["adx"])}
            self.intents(self.strategy.on_regime(ctx, sym, ctx._regime[sym]))

    def _time_exits(self, sym: str, last_of_session: bool) -> None:
        held = self.exits.get(sym)
        pos = self.ctx.positions[sym]
        if held is None or pos == 0.0:
            return
        held[1] += 1
        exits = held[0]
        if (exits.max_bars is not None and held[1] >= exits.max_bars) or (exits.session_end and last_of_session):
            if abs(self.pending[sym]) < 1e-12:
                self._cancel_exits(sym, "time exit")
                self._submit(sym, -pos, "market", math.nan, math.nan, "gtc",
                             "max_bars" if not last_of_session else "session_end", None, "exit", 0, 0.0)
            self.exits.pop(sym, None)


def _spread_width_credit(intent: SpreadIntent, chain) -> tuple[float, float]:
    """Width (strike distance of the legs) and natural credit per share of a two-leg spread on `chain`."""
    if chain is None:
        return 0.0, 0.0
    strikes = [lg.strike for lg in intent.legs]
    credit = 0.0
    for lg in intent.legs:
        m = chain.rows[(chain.rows["expiry_ns"] == lg.expiry_ns) & (chain.rows["strike"] == lg.strike)
                       & (chain.rows["right"] == int(OptionRight[lg.right.upper()]))]
        if not len(m):
            return 0.0, 0.0
        credit += float(m[0]["bid"]) if lg.side < 0 else -float(m[0]["ask"])
    return max(strikes) - min(strikes), credit


def _ts_recv_at(chunk, offsets: np.ndarray) -> np.ndarray:
    """The ts_recv of the records at `offsets` (all inside `chunk`)."""
    view = memoryview(chunk.body).cast("B")
    from argus.kernels import codec as _kcodec

    index = np.asarray(_kcodec.index_records(view))
    raw = np.frombuffer(view, dtype=np.uint8)
    pos = index[offsets - chunk.first_offset]
    return raw[pos[:, None] + np.arange(24, 32)].copy().view("<i8").reshape(-1)


def _prepare(log: EventLog, cfg: BacktestConfig, strategy: Strategy, scan: tuple | None = None):
    """The run's window end, instruments (in market-id order), bar source, canonical configuration, run
    id and config hash (shared with argus.replay.fast)."""
    head = log.head()
    to_offset = head if cfg.to_offset is None else min(cfg.to_offset, head)
    identity, defined, with_bars = scan if scan is not None else market_scan(log, cfg.from_offset, to_offset)
    missing = [s for s in cfg.symbols if s not in defined]
    if missing:
        raise ValueError(f"symbols: {missing[0]!r} is not defined in the market log before offset {to_offset}")
    instruments = []
    for k, sym in enumerate(sorted(cfg.symbols, key=lambda s: defined[s]["id"])):
        d = defined[sym]
        kind = _KIND_NAMES.get(d["kind"], "unspecified")
        if kind not in strategy.instrument_kinds and "any" not in strategy.instrument_kinds:
            raise ValueError(f"symbols: {sym} is a {kind} instrument; strategy {strategy.name} trades "
                             f"{', '.join(sorted(strategy.instrument_kinds))} only")
        instruments.append(_Instrument(d["id"], k, sym, kind, d["multiplier"]))
    source = cfg.bar_source
    if source == "auto":
        source = "provider" if any(i.market_id in with_bars for i in instruments) else "trades"
    canonical = cfg.canonical({**identity, "bar_source": source})
    run_id = run_id_of(canonical)
    strategy_doc = json.dumps({"strategy": cfg.strategy, "params": strategy.p, "execution": cfg.as_dict()["execution"],
                               "timeframe": cfg.timeframe, "sizing": cfg.sizing, "qty": cfg.qty},
                              sort_keys=True, separators=(",", ":"))
    config_hash = hashlib.blake2b(strategy_doc.encode(), digest_size=16).hexdigest()
    return to_offset, instruments, source, canonical, run_id, config_hash


def run_backtest(log: EventLog, cfg: BacktestConfig, strategy: Strategy, *, runs_dir: Path | None = None,
                 progress: Callable[[int], None] | None = None, mode: str = "chunk",
                 fast: bool = True) -> BacktestResult:
    """Run `strategy` over the market log per `cfg`; write the run log under `runs_dir/<run_id>/` when
    given (an existing run with the same id must have the same digest, else RuntimeError). `mode`
    "event" feeds the reducers one record at a time (the live path); the result is the same. With
    `fast` (the default), a run that argus.replay.fast can simulate in its kernels goes there: the
    same result, digest included."""
    if fast:
        from argus.replay import fast as fast_path

        if fast_path.eligible(cfg, strategy):
            result = fast_path.run_fast(log, cfg, strategy, runs_dir=runs_dir, progress=progress, mode=mode)
            if result is not None:
                return result
    t0 = time.perf_counter()
    prepared = _prepare(log, cfg, strategy)
    run = GeneralRun(log, cfg, strategy, prepared)
    engine = ProjectionEngine(log, projection_config(cfg, strategy, prepared[2]))
    n_events = 0
    for chunk, rows in engine.stream(cfg.from_offset, prepared[0], mode=mode):
        n_events += chunk.stop - chunk.start
        run.feed(chunk, rows)
        if progress is not None:
            progress(chunk.stop - chunk.start)
    return run.finish(n_events, runs_dir, t0)


_SESSION_CLOSES: dict[tuple, dict[int, int]] = {}


def _session_closes(config) -> dict[int, int]:
    """Session open -> close of a projection configuration's session table (shared, read-only)."""
    key = (config.calendar, config.extended_hours)
    if key not in _SESSION_CLOSES:
        table = config.sessions()
        _SESSION_CLOSES[key] = dict(zip(table[:, 0].tolist(), table[:, 1].tolist(), strict=True))
    return _SESSION_CLOSES[key]


class GeneralRun:
    """One general-path run fed chunk by chunk (so that several can share one replay pass)."""

    def __init__(self, log: EventLog, cfg: BacktestConfig, strategy: Strategy, prepared: tuple):
        to_offset, instruments, source, canonical, run_id, config_hash = prepared
        self.log, self.cfg, self.instruments = log, cfg, instruments
        self.canonical, self.run_id, self.config_hash = canonical, run_id, config_hash
        run = self.run = _Run(cfg, strategy, instruments, config_hash)
        run.ctx.now = 1  # the log's timestamps must be > 0; the configuration precedes all market time
        run._emit(EventType.CONFIG_RECORDED, None, {"name": "backtest", "config_hash": run_id,
                                                     "config_json": canonical})
        self.ids = np.array([i.market_id for i in instruments], dtype=np.uint32)
        strategy.on_start(run.ctx)
        run.session_close = _session_closes(projection_config(cfg, strategy, source))

    def feed(self, chunk, rows: dict[str, np.ndarray]) -> bool:
        _feed(self.run, self.cfg, chunk, rows, self.ids)
        return True

    def finish(self, n_events: int, runs_dir: Path | None, t0: float) -> BacktestResult:
        return _finish(self.log, self.run, self.cfg, self.run_id, self.config_hash, self.canonical, n_events,
                       runs_dir, t0, self.instruments)


_CONTEXT_OUTPUTS = ("sessions", "risk_flow", "market_regime", "regimes")


def _feed(run: _Run, cfg: BacktestConfig, chunk, rows: dict[str, np.ndarray], ids: np.ndarray) -> None:
    """Hand one chunk's emitted rows (and, in quote mode, its quotes and trades) to the run in offset
    order. At one offset, context rows (sessions, risk flow, regimes) come first, then market records,
    then bars: a bar's strategy callback sees the regime its own close produced."""
    items: list[tuple[np.ndarray, int, str, np.ndarray]] = []  # (offsets, phase, kind, rows)
    for phase, name in enumerate(_CONTEXT_OUTPUTS):
        arr = rows.get(name)
        if arr is not None and len(arr):
            if "instrument_id" in arr.dtype.names and name == "regimes":
                arr = arr[(arr["spec"] == 0) & np.isin(arr["instrument_id"], ids)]
            items.append((arr["offset"].astype(np.int64), phase, name, arr))
    if cfg.execution.fill == "quote":
        for phase, etype, name in ((4, EventType.QUOTE, "quote"), (5, EventType.TRADE, "trade")):
            offs, recs = codec.fixed_records(chunk.body, chunk.first_offset, etype, chunk.start, chunk.stop)
            keep = np.isin(recs["instrument_id"], ids)
            if keep.any():
                items.append((offs[keep].astype(np.int64), phase, name, recs[keep]))
    if "chains" in run.strategy.uses:
        offs, positions = codec.positions_of_type(chunk.body, chunk.first_offset, EventType.OPTION_CHAIN_SNAPSHOT,
                                                  chunk.start, chunk.stop)
        if len(offs):
            view = memoryview(chunk.body).cast("B")
            heads = np.frombuffer(view, dtype=np.uint8)[positions[:, None] + np.arange(8, 12)].copy().view("<u4")
            keep = np.isin(heads.reshape(-1), ids)
            if keep.any():
                recs = [bytes(view[p:p + int.from_bytes(view[p:p + 4], "little")]) for p in positions[keep].tolist()]
                items.append((offs[keep].astype(np.int64), 6, "chain", recs))
    bars = rows.get("bars")
    if bars is not None and len(bars):
        bars = bars[(bars["spec"] == 0) & np.isin(bars["instrument_id"], ids)]
        if cfg.from_ts is not None:
            bars = bars[bars["ts_end"] > cfg.from_ts]
        if cfg.to_ts is not None:
            bars = bars[bars["ts_end"] <= cfg.to_ts]
        if len(bars):
            items.append((bars["offset"].astype(np.int64), 9, "bar", bars))
    if not items:
        return
    if len(items) == 1 and items[0][2] == "bar":  # the common case: bars only, already in offset order
        offs, _, _, arr = items[0]
        ts = _ts_recv_at(chunk, offs)
        for j in range(len(arr)):
            run.bar(arr[j], int(ts[j]))
        return
    offsets = np.concatenate([it[0] for it in items])
    phases = np.concatenate([np.full(len(it[0]), it[1]) for it in items])
    which = np.concatenate([np.full(len(it[0]), k) for k, it in enumerate(items)])
    index = np.concatenate([np.arange(len(it[0])) for it in items])
    order = np.lexsort((index, phases, offsets))
    ts = _ts_recv_at(chunk, offsets[order])
    for n, o in enumerate(order.tolist()):
        _, _, kind, arr = items[which[o]]
        row = arr[index[o]]
        now = int(ts[n])
        if kind == "bar":
            run.bar(row, now)
        elif kind == "quote":
            run.quote(row, int(offsets[o]), now)
        elif kind == "trade":
            run.trade(row, int(offsets[o]), now)
        elif kind == "chain":
            run.chain(row, int(offsets[o]), now)
        else:
            run.context_row(kind, row, now)


def _finish(log: EventLog, run: _Run, cfg: BacktestConfig, run_id: str, config_hash: str, canonical: str,
            n_events: int, runs_dir: Path | None, t0: float, instruments: list[_Instrument]) -> BacktestResult:
    ctx = run.ctx
    equity = np.array(run.equity_rows, dtype=[("ts", "<i8"), ("equity", "<f8"), ("cash", "<f8"),
                                               ("gross_exposure", "<f8")])
    trades = round_trips(run.fills, {s: (run.bar_offsets[s].view(), run.highs[s].view(), run.lows[s].view())
                                     for s in run.by_symbol},
                         {s: run.by_symbol[s].multiplier for s in run.by_symbol}, ctx.last_price)
    for pos in list(run.options.positions.values()):  # still open: marked at the last mid
        run.options._trip(pos, -pos.mid_value / (pos.quantity * MULTIPLIER), -1, -1, "open", 0.0)
    if run.options.trips:
        trades = {k: np.concatenate([np.asarray(v, dtype=object if v.dtype.kind in "OU" else v.dtype),
                                     np.array([t[k] for t in run.options.trips],
                                              dtype=object if v.dtype.kind in "OU" else None)])
                  for k, v in trades.items()}
    all_fills = sorted(run.fills + run.option_fills, key=lambda f: f["fill_id"])
    multipliers = {s: run.by_symbol[s].multiplier for s in run.by_symbol}
    multipliers.update({f["symbol"]: MULTIPLIER for f in run.option_fills})
    metrics = compute_metrics(equity, trades, cfg.cash, all_fills, multipliers)
    defs = [instrument_event(i.run_id, i.symbol, kind=InstrumentKind[i.kind.upper()], multiplier=i.multiplier)
            for i in instruments]
    events = [run.events[0], *defs, *run.events[1:]]
    digest, run_dir = _write_run_log(events, runs_dir, run_id)
    seconds = time.perf_counter() - t0
    result = BacktestResult(
        run_id=run_id, config_hash=config_hash, run_dir=None if run_dir is None else str(run_dir), events=n_events,
        bars=run.n_bars, seconds=seconds, trades=len(trades["symbol"]), final_equity=ctx.equity,
        total_commission=run.total_commission, metrics=metrics, digest=digest, orders=run.n_orders,
        rejected=run.n_rejected, fills=len(all_fills),
        tables={"trades": trades, "fills": _columns(all_fills), "equity": {k: equity[k] for k in equity.dtype.names}})
    if run_dir is not None:
        (run_dir / "summary.json").write_text(json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n")
    return result


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    if not rows:
        return {k: np.empty(0) for k in ("fill_id", "order_id", "symbol", "ts", "offset", "price", "quantity",
                                         "commission", "slippage_cost", "ref_price", "source", "reason")}
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


NO_RUN_LOG = Path("/dev/null/no-run-log")  # runs_dir for runs that skip the run log (research sweeps)


def _write_run_log(events: list[Event], runs_dir: Path | None, run_id: str) -> tuple[str, Path | None]:
    """Append the run's events to a fresh log; the digest is its chain head. Without `runs_dir` the
    log is built in memory only long enough to hash it (same bytes either way); with NO_RUN_LOG there
    is no log and no digest."""
    if runs_dir == NO_RUN_LOG:
        return "", None
    import tempfile

    final = None if runs_dir is None else Path(runs_dir) / run_id
    base = Path(tempfile.mkdtemp(prefix=f"argus-run-{run_id}-", dir=None if runs_dir is None else runs_dir))
    try:
        with EventLog(base / "log", durability="fast") as out:
            for k in range(0, len(events), 50_000):
                out.append(events[k:k + 50_000])
            digest = out.chain_head().hex()
        if final is None:
            return digest, None
        if final.exists():
            previous = json.loads((final / "summary.json").read_text()).get("digest")
            if previous != digest:
                raise RuntimeError(f"run {run_id}: this run's digest {digest} differs from the stored run's "
                               f"{previous} in {final}: either the backtest is not deterministic or this "
                               "version of Argus computes the run differently (remove the stored run to keep "
                               "the new one)")
            return digest, final
        base.rename(final)
        base = None
        return digest, final
    finally:
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
