"""The backtest fast path: the same run as argus.replay.backtest.run_backtest, with the strategy and the
simulator in kernels instead of one Python call per bar.

A run is eligible (`eligible`) when it is bars mode (`next_open`), fixed sizing, without timing
filters, the strategy reads nothing but bars (`uses` empty; no on_fill / on_quote / on_regime /
on_session / on_chain of its own) and decides in blocks: it has a built-in kernel (`builtin_kernel(n)`,
e.g. sma_cross, argus.kernels.sma_cross) or a batch callback (`Strategy.on_bars`, numpy). Its intents
are then market `Target`s without exits, so the whole simulation — targets to orders, the harness's
refusals (trades per day, buying power), fills at the next bar's open with slippage and commission,
cash, positions and the equity row of every bar — runs in argus.kernels.bar_sim, one call per block
of closed bars (one log chunk). Python touches only what is rare: one Signal / OrderSubmitted /
OrderAccepted|Rejected per order and one Fill per fill, built from the kernel's records.

The result is run_backtest's to the bit: the same numbers, tables, run log and digest (the kernel
repeats the general path's arithmetic term for term, including Python's sum() order). A run the kernel
cannot express (two working orders on one instrument, time going backwards within a day count)
returns None and run_backtest runs the general path instead.

Engines: "auto" (the default) uses the built-in kernel when the strategy has one, else `on_bars`;
"builtin" and "python" force one. The engine is not part of the run's configuration: every engine
gives the same run id and digest.
"""

from __future__ import annotations

import datetime as dt
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from argus.events import codec, layout
from argus.events.codec import Event
from argus.events.types import EventType, InstrumentKind
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.projections.engine import ProjectionEngine
from argus.replay.backtest import (
    _SIDE,
    _TIF,
    _TYPE,
    NO_RUN_LOG,
    BacktestResult,
    _columns,
    _prepare,
    _ts_recv_at,
    _write_run_log,
    projection_config,
)
from argus.replay.context import StrategyContext
from argus.replay.execution import BarExecution
from argus.replay.metrics import compute_metrics, round_trips
from argus.replay.settings import BacktestConfig
from argus.strategies.base import BarBlock, Strategy, TargetBlock, signal_id

__all__ = ["ENGINES", "FastRun", "eligible", "run_fast"]

ENGINES = ("auto", "builtin", "python")
_CALLBACKS = ("on_fill", "on_quote", "on_regime", "on_session", "on_chain")
#: builtin sum() of floats is Neumaier-compensated from CPython 3.12 on; the kernel repeats whichever runs
NEUMAIER_SUM = sys.version_info >= (3, 12)


def _engine(strategy: Strategy, engine: str) -> str | None:
    builtin = callable(getattr(strategy, "builtin_kernel", None))
    batch = type(strategy).on_bars is not Strategy.on_bars
    if engine == "builtin":
        return "builtin" if builtin else None
    if engine == "python":
        return "python" if batch else None
    return "builtin" if builtin else "python" if batch else None


def eligible(cfg: BacktestConfig, strategy: Strategy, engine: str = "auto") -> bool:
    """Whether run_fast can run this backtest (see the module docstring)."""
    if engine not in ENGINES:
        raise ValueError(f"engine = {engine!r}: must be one of {', '.join(ENGINES)}")
    if cfg.execution.fill != "next_open" or cfg.sizing != "fixed" or strategy.filters is not None:
        return False
    if strategy.uses:
        return False
    if any(getattr(type(strategy), name) is not getattr(Strategy, name) for name in _CALLBACKS
           if hasattr(Strategy, name)):
        return False
    return _engine(strategy, engine) is not None


def _bars_of(cfg: BacktestConfig, rows: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray | None:
    """The chunk's closed bars of the run's instruments in its window (as argus.replay.backtest._feed)."""
    bars = rows.get("bars")
    if bars is None or not len(bars):
        return None
    bars = bars[(bars["spec"] == 0) & np.isin(bars["instrument_id"], ids)]
    if cfg.from_ts is not None:
        bars = bars[bars["ts_end"] > cfg.from_ts]
    if cfg.to_ts is not None:
        bars = bars[bars["ts_end"] <= cfg.to_ts]
    return bars if len(bars) else None


_LAST_CHUNK: list = [None]  # (key, rows, value) of the last chunk _chunk_bars prepared


def _chunk_bars(cfg: BacktestConfig, chunk, rows: dict[str, np.ndarray], ids: np.ndarray) -> tuple | None:
    """The chunk's closed bars of the run (`_bars_of`), their ts_recv, and their columns as the kernels take
    them (read-only): computed once per chunk for all the runs of one replay pass that share the window
    and instruments (argus.replay.fanout), instead of once per run."""
    key = (id(rows), ids.tobytes(), cfg.from_ts, cfg.to_ts)
    last = _LAST_CHUNK[0]
    if last is not None and last[0] == key and last[1] is rows:
        return last[2]
    bars = _bars_of(cfg, rows, ids)
    value = None
    if bars is not None:
        lut = np.full(int(ids.max()) + 1 if len(ids) else 1, -1, np.int32)
        lut[ids] = np.arange(len(ids), dtype=np.int32)
        offset = bars["offset"].astype(np.int64)
        cols = {"sym": lut[bars["instrument_id"]], "offset": offset, "ts": _ts_recv_at(chunk, offset),
                "ts_start": bars["ts_start"].astype(np.int64), "ts_end": bars["ts_end"].astype(np.int64),
                **{k: np.ascontiguousarray(bars[k], dtype=np.float64) for k in ("open", "high", "low", "close")}}
        for arr in cols.values():
            arr.flags.writeable = False
        value = (bars, cols)
    _LAST_CHUNK[0] = (key, rows, value)
    return value


class NyDays:
    """The New York calendar date, as a proleptic ordinal, of instants in ns: for an array, exactly what
    argus.replay.backtest._ny_day gives one at a time (datetime.fromtimestamp(ts / 1e9, New York), whose
    float seconds are rounded half-even to microseconds), through a table of New York midnights."""

    def __init__(self) -> None:
        self.first = 0  # ordinal of the date of midnights[0]
        self.midnights = np.empty(0, np.int64)  # UTC microseconds of New York midnight, date by date

    @staticmethod
    def micros(ts: np.ndarray) -> np.ndarray:
        """The instants as datetime.fromtimestamp sees them: ts / 1e9 in float, then seconds and
        microseconds rounded half-even (CPython's _PyTime_DoubleToDenominator)."""
        x = np.asarray(ts, dtype=np.int64) / 1e9
        sec = np.trunc(x)
        us = np.rint((x - sec) * 1e6)
        over, under = us >= 1e6, us < 0
        us[over] -= 1e6
        sec[over] += 1.0
        us[under] += 1e6
        sec[under] -= 1.0
        return sec.astype(np.int64) * 1_000_000 + us.astype(np.int64)

    def _midnights(self, lo: int, hi: int) -> np.ndarray:
        """UTC microseconds of New York midnight for the date ordinals [lo, hi). The UTC offset at local
        midnight changes at most twice a year (transitions are at 02:00 local): it is read at each
        month's first midnight and, in a month where it changed, bisected to the first date with the
        new offset."""
        from argus.replay.backtest import _NEW_YORK

        def offset(ordinal: int) -> int:
            d = dt.date.fromordinal(ordinal)
            return int(dt.datetime(d.year, d.month, d.day, tzinfo=_NEW_YORK).utcoffset().total_seconds())

        first = dt.date.fromordinal(lo)
        starts = [lo]
        y, m = first.year, first.month
        while starts[-1] < hi:  # month starts, up to the first one at or after hi
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
            starts.append(dt.date(y, m, 1).toordinal())
        end = starts[-1]
        offs = np.empty(end - lo, np.int64)
        known = {o: offset(o) for o in starts}
        for a, b in zip(starts[:-1], starts[1:], strict=True):
            before, after = known[a], known[b]
            if after == before:
                offs[a - lo:b - lo] = before
                continue
            x, z = a, b  # offset(x) == before, offset(z) == after: the change lies in (x, z]
            while z - x > 1:
                mid = (x + z) // 2
                if offset(mid) == before:
                    x = mid
                else:
                    z = mid
            offs[a - lo:z - lo] = before
            offs[z - lo:b - lo] = after
        utc_midnight = (np.arange(lo, hi, dtype=np.int64) - dt.date(1970, 1, 1).toordinal()) * 86_400
        return (utc_midnight - offs[:hi - lo]) * 1_000_000

    def __call__(self, ts: np.ndarray) -> np.ndarray:
        us = self.micros(ts)
        if not len(us):
            return np.empty(0, np.int64)
        lo = dt.datetime.fromtimestamp(int(us.min()) // 1_000_000, dt.UTC).date().toordinal() - 1
        hi = dt.datetime.fromtimestamp(int(us.max()) // 1_000_000, dt.UTC).date().toordinal() + 2
        if not len(self.midnights):
            self.first, self.midnights = lo, self._midnights(lo, hi)
        if lo < self.first:
            self.midnights = np.concatenate([self._midnights(lo, self.first), self.midnights])
            self.first = lo
        end = self.first + len(self.midnights)
        if hi > end:
            self.midnights = np.concatenate([self.midnights, self._midnights(end, hi)])
        return self.first + np.searchsorted(self.midnights, us, side="right") - 1


class _Blocks:
    """Per-block outputs of the kernels, kept as arrays and joined at the end."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in (
            "sym", "offset", "ts", "ts_start", "ts_end", "open", "high", "low", "equity", "cash", "gross")}
        self.fill_parts: list[tuple] = []  # (global bar, order id, price, qty, commission, slippage) arrays
        self.order_parts: list[tuple] = []  # (global bar, order id, qty, status, gross_after, limit, units, code)
        self.reasons: list[str] = []  # reason texts by run-wide code
        self._codes: dict[str, int] = {}
        self.n = 0
        self.bad = -1  # the bar that stopped the last kernel call
        self.seen: np.ndarray | None = None  # instruments with a closed bar so far
        self.days = NyDays()
        self._lut: np.ndarray | None = None

    def lut(self, ids: np.ndarray) -> np.ndarray:
        """Market instrument id -> dense run index (int32)."""
        if self._lut is None:
            self._lut = np.full(int(ids.max()) + 1 if len(ids) else 1, -1, np.int32)
            self._lut[ids] = np.arange(len(ids), dtype=np.int32)
        return self._lut

    def reason_code(self, reason: str) -> int:
        if reason not in self._codes:
            self._codes[reason] = len(self.reasons)
            self.reasons.append(reason)
        return self._codes[reason]

    def column(self, name: str) -> np.ndarray:
        parts = self.parts[name]
        return np.concatenate(parts) if parts else np.empty(0)

    def records(self, which: str) -> list[tuple]:
        """The fill or order records of every block, as rows of Python numbers."""
        parts = self.fill_parts if which == "fills" else self.order_parts
        if not parts:
            return []
        return list(zip(*(np.concatenate(cols).tolist() for cols in zip(*parts, strict=True)), strict=True))


def run_fast(log: EventLog, cfg: BacktestConfig, strategy: Strategy, *, runs_dir: Path | None = None,
             progress: Callable[[int], None] | None = None, mode: str = "chunk", engine: str = "auto",
             max_block: int | None = None) -> BacktestResult | None:
    """run_backtest for an eligible run (`eligible`): the same BacktestResult, digest included, or None
    when the run needs the general path after all. `max_block` cuts each chunk's bars into blocks of
    at most that many bars (the result does not depend on it)."""
    t0 = time.perf_counter()
    prepared = _prepare(log, cfg, strategy)
    run = FastRun(log, cfg, strategy, prepared, engine=engine, max_block=max_block)
    engine_ = ProjectionEngine(log, projection_config(cfg, strategy, prepared[2]))
    n_events = 0
    for chunk, rows in engine_.stream(cfg.from_offset, prepared[0], mode=mode):
        n_events += chunk.stop - chunk.start
        if not run.feed(chunk, rows):
            return None
        if progress is not None:
            progress(chunk.stop - chunk.start)
    return run.finish(n_events, runs_dir, t0)


class FastRun:
    """One fast-path run fed chunk by chunk (so that several can share one replay pass)."""

    def __init__(self, log: EventLog, cfg: BacktestConfig, strategy: Strategy, prepared: tuple, *,
                 engine: str = "auto", max_block: int | None = None):
        from argus.kernels.bar_sim import BarSim

        if not eligible(cfg, strategy, engine):
            raise ValueError(f"strategy {strategy.name}: this run is not eligible for the fast path "
                             f"(engine {engine!r}); use run_backtest")
        which = _engine(strategy, engine)
        _, instruments, _, canonical, run_id, config_hash = prepared
        self.log, self.cfg, self.strategy, self.max_block = log, cfg, strategy, max_block
        self.instruments, self.canonical, self.run_id, self.config_hash = instruments, canonical, run_id, config_hash
        self.symbols = tuple(i.symbol for i in instruments)
        n = len(instruments)
        self.ids = np.array([i.market_id for i in instruments], dtype=np.uint32)
        mults = np.array([i.multiplier for i in instruments], dtype=np.float64)
        self.costs = costs = cfg.execution.costs()
        self.sim = BarSim(n, mults, cash=cfg.cash, qty=cfg.qty, slippage_bps=costs.slippage_bps,
                          slippage_ticks=costs.slippage_ticks, tick_size=costs.tick_size,
                          commission_rate=costs.commission_rate, commission_per_share=costs.commission_per_share,
                          commission_min=costs.commission_min, fee_per_order=costs.fee_per_order,
                          cost_multiplier=costs.cost_multiplier, leverage=cfg.leverage,
                          max_trades_per_day=float(strategy.max_trades_per_day), neumaier=NEUMAIER_SUM)
        self.ctx = StrategyContext(symbols=self.symbols, cash=cfg.cash)
        strategy.on_start(self.ctx)
        self.kernel = strategy.builtin_kernel(n) if which == "builtin" else None
        self.reasons: tuple[str, ...] = tuple(getattr(strategy, "REASONS", ()))
        self.out = _Blocks()

    def feed(self, chunk, rows: dict[str, np.ndarray]) -> bool:
        """Decide and simulate the bars one chunk closed; False when the run needs the general path."""
        from argus.kernels.bar_sim import STATUS_BAD_BAR, STATUS_OK

        got = _chunk_bars(self.cfg, chunk, rows, self.ids)
        if got is None:
            return True
        bars, cols = got
        step = len(bars) if not self.max_block else self.max_block
        for lo in range(0, len(bars), step):
            b = bars[lo:lo + step]
            shared = cols if self.kernel is not None and step >= len(bars) else None  # read by kernels only
            ts = cols["ts"] if shared is not None else cols["ts"][lo:lo + step].copy()  # on_bars gets its own
            status = _block(self.sim, self.strategy, self.kernel, self.ctx, self.out, b, ts, self.ids, self.symbols,
                            self.reasons, shared)
            if status == STATUS_BAD_BAR:
                _raise_bad_bar(self.costs, b, ts, self.out.bad)
            if status != STATUS_OK:
                return False
        return True

    def finish(self, n_events: int, runs_dir: Path | None, t0: float) -> BacktestResult:
        out, self.out = self.out, None  # the blocks are joined into the result: free them with it
        return _finish(self.log, self.cfg, self.strategy, self.sim, out, self.instruments, self.reasons,
                       self.run_id, self.config_hash, self.canonical, n_events, runs_dir, t0)


def _block(sim, strategy: Strategy, kernel, ctx: StrategyContext, out: _Blocks, b: np.ndarray, ts: np.ndarray,
           ids: np.ndarray, symbols: tuple[str, ...], reasons: tuple[str, ...], shared: dict | None = None) -> int:
    """Decide and simulate one block of bars; append its outputs to `out`. The kernel's status. `shared`:
    the block's columns already prepared (`_chunk_bars`), for a built-in kernel."""
    nb = len(b)
    if shared is not None:
        sym, offset, ts = shared["sym"], shared["offset"], shared["ts"]
        o, h, lo, c = shared["open"], shared["high"], shared["low"], shared["close"]
        ts_start, ts_end = shared["ts_start"], shared["ts_end"]
    else:
        sym = out.lut(ids)[b["instrument_id"]]
        offset = b["offset"].astype(np.int64)
        o, h, lo, c = (np.ascontiguousarray(b[k], dtype=np.float64) for k in ("open", "high", "low", "close"))
        ts_start, ts_end = b["ts_start"].astype(np.int64), b["ts_end"].astype(np.int64)
    if kernel is not None:
        units = np.empty(nb)
        code = np.empty(nb, dtype=np.int8)
        kernel.targets(sym, c, units, code)
    else:
        block = BarBlock(symbols, sym, offset, ts, ts_start, ts_end, o, h, lo, c, b["volume"].astype(np.float64))
        ans = strategy.on_bars(ctx, block)
        if ans is None:
            raise ValueError(f"strategy {strategy.name}: on_bars returned None (a batch strategy returns a target "
                             "per bar, NaN for none)")
        if isinstance(ans, TargetBlock):
            units = np.ascontiguousarray(ans.units, dtype=np.float64)
            code = None if ans.code is None else np.asarray(ans.code)
            reasons = tuple(ans.reasons)
        else:
            units, code = np.ascontiguousarray(ans, dtype=np.float64), None
        if units.shape != (nb,):
            raise ValueError(f"strategy {strategy.name}: on_bars returned {units.shape} targets for {nb} bars")
    eq, cash, gross = np.empty(nb), np.empty(nb), np.empty(nb)
    f_bar, f_order = np.empty(nb, np.int64), np.empty(nb, np.int64)
    f_price, f_qty, f_comm, f_slip = np.empty(nb), np.empty(nb), np.empty(nb), np.empty(nb)
    o_bar, o_id, o_status = np.empty(nb, np.int64), np.empty(nb, np.int64), np.empty(nb, np.int8)
    o_qty, o_gross, o_limit = np.empty(nb), np.empty(nb), np.empty(nb)
    day = np.zeros(nb, np.int64)  # the kernel reads a bar's day only when it places an order there
    decided = np.flatnonzero(~np.isnan(units))
    day[decided] = out.days(ts[decided])
    nf, no, status, stop = sim.run(sym, offset, day, o, h, lo, c, units, eq, cash, gross, f_bar, f_order, f_price,
                                   f_qty, f_comm, f_slip, o_bar, o_id, o_qty, o_status, o_gross, o_limit)
    out.bad = stop
    if status != 0:
        return status
    base = out.n
    # copies of the used rows: a view would keep the whole block-sized buffer alive until the run ends
    out.fill_parts.append((f_bar[:nf] + base, f_order[:nf].copy(), f_price[:nf].copy(), f_qty[:nf].copy(),
                           f_comm[:nf].copy(), f_slip[:nf].copy()))
    at = o_bar[:no]
    if code is not None and reasons:
        local = np.asarray(code)[at].astype(np.int64)
        local[(local < 0) | (local >= len(reasons))] = len(reasons)
        codes = np.array([out.reason_code(r) for r in reasons] + [-1], np.int64)[local]  # run-wide codes
    else:
        codes = np.full(no, -1, np.int64)
    out.order_parts.append((at + base, o_id[:no].copy(), o_qty[:no].copy(), o_status[:no].copy(),
                            o_gross[:no].copy(), o_limit[:no].copy(), units[at], codes))
    for name, arr in (("sym", sym), ("offset", offset), ("ts", ts), ("ts_start", ts_start),
                      ("ts_end", ts_end), ("open", o), ("high", h), ("low", lo),
                      ("equity", eq), ("cash", cash), ("gross", gross)):
        out.parts[name].append(arr)
    out.n += nb
    # the context as of the end of the block (what the next block's on_bars may read)
    pos = sim.positions
    last = sim.last_prices
    seen = np.zeros(len(symbols), bool)
    seen[sym] = True
    out.seen = seen if out.seen is None else out.seen | seen
    ctx.cash = sim.cash
    ctx.now, ctx.offset = int(ts[-1]), int(offset[-1])
    for k, s in enumerate(symbols):
        ctx.positions[s] = float(pos[k])
        if out.seen[k]:
            ctx.last_price[s] = float(last[k])
    return status


def _raise_bad_bar(costs, b: np.ndarray, ts: np.ndarray, i: int) -> None:
    """Raise the simulator's own error for the bar the kernel refused."""
    r = b[i]
    BarExecution(costs).on_bar(int(r["instrument_id"]), int(r["offset"]), int(ts[i]), float(r["open"]),
                               float(r["high"]), float(r["low"]), float(r["close"]), int(r["session"]))
    raise AssertionError("unreachable: the kernel refused a bar the simulator accepts")  # pragma: no cover


def _finish(log: EventLog, cfg: BacktestConfig, strategy: Strategy, sim, out: _Blocks, instruments: list,
            reasons: tuple[str, ...], run_id: str, config_hash: str, canonical: str, n_events: int,
            runs_dir: Path | None, t0: float) -> BacktestResult:
    symbols = [i.symbol for i in instruments]
    sym = out.column("sym").astype(np.int64)
    offset = out.column("offset").astype(np.int64)
    ts = out.column("ts").astype(np.int64)
    ts_start = out.column("ts_start").astype(np.int64)
    opens = out.column("open")
    sid_of = strategy.strategy_id()
    if runs_dir == NO_RUN_LOG:  # no run log to build (research sweeps): the fills alone
        return _finish_unlogged(cfg, sim, out, instruments, run_id, config_hash, n_events, t0, symbols, sym, offset,
                                ts_start, opens)
    # the run log: config, instruments, then per bar its fill and its order, in bar order; encoded here
    # record by record to the bytes codec.encode gives (fills in one vectorised pass)
    records = _Records(codec.encode(e) for e in [
        Event(type=EventType.CONFIG_RECORDED, ts_event=1, ts_recv=1, instrument_id=0xFFFFFFFF,
              data={"name": "backtest", "config_hash": run_id, "config_json": canonical}),
        *(instrument_event(i.run_id, i.symbol, kind=InstrumentKind[i.kind.upper()], multiplier=i.multiplier)
          for i in instruments)])
    order_reason: dict[int, str] = {}
    fills: list[dict[str, Any]] = []
    fill_rows, order_rows = out.records("fills"), out.records("orders")
    fill_blob, fill_size = _fill_records(fill_rows, sym, ts)
    reasons = out.reasons
    fi = oi = 0
    nf, no = len(fill_rows), len(order_rows)
    messages = codec.MESSAGES
    signal_t, submitted_t, accepted_t, rejected_t = (EventType.SIGNAL, EventType.ORDER_SUBMITTED,
                                                     EventType.ORDER_ACCEPTED, EventType.ORDER_REJECTED)
    while fi < nf or oi < no:
        if oi >= no or (fi < nf and fill_rows[fi][0] <= order_rows[oi][0]):
            bar, oid, price, q, comm, slip = fill_rows[fi]
            records.append(fill_blob[fi * fill_size:(fi + 1) * fill_size])
            fi += 1
            fills.append({"fill_id": fi, "order_id": oid, "symbol": symbols[int(sym[bar])], "ts": int(ts_start[bar]),
                          "offset": int(offset[bar]), "price": price, "quantity": q, "commission": comm,
                          "slippage_cost": slip, "ref_price": float(opens[bar]), "source": "bar_open",
                          "reason": order_reason[oid]})
        else:
            bar, oid, qty, status, gross_after, limit, units, code = order_rows[oi]
            oi += 1
            reason = (reasons[code] if code >= 0 else "") or "target"  # as _Run._intent: reason or "target"
            now = int(ts[bar])
            k = int(sym[bar])
            sid = signal_id(sid_of, config_hash, int(offset[bar]), 1000 * (units == 0))
            records.append(_record(signal_t, k, now, messages[signal_t](
                signal_id=sid, strategy_id=sid_of, config_hash=config_hash, target_quantity=units, reason=reason)))
            records.append(_record(submitted_t, k, now, messages[submitted_t](
                order_id=oid, signal_id=sid, side=_SIDE[1 if qty > 0 else -1], order_type=_TYPE["market"],
                quantity=abs(qty), limit_price=0.0, stop_price=0.0, time_in_force=_TIF["gtc"])))
            if status == 0:
                records.append(_record(accepted_t, k, now, messages[accepted_t](order_id=oid,
                                                                                venue_order_id=f"sim-{oid}")))
                order_reason[oid] = reason
            else:
                if status == 1:
                    why = (f"max_trades_per_day: {strategy.max_trades_per_day:g} trades per day for {symbols[k]} "
                           "reached")
                else:
                    why = (f"buying power: gross exposure {gross_after:.2f} would exceed equity x leverage "
                           f"{limit:.2f}")
                records.append(_record(rejected_t, k, now, messages[rejected_t](order_id=oid, reason=why)))
    return _result(cfg, sim, out, instruments, run_id, config_hash, n_events, runs_dir, t0, symbols,
                   sym, offset, fills, records)


def _finish_unlogged(cfg: BacktestConfig, sim, out: _Blocks, instruments: list, run_id: str, config_hash: str,
                     n_events: int, t0: float, symbols: list[str], sym: np.ndarray, offset: np.ndarray,
                     ts_start: np.ndarray, opens: np.ndarray) -> BacktestResult:
    """_finish without a run log: the same fills (each with its accepted order's reason), no records."""
    reasons = out.reasons
    order_reason = {oid: (reasons[code] if code >= 0 else "") or "target"
                    for _, oid, _, status, _, _, _, code in out.records("orders") if status == 0}
    fills = [{"fill_id": fi, "order_id": oid, "symbol": symbols[int(sym[bar])], "ts": int(ts_start[bar]),
              "offset": int(offset[bar]), "price": price, "quantity": q, "commission": comm, "slippage_cost": slip,
              "ref_price": float(opens[bar]), "source": "bar_open", "reason": order_reason[oid]}
             for fi, (bar, oid, price, q, comm, slip) in enumerate(out.records("fills"), start=1)]
    return _result(cfg, sim, out, instruments, run_id, config_hash, n_events, NO_RUN_LOG, t0, symbols, sym, offset,
                   fills, [])


def _result(cfg: BacktestConfig, sim, out: _Blocks, instruments: list, run_id: str, config_hash: str, n_events: int,
            runs_dir: Path | None, t0: float, symbols: list[str], sym: np.ndarray, offset: np.ndarray,
            fills: list[dict[str, Any]], records: list) -> BacktestResult:
    """The equity table, trades, metrics and run log of a finished fast run."""
    equity = np.empty(out.n, dtype=[("ts", "<i8"), ("equity", "<f8"), ("cash", "<f8"), ("gross_exposure", "<f8")])
    equity["ts"] = out.column("ts_end").astype(np.int64)
    equity["equity"] = out.column("equity")
    equity["cash"] = out.column("cash")
    equity["gross_exposure"] = out.column("gross")
    # per instrument: offsets, highs and lows of its bars (the trades' MAE / MFE)
    order = np.argsort(sym, kind="stable")
    bounds = np.searchsorted(sym[order], np.arange(len(symbols) + 1))
    highs, lows = out.column("high")[order], out.column("low")[order]
    offs = offset[order].astype(np.float64)  # _Series stores float64
    per_symbol = {s: (offs[bounds[k]:bounds[k + 1]], highs[bounds[k]:bounds[k + 1]], lows[bounds[k]:bounds[k + 1]])
                  for k, s in enumerate(symbols)}
    ctx = StrategyContext(symbols=tuple(symbols), cash=sim.cash)
    pos, last = sim.positions, sim.last_prices
    for k, s in enumerate(symbols):
        ctx.positions[s] = float(pos[k])
        if bounds[k + 1] > bounds[k]:
            ctx.last_price[s] = float(last[k])
    multipliers = {i.symbol: i.multiplier for i in instruments}
    trades = round_trips(fills, per_symbol, multipliers, ctx.last_price)
    metrics = compute_metrics(equity, trades, cfg.cash, fills, multipliers)
    digest, run_dir = _write_run_log(records, runs_dir, run_id)
    seconds = time.perf_counter() - t0
    result = BacktestResult(
        run_id=run_id, config_hash=config_hash, run_dir=None if run_dir is None else str(run_dir), events=n_events,
        bars=int(sim.n_bars), seconds=seconds, trades=len(trades["symbol"]), final_equity=ctx.equity,
        total_commission=sim.total_commission, metrics=metrics, digest=digest, orders=int(sim.n_orders),
        rejected=int(sim.n_rejected), fills=len(fills),
        tables={"trades": trades, "fills": _columns(fills), "equity": {k: equity[k] for k in equity.dtype.names}})
    if run_dir is not None:
        import json

        (run_dir / "summary.json").write_text(json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n")
    return result


_HEAD = struct.Struct("<IHBBIIqq")  # argus.events.layout.HEADER_DTYPE
_VERSION = Event(type=EventType.SIGNAL, ts_event=1, ts_recv=1).version


class _Records(list):
    """Encoded records; a slice is one body (what EventLog.append takes), so _write_run_log appends the
    same batches as it does for a list of Events."""

    def __getitem__(self, k):
        if isinstance(k, slice):
            return b"".join(list.__getitem__(self, k))
        return list.__getitem__(self, k)


def _record(etype: EventType, instrument_id: int, now: int, msg) -> bytes:
    """codec.encode of a protobuf-payload event (header, payload, zero padding to 8 bytes)."""
    payload = msg.SerializeToString(deterministic=True)
    n = len(payload)
    length = (layout.HEADER_SIZE + n + 7) & ~7
    return (_HEAD.pack(length, int(etype), _VERSION, 0, instrument_id, n, now, now) + payload
            + b"\0" * (length - layout.HEADER_SIZE - n))


def _fill_records(rows: list[tuple], sym: np.ndarray, ts: np.ndarray) -> tuple[bytes, int]:
    """The Fill records of every fill, in fill order (fill ids 1, 2, ...), as one blob and the record size."""
    size = layout.RECORD_DTYPES[EventType.FILL].itemsize
    if not rows:
        return b"", size
    bar, oid, price, q, comm = (np.array(c) for c in list(zip(*rows, strict=True))[:5])
    now = ts[bar]
    recs = codec.encode_columns(EventType.FILL, sym[bar].astype(np.uint32), now, now, price=price, quantity=q,
                                commission=comm, order_id=oid.astype(np.uint64),
                                fill_id=np.arange(1, len(rows) + 1, dtype=np.uint64), position_id=0, account_id=0,
                                liquidity=2)
    recs["version"] = _VERSION
    return recs.tobytes(), size
