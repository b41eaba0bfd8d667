"""Backtest benchmark (issue #8 item 9): bars/s of `sma_cross` (fast 10, slow 30, long-only, 100 shares,
orders at the close filled at the next bar's open, 0.1% commission, 5 bps slippage) over 50 instruments x
20,000 daily bars (1,000,000 provider Bar events, a seeded random walk), next to baselines measured in
the same run on the same bars and strategy:

  argus, three ways, all giving the same run (fills, equity, digest):
    builtin  - the built-in Cython strategy (argus.kernels.sma_cross) + the Cython simulator
               (argus.kernels.bar_sim), via argus.replay.fast;
    python   - the same strategy as a Python batch strategy on the public API (SmaCross.on_bars, numpy)
               + the Cython simulator;
    general  - the general per-bar harness (run_backtest(fast=False): one Python on_bar call per bar);
  backtrader - bt.Cerebro with bt.ind.CrossOver(SMA, SMA), on a subset of the instruments (it is slow);
  vectorbt   - Portfolio.from_signals on the same entries/exits (decided at the close, filled at the
               next open), with its numba and its Rust engine.

Each argus figure is given two ways:
  end_to_end    - what `argusctl backtest` does: replay the market log into bars (LMDB chunks through
                  the bar reducer), the strategy, the simulation, the trades/metrics tables and the run
                  log written and hashed (every Signal, Order and Fill an event);
  strategy_sim  - the strategy and the simulation alone, over the bars already replayed, in the same
                  per-chunk blocks (the part that the vectorbt and backtrader figures are comparable to:
                  they start from arrays in memory and write no event log).

Usage: python benchmarks/bench_backtest.py [--json] [--instruments 50] [--bars 20000] [--bt-instruments 2]
       [--general-instruments 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from argus.events import codec
from argus.events.types import EventType
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.projections.engine import ProjectionEngine
from argus.replay import fast
from argus.replay.backtest import _prepare, _ts_recv_at, projection_config, run_backtest
from argus.replay.context import StrategyContext
from argus.replay.settings import BacktestConfig, ExecutionSettings
from argus.strategies.sma_cross import SmaCross

DAY = 86_400 * 10**9
T0 = 631_152_000 * 10**9  # 1990-01-01 UTC
FAST, SLOW, QTY, CASH, COMMISSION, SLIPPAGE_BPS = 10, 30, 100, 10_000_000.0, 0.001, 5.0


def market(instruments: int, bars: int, seed: int = 11) -> dict[str, np.ndarray]:
    """OHLC of `instruments` seeded random walks (in cents), `bars` days each: arrays (bars, instruments)."""
    rng = np.random.default_rng(seed)
    close = np.round(50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, size=(bars, instruments)), axis=0)) + 10.0, 2)
    prev = np.vstack([close[:1], close[:-1]])
    open_ = np.round(prev * np.exp(rng.normal(0.0, 0.005, size=close.shape)), 2)
    high = np.round(np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, size=close.shape))), 2)
    low = np.round(np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, size=close.shape))), 2)
    return {"open": open_, "high": high, "low": low, "close": close}


def write_log(path: Path, m: dict[str, np.ndarray]) -> list[str]:
    bars, n = m["close"].shape
    symbols = [f"S{k:03d}" for k in range(n)]
    ts = T0 + (np.arange(bars)[:, None] + 1) * DAY + np.zeros((1, n), np.int64)
    iid = np.broadcast_to(np.arange(n, dtype=np.uint32), (bars, n))
    recs = codec.encode_columns(EventType.BAR, iid.reshape(-1), ts.reshape(-1), ts.reshape(-1),
                                **{k: m[k].reshape(-1) for k in ("open", "high", "low", "close")}, volume=1000.0,
                                interval_ns=DAY)
    with EventLog(path, durability="fast") as log:
        log.append([instrument_event(k, s) for k, s in enumerate(symbols)])
        for lo in range(0, len(recs), 200_000):
            log.append(recs[lo:lo + 200_000])
    return symbols


def config(symbols) -> BacktestConfig:
    return BacktestConfig(strategy="sma_cross", symbols=tuple(symbols), params={"fast": FAST, "slow": SLOW},
                          qty=QTY, cash=CASH, execution=ExecutionSettings(commission_rate=COMMISSION,
                                                                          slippage_bps=SLIPPAGE_BPS))


def best(fn, runs: int):
    out, times = None, []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


# ------------------------------------------------------------------------------------------------- argus


def replayed_blocks(log: EventLog, cfg: BacktestConfig) -> tuple[float, list, object]:
    """The market log replayed into the per-chunk blocks of closed bars the fast path consumes."""
    t = time.perf_counter()
    strategy = SmaCross(fast=FAST, slow=SLOW)
    to_offset, instruments, source, *_ = _prepare(log, cfg, strategy)
    ids = np.array([i.market_id for i in instruments], dtype=np.uint32)
    engine = ProjectionEngine(log, projection_config(cfg, strategy, source))
    blocks = []
    for chunk, rows in engine.stream(cfg.from_offset, to_offset):
        bars = fast._bars_of(cfg, rows, ids)
        if bars is not None:
            blocks.append((bars, _ts_recv_at(chunk, bars["offset"].astype(np.int64))))
    return time.perf_counter() - t, blocks, (instruments, ids)


def strategy_sim(cfg: BacktestConfig, blocks: list, meta, engine: str) -> tuple[int, int]:
    """Strategy + simulation over already replayed blocks (argus.replay.fast._block): (bars, fills)."""
    from argus.kernels.bar_sim import BarSim

    instruments, ids = meta
    symbols = tuple(i.symbol for i in instruments)
    n = len(symbols)
    costs = cfg.execution.costs()
    sim = BarSim(n, np.ones(n), cash=cfg.cash, qty=cfg.qty, slippage_bps=costs.slippage_bps,
                 slippage_ticks=costs.slippage_ticks, tick_size=costs.tick_size,
                 commission_rate=costs.commission_rate, commission_per_share=costs.commission_per_share,
                 commission_min=costs.commission_min, fee_per_order=costs.fee_per_order,
                 cost_multiplier=costs.cost_multiplier, leverage=cfg.leverage, max_trades_per_day=2.0,
                 neumaier=sys.version_info >= (3, 12))
    strategy = SmaCross(fast=FAST, slow=SLOW)
    ctx = StrategyContext(symbols=symbols, cash=cfg.cash)
    strategy.on_start(ctx)
    kernel = strategy.builtin_kernel(n) if engine == "builtin" else None
    out = fast._Blocks()
    for bars, ts in blocks:
        fast._block(sim, strategy, kernel, ctx, out, bars, ts, ids, symbols, strategy.REASONS)
    return int(sim.n_bars), sum(len(p[0]) for p in out.fill_parts)


def prepared_targets(blocks: list, meta) -> list:
    """Per block, the kernel inputs with the built-in strategy's targets already decided (untimed): what
    Portfolio.from_signals gets when handed entries and exits."""
    from argus.kernels.sma_cross import SmaCrossKernel

    instruments, ids = meta
    kernel = SmaCrossKernel(len(instruments), FAST, SLOW, False)
    lut = np.full(int(ids.max()) + 1, -1, np.int32)
    lut[ids] = np.arange(len(ids), dtype=np.int32)
    days = fast.NyDays()
    out = []
    for bars, ts in blocks:
        sym = lut[bars["instrument_id"]]
        c = np.ascontiguousarray(bars["close"])
        units, code = np.empty(len(c)), np.empty(len(c), np.int8)
        kernel.targets(sym, c, units, code)
        nb = len(c)
        out.append((sym, bars["offset"].astype(np.int64), days(ts), np.ascontiguousarray(bars["open"]),
                    np.ascontiguousarray(bars["high"]), np.ascontiguousarray(bars["low"]), c, units,
                    *(np.empty(nb) for _ in range(3)), np.empty(nb, np.int64), np.empty(nb, np.int64),
                    *(np.empty(nb) for _ in range(4)), np.empty(nb, np.int64), np.empty(nb, np.int64), np.empty(nb),
                    np.empty(nb, np.int8), np.empty(nb), np.empty(nb)))
    return out


def simulation_only(cfg: BacktestConfig, prepared: list) -> tuple[int, int]:
    """The simulator alone (argus.kernels.bar_sim) over decided targets: (bars, fills)."""
    from argus.kernels.bar_sim import BarSim

    n = int(max(int(p[0].max()) for p in prepared)) + 1
    costs = cfg.execution.costs()
    sim = BarSim(n, np.ones(n), cash=cfg.cash, qty=cfg.qty, slippage_bps=costs.slippage_bps,
                 slippage_ticks=costs.slippage_ticks, tick_size=costs.tick_size,
                 commission_rate=costs.commission_rate, commission_per_share=costs.commission_per_share,
                 commission_min=costs.commission_min, fee_per_order=costs.fee_per_order,
                 cost_multiplier=costs.cost_multiplier, leverage=cfg.leverage, max_trades_per_day=2.0,
                 neumaier=sys.version_info >= (3, 12))
    fills = 0
    for args in prepared:
        fills += sim.run(*args)[0]
    return int(sim.n_bars), fills


# --------------------------------------------------------------------------------------------- baselines


def backtrader_run(m: dict[str, np.ndarray], k: int) -> tuple[float, int, list]:
    import backtrader as bt
    import pandas as pd

    bars = m["close"].shape[0]
    index = pd.to_datetime(T0 + np.arange(bars) * DAY, utc=True).tz_localize(None)

    class SmaCrossBt(bt.Strategy):
        def __init__(self):
            self.cross = [bt.ind.CrossOver(bt.ind.SMA(d, period=FAST), bt.ind.SMA(d, period=SLOW)) for d in self.datas]
            self.fills = []

        def next(self):
            for d, c in zip(self.datas, self.cross, strict=True):
                if not self.getposition(d).size:
                    if c[0] > 0:
                        self.buy(data=d, size=QTY)
                elif c[0] < 0:
                    self.close(data=d)

        def notify_order(self, order):
            if order.status == order.Completed:
                self.fills.append((order.data._name, bt.num2date(order.executed.dt).date(), order.executed.price,
                                   order.executed.size))

    cerebro = bt.Cerebro(stdstats=False)
    for j in range(k):
        df = pd.DataFrame({"open": m["open"][:, j], "high": m["high"][:, j], "low": m["low"][:, j],
                           "close": m["close"][:, j], "volume": 1000.0}, index=index)
        cerebro.adddata(bt.feeds.PandasData(dataname=df), name=f"S{j:03d}")
    cerebro.addstrategy(SmaCrossBt)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=COMMISSION)
    cerebro.broker.set_slippage_perc(SLIPPAGE_BPS / 1e4, slip_open=True, slip_limit=True, slip_match=True,
                                     slip_out=True)
    t = time.perf_counter()
    strat = cerebro.run()[0]
    return time.perf_counter() - t, bars * k, strat.fills


def signals(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries / exits of sma_cross at each bar's close (backtrader's rule), shifted to the next bar, where
    Portfolio.from_signals executes them (at price = that bar's open)."""
    def sma(w):
        c = np.cumsum(np.vstack([np.zeros((1, close.shape[1])), close]), axis=0)
        out = np.full(close.shape, np.nan)
        out[w - 1:] = (c[w:] - c[:-w]) / w
        return out

    diff = sma(FAST) - sma(SLOW)
    last = np.full(close.shape[1], np.nan)
    up = np.zeros(close.shape, bool)
    down = np.zeros(close.shape, bool)
    for t in range(SLOW - 1, close.shape[0]):  # last nonzero sign, vectorised over instruments
        d = diff[t]
        up[t] = (last < 0) & (d > 0)
        down[t] = (last > 0) & (d < 0)
        last = np.where((d != 0) | np.isnan(last), d, last)
    entries = np.zeros_like(up)
    exits = np.zeros_like(down)
    entries[1:], exits[1:] = up[:-1], down[:-1]
    return entries, exits


def vectorbt_runs(m: dict[str, np.ndarray], runs: int) -> dict:
    try:
        import vectorbt as vbt
    except ImportError as exc:  # pragma: no cover - reported, not fatal
        return {"error": f"vectorbt not installed: {exc}"}
    out: dict = {"version": vbt.__version__}
    entries, exits = signals(m["close"])
    small = {k: v[:200, :2] for k, v in m.items()}
    for engine in ("numba", "rust"):
        def sim(mm=m, en=entries, ex=exits, engine=engine):
            return vbt.Portfolio.from_signals(mm["close"], en, ex, price=mm["open"], size=QTY, size_type="amount",
                                              fees=COMMISSION, slippage=SLIPPAGE_BPS / 1e4, init_cash=CASH,
                                              direction="longonly", engine=engine)

        def with_signals(engine=engine):
            fast_ma = vbt.MA.run(m["close"], FAST)
            slow_ma = vbt.MA.run(m["close"], SLOW)
            up = fast_ma.ma_crossed_above(slow_ma).to_numpy()
            down = fast_ma.ma_crossed_below(slow_ma).to_numpy()
            en = np.zeros_like(up)
            ex = np.zeros_like(down)
            en[1:], ex[1:] = up[:-1], down[:-1]
            return sim(en=en, ex=ex)

        try:
            sim(mm=small, en=entries[:200, :2], ex=exits[:200, :2])  # compile / warm up, not timed
            sim()
            with_signals()
            t_sim, pf = best(sim, runs)
            t_all, _ = best(with_signals, runs)
        except Exception as exc:  # noqa: BLE001 - an engine that cannot run is reported
            out[engine] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        bars = m["close"].size
        out[engine] = {"simulation_seconds": t_sim, "simulation_bars_per_s": bars / t_sim,
                       "signals_and_simulation_seconds": t_all, "signals_and_simulation_bars_per_s": bars / t_all,
                       "orders": int(pf.orders.count().sum())}
    return out


# ------------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--instruments", type=int, default=50)
    ap.add_argument("--bars", type=int, default=20_000)
    ap.add_argument("--bt-instruments", type=int, default=2, help="instruments backtrader runs (all bars)")
    ap.add_argument("--general-instruments", type=int, default=5, help="instruments the per-bar harness runs")
    ap.add_argument("--runs", type=int, default=3, help="best of")
    ap.add_argument("--dir", default=None, help="where the temporary log goes")
    args = ap.parse_args()
    m = market(args.instruments, args.bars)
    tmp = Path(tempfile.mkdtemp(prefix="argus-bench-backtest-", dir=args.dir))
    res: dict = {"machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
                 "instruments": args.instruments, "bars_per_instrument": args.bars,
                 "bars": args.instruments * args.bars,
                 "strategy": f"sma_cross fast={FAST} slow={SLOW} long-only qty={QTY}, next open, "
                             f"commission {COMMISSION:.1%}, slippage {SLIPPAGE_BPS:g} bps"}
    try:
        t = time.perf_counter()
        symbols = write_log(tmp / "log", m)
        res["log_write_seconds"] = time.perf_counter() - t
        cfg = config(symbols)
        with EventLog(tmp / "log", readonly=True) as log:
            argus: dict = {}
            digests = {}
            for engine in ("builtin", "python"):
                secs, r = best(lambda engine=engine: fast.run_fast(log, cfg, SmaCross(fast=FAST, slow=SLOW),
                                                                  engine=engine), args.runs)
                digests[engine] = r.digest
                argus[engine] = {"end_to_end_seconds": secs, "end_to_end_bars_per_s": r.bars / secs,
                                 "fills": r.fills}
            full = r
            t_replay, blocks, meta = replayed_blocks(log, cfg)
            argus["replay_only"] = {"seconds": t_replay, "bars_per_s": full.bars / t_replay,
                                    "what": "market log -> closed bars (LMDB read + bar reducer), no strategy"}
            for engine in ("builtin", "python"):
                secs, (nb, nf) = best(lambda engine=engine: strategy_sim(cfg, blocks, meta, engine), args.runs)
                assert nb == full.bars and nf == full.fills
                argus[engine].update({"strategy_sim_seconds": secs, "strategy_sim_bars_per_s": nb / secs})
            prepared = prepared_targets(blocks, meta)
            secs, (nb, nf) = best(lambda: simulation_only(cfg, prepared), args.runs)
            assert nb == full.bars and nf == full.fills
            argus["simulation_only"] = {"seconds": secs, "bars_per_s": nb / secs,
                                        "what": "argus.kernels.bar_sim over targets already decided (as "
                                                "Portfolio.from_signals over given entries/exits)"}
            argus["same_digest_builtin_python"] = digests["builtin"] == digests["python"]
            gsyms = symbols[:args.general_instruments]
            gcfg = config(gsyms)
            t = time.perf_counter()
            general = run_backtest(log, gcfg, SmaCross(fast=FAST, slow=SLOW), fast=False)
            g_secs = time.perf_counter() - t
            quick = fast.run_fast(log, gcfg, SmaCross(fast=FAST, slow=SLOW))
            argus["general"] = {"instruments": len(gsyms), "bars": general.bars, "end_to_end_seconds": g_secs,
                                "end_to_end_bars_per_s": general.bars / g_secs,
                                "same_digest_as_fast_path": general.digest == quick.digest}
            res["argus"] = argus
            fills = full.tables["fills"]
        # backtrader on a subset, checked against argus's fills of the same instruments
        bt_secs, bt_bars, bt_fills = backtrader_run(m, args.bt_instruments)
        sub = [f"S{j:03d}" for j in range(args.bt_instruments)]
        mine = sorted((s, int(ts) // DAY, round(float(p), 9), float(q)) for s, ts, p, q in
                      zip(fills["symbol"], fills["ts"], fills["price"], fills["quantity"], strict=True) if s in sub)
        theirs = sorted((s, (np.datetime64(d) - np.datetime64("1970-01-01")).astype("timedelta64[D]").astype(int),
                         round(float(p), 9), float(q)) for s, d, p, q in bt_fills)
        res["backtrader"] = {"instruments": args.bt_instruments, "bars": bt_bars, "seconds": bt_secs,
                             "bars_per_s": bt_bars / bt_secs, "fills": len(bt_fills), "same_fills_as_argus": mine == theirs}
        res["vectorbt"] = vectorbt_runs(m, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a, btr = res["argus"], res["backtrader"]["bars_per_s"]
    engines = [v for v in res["vectorbt"].values() if isinstance(v, dict) and "error" not in v]
    vb_best = max(v["simulation_bars_per_s"] for v in engines) if engines else None
    vb_best_all = max(v["signals_and_simulation_bars_per_s"] for v in engines) if engines else None
    res["ratios"] = {
        "python_end_to_end_vs_backtrader": a["python"]["end_to_end_bars_per_s"] / btr,
        "python_strategy_sim_vs_backtrader": a["python"]["strategy_sim_bars_per_s"] / btr,
        "builtin_end_to_end_vs_backtrader": a["builtin"]["end_to_end_bars_per_s"] / btr,
        "general_vs_backtrader": a["general"]["end_to_end_bars_per_s"] / btr,
        "builtin_strategy_sim_vs_vectorbt_fastest_signals_and_simulation": None if vb_best is None else
        a["builtin"]["strategy_sim_bars_per_s"] / vb_best_all,
        "argus_simulation_only_vs_vectorbt_fastest_simulation": None if vb_best is None else
        a["simulation_only"]["bars_per_s"] / vb_best,
        "builtin_strategy_sim_vs_vectorbt_fastest_simulation": None if vb_best is None else
        a["builtin"]["strategy_sim_bars_per_s"] / vb_best,
        "builtin_end_to_end_vs_vectorbt_fastest_signals_and_simulation": None if vb_best is None else
        a["builtin"]["end_to_end_bars_per_s"] / vb_best_all,
    }
    res["targets"] = {
        "python_ge_50x_backtrader_end_to_end": res["ratios"]["python_end_to_end_vs_backtrader"] >= 50,
        "python_ge_50x_backtrader_strategy_sim": res["ratios"]["python_strategy_sim_vs_backtrader"] >= 50,
        "builtin_ge_10M_bars_per_s_strategy_sim": a["builtin"]["strategy_sim_bars_per_s"] >= 1e7,
        "builtin_ge_10M_bars_per_s_end_to_end": a["builtin"]["end_to_end_bars_per_s"] >= 1e7,
        "builtin_faster_than_vectorbt_fastest_signals_and_simulation": None if vb_best is None else
        a["builtin"]["strategy_sim_bars_per_s"] > vb_best_all,
        "argus_simulation_faster_than_vectorbt_fastest_simulation": None if vb_best is None else
        a["simulation_only"]["bars_per_s"] > vb_best,
    }
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{res['bars']:,} bars ({args.instruments} x {args.bars:,}), {res['strategy']}")
    for name in ("builtin", "python"):
        r = a[name]
        print(f"  argus {name:8s} end to end {r['end_to_end_bars_per_s']:>14,.0f} bars/s   "
              f"strategy+sim {r['strategy_sim_bars_per_s']:>14,.0f} bars/s")
    print(f"  argus replay only          {a['replay_only']['bars_per_s']:>14,.0f} bars/s")
    print(f"  argus simulation only      {a['simulation_only']['bars_per_s']:>14,.0f} bars/s")
    print(f"  argus general (per bar)    {a['general']['end_to_end_bars_per_s']:>14,.0f} bars/s "
          f"({a['general']['bars']:,} bars)")
    print(f"  backtrader                 {btr:>14,.0f} bars/s ({res['backtrader']['bars']:,} bars)")
    for eng, v in res["vectorbt"].items():
        if isinstance(v, dict):
            print(f"  vectorbt {eng:6s}" + (f" error: {v['error']}" if "error" in v else
                  f"  simulation {v['simulation_bars_per_s']:>14,.0f} bars/s   with signals "
                  f"{v['signals_and_simulation_bars_per_s']:>14,.0f} bars/s"))
    print(json.dumps(res["ratios"], indent=2))
    print(json.dumps(res["targets"], indent=2))


if __name__ == "__main__":
    main()
