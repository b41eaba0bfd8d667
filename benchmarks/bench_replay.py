"""Replay benchmark: the Cython reducers over >= 5 million trades of 50 instruments (1m and 5m bars,
the default indicators), next to baselines measured in the same run:

  (a) a straightforward pure-Python implementation of the same bars and indicators, on the first
      200,000 events (dicts and floats, one event at a time);
  (b) TA-Lib computing the same indicators in batch on the bars the replay produced;
  and the time to restore every reducer from a snapshot.

Usage: python benchmarks/bench_replay.py [--json] [--events N] [--instruments K]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from argus.events import codec
from argus.events.types import EventType
from argus.log import EventLog
from argus.log.store import instrument_event
from argus.projections.config import load_config
from argus.projections.engine import ProjectionEngine, Projections

MINUTE = 60_000_000_000
DAY0 = 1_709_818_200_000_000_000  # 2024-03-07 13:30 UTC (09:30 New York)
BATCH = 500_000


def write_log(path: Path, events: int, instruments: int, seed: int = 5) -> None:
    """Trades of `instruments` random walks, interleaved in time, 6.5-hour days."""
    rng = np.random.Generator(np.random.Philox(key=seed))
    per_day = 390 * MINUTE
    with EventLog.open(path, durability="fast") as log:
        log.append([instrument_event(i, f"SYM{i:02d}", ts=DAY0) for i in range(instruments)])
        prices = 50.0 + 450.0 * rng.random(instruments)
        step = 5 * per_day / events  # five trading days in all
        for first in range(0, events, BATCH):
            n = min(BATCH, events - first)
            k = np.arange(first, first + n)
            day, within = np.divmod((k * step).astype(np.int64), per_day)
            ts = DAY0 + day * 86_400_000_000_000 + within
            iid = rng.integers(0, instruments, n).astype(np.uint32)
            rets = rng.normal(0.0, 0.0004, n)
            px = np.empty(n)
            for i in range(instruments):  # per-instrument random walks, vectorised
                m = iid == i
                px[m] = prices[i] * np.exp(np.cumsum(rets[m]))
                if m.any():
                    prices[i] = px[m][-1]
            size = rng.integers(1, 500, n).astype(np.float64)
            recs = codec.encode_columns(EventType.TRADE, iid, ts, ts + 1000, price=np.round(px, 2), size=size,
                                        trade_id=k.astype(np.uint64))
            log.append(recs)


# -- (a) the pure-Python baseline -------------------------------------------------------------------

class PyIndicators:
    """The default indicator set, one closed bar at a time, in plain Python (TA-Lib's definitions)."""

    def __init__(self) -> None:
        self.closes: list[float] = []
        self.highs: list[float] = []
        self.lows: list[float] = []
        self.ema: dict[int, float | None] = {12: None, 26: None}
        self.macd_hist: list[float] = []
        self.signal: float | None = None
        self.gain = self.loss = 0.0
        self.atr: float | None = None
        self.trs: list[float] = []
        self.pdm = self.mdm = self.tr14 = 0.0
        self.dxs: list[float] = []
        self.adx: float | None = None
        self.cum_pv = self.cum_v = 0.0

    def update(self, o: float, h: float, lo: float, c: float, v: float, vwap: float) -> list[float]:
        nan = math.nan
        self.closes.append(c)
        self.highs.append(h)
        self.lows.append(lo)
        n = len(self.closes)
        out = []
        window = self.closes[-20:]
        sma = sum(window) / 20 if n >= 20 else nan
        out.append(sma)
        for p in (12, 26):
            if n == p:
                self.ema[p] = sum(self.closes[-p:]) / p
            elif n > p:
                self.ema[p] += 2 / (p + 1) * (c - self.ema[p])
            out.append(self.ema[p] if n >= p else nan)
        if n >= 2:
            d = c - self.closes[-2]
            g, lo_ = max(d, 0.0), max(-d, 0.0)
            if n <= 15:
                self.gain += g / 14
                self.loss += lo_ / 14
            else:
                self.gain = (self.gain * 13 + g) / 14
                self.loss = (self.loss * 13 + lo_) / 14
        out.append(100 * self.gain / (self.gain + self.loss) if n >= 15 and self.gain + self.loss else nan)
        macd = self.ema[12] - self.ema[26] if n >= 26 else nan
        if n >= 26:
            self.macd_hist.append(macd)
            if len(self.macd_hist) == 9:
                self.signal = sum(self.macd_hist) / 9
            elif len(self.macd_hist) > 9:
                self.signal += 0.2 * (macd - self.signal)
        sig = self.signal if self.signal is not None else nan
        out += [macd, sig, macd - sig]
        if n >= 2:
            tr = max(h - lo, abs(h - self.closes[-2]), abs(lo - self.closes[-2]))
            self.trs.append(tr)
            if len(self.trs) == 14:
                self.atr = sum(self.trs) / 14
            elif len(self.trs) > 14:
                self.atr = (self.atr * 13 + tr) / 14
            up, down = h - self.highs[-2], self.lows[-2] - lo
            pdm = up if up > down and up > 0 else 0.0
            mdm = down if down > up and down > 0 else 0.0
            if len(self.trs) <= 14:
                self.pdm += pdm
                self.mdm += mdm
                self.tr14 += tr
            else:
                self.pdm += pdm - self.pdm / 14
                self.mdm += mdm - self.mdm / 14
                self.tr14 += tr - self.tr14 / 14
            if len(self.trs) >= 14 and self.tr14:
                pdi, mdi = 100 * self.pdm / self.tr14, 100 * self.mdm / self.tr14
                self.dxs.append(100 * abs(pdi - mdi) / (pdi + mdi) if pdi + mdi else 0.0)
                if len(self.dxs) == 14:
                    self.adx = sum(self.dxs) / 14
                elif len(self.dxs) > 14:
                    self.adx = (self.adx * 13 + self.dxs[-1]) / 14
        out.append(self.atr if self.atr is not None else nan)
        if n >= 20:
            sd = math.sqrt(sum((x - sma) ** 2 for x in window) / 20)
            out += [sma + 2 * sd, sma, sma - 2 * sd]
        else:
            out += [nan, nan, nan]
        out.append(self.adx if self.adx is not None else nan)
        self.cum_pv += vwap * v
        self.cum_v += v
        out.append(self.cum_pv / self.cum_v if self.cum_v else nan)
        if n >= 21:
            rets = [math.log(self.closes[i] / self.closes[i - 1]) for i in range(n - 20, n)]
            mean = sum(rets) / 20
            out.append(math.sqrt(sum((r - mean) ** 2 for r in rets) / 19) * math.sqrt(252))
        else:
            out.append(nan)
        return out


_TRADE_HEAD = struct.Struct("<IHBBIIqq dd")


def decode_trades(log: EventLog, events: int) -> list[tuple[int, int, float, float]]:
    """(instrument, ts_event, price, size) of the trades among the first `events` records, read from
    the log's chunks with struct: the straightforward pure-Python way to read it."""
    out = []
    with log.reader() as reader:
        for chunk in reader.chunks(0, events):
            body = chunk.body
            pos = 0
            for offset in range(chunk.first_offset, chunk.stop):
                length, typ = struct.unpack_from("<IH", body, pos)
                if typ == EventType.TRADE and offset >= chunk.start:
                    _, _, _, _, iid, _, ts, _, px, sz = _TRADE_HEAD.unpack_from(body, pos)
                    out.append((iid, ts, px, sz))
                pos += length
    return out


def python_replay(log: EventLog, events: int, include_decode: bool) -> tuple[float, int]:
    """Bars (1m, 5m) and the default indicators, in plain Python, over the first `events` events;
    with include_decode the timed part also reads the records from the log."""
    intervals = (MINUTE, 5 * MINUTE)
    open_bars: dict[tuple[int, int], list] = {}
    indicators: dict[tuple[int, int], PyIndicators] = {}
    closed = 0
    t0 = time.perf_counter()
    trades = decode_trades(log, events)
    if not include_decode:
        t0 = time.perf_counter()
    for iid, ts, px, sz in trades:
        for spec, iv in enumerate(intervals):
            start = ts - ts % iv
            key = (iid, spec)
            bar = open_bars.get(key)
            if bar is not None and start > bar[0]:
                o, h, lo, c, v, pv = bar[1:7]
                indicators.setdefault(key, PyIndicators()).update(o, h, lo, c, v, pv / v)
                closed += 1
                bar = None
            if bar is None:
                open_bars[key] = [start, px, px, px, px, sz, px * sz]
            else:
                bar[2] = max(bar[2], px)
                bar[3] = min(bar[3], px)
                bar[4] = px
                bar[5] += sz
                bar[6] += px * sz
    return time.perf_counter() - t0, closed


# -- (b) TA-Lib in batch ------------------------------------------------------------------------------

def talib_batch(bars: np.ndarray) -> float:
    import talib

    t0 = time.perf_counter()
    for iid in np.unique(bars["instrument_id"]):
        for spec in (0, 1):
            b = bars[(bars["instrument_id"] == iid) & (bars["spec"] == spec)]
            h, lo, c = b["high"], b["low"], b["close"]
            talib.SMA(c, 20)
            talib.EMA(c, 12)
            talib.EMA(c, 26)
            talib.RSI(c, 14)
            talib.MACD(c, 12, 26, 9)
            talib.ATR(h, lo, c, 14)
            talib.BBANDS(c, 20, 2, 2, 0)
            talib.ADX(h, lo, c, 14)
    return time.perf_counter() - t0


def run(events: int, instruments: int, python_events: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="argus-bench-replay-"))
    try:
        t0 = time.perf_counter()
        write_log(root / "log", events, instruments)
        write_s = time.perf_counter() - t0
        config = load_config({"bars": ["1m", "5m"], "indicators": "default", "positions": False,
                              "sessions": False, "regimes": False, "bocpd": False, "outcomes": False,
                              "hmm": False, "risk_flow": False, "market_regime": False,
                              "snapshot_every": 10**12})
        # The same with every regime projection on: session tags, volatility/trend regimes, BOCPD, outcomes,
        # the HMM filter (no parameters recorded in this log: it emits nothing), risk flow, market regime.
        config_regimes = load_config({"bars": ["1m", "5m"], "indicators": "default", "positions": False,
                                      "snapshot_every": 10**12})
        with EventLog.open(root / "log", readonly=True) as log:
            total = log.head()
            engine = ProjectionEngine(log, config)
            runs = []
            for _ in range(3):
                runs.append(engine.replay(snapshots=False).seconds)
            best = min(runs)
            regimes_engine = ProjectionEngine(log, config_regimes)
            regimes_best = min(regimes_engine.replay(snapshots=False).seconds for _ in range(3))
            # Once more, by hand, to collect the bars for TA-Lib and a snapshot of every reducer.
            engine2 = Projections(config)
            collected = []
            with log.reader() as reader:
                for chunk in reader.chunks(0):
                    engine2.bars.apply_chunk(chunk.body, chunk.first_offset, chunk.start, chunk.stop)
                    collected.append(engine2.bars.out.drain())
                    dict(engine2.indicators.outputs())["indicators"].drain()
            bars = np.concatenate(collected)
            snaps = [r.snapshot() for r in engine2.all]
            restore_times = []
            for _ in range(5):
                fresh = Projections(config)
                t = time.perf_counter()
                for r, s in zip(fresh.all, snaps, strict=True):
                    r.restore(s)
                restore_times.append(time.perf_counter() - t)
            py_s, _ = python_replay(log, python_events, include_decode=True)
            py_only_s, _ = python_replay(log, python_events, include_decode=False)
        ta_s = talib_batch(bars)
        cy_rate = total / best
        py_rate = python_events / py_s
        py_only_rate = python_events / py_only_s
        return {
            "events": total, "instruments": instruments, "bars": int(len(bars)),
            "replay_events_per_s": cy_rate, "replay_seconds_runs": runs,
            "replay_with_regimes_events_per_s": total / regimes_best,
            "python_reducer_events": python_events, "python_reducer_events_per_s": py_rate,
            "replay_vs_python": cy_rate / py_rate,
            "python_reducer_only_events_per_s": py_only_rate,
            "replay_vs_python_reducer_only": cy_rate / py_only_rate,
            "talib_batch_seconds": ta_s, "talib_bars_per_s": len(bars) / ta_s,
            "replay_bars_per_s": len(bars) / best,
            "snapshot_restore_ms": min(restore_times) * 1000,
            "snapshot_bytes": sum(len(s) for s in snaps),
            "log_write_seconds": write_s,
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--instruments", type=int, default=50)
    parser.add_argument("--python-events", type=int, default=200_000)
    args = parser.parse_args()
    r = run(args.events, args.instruments, args.python_events)
    if args.json:
        print(json.dumps(r))
        return
    print(f"replay: {r['events']:,} events, {r['instruments']} instruments, 1m+5m bars + default indicators")
    print(f"  Cython replay (one core)     {r['replay_events_per_s'] / 1e6:8.2f} M events/s  (best of 3)")
    print(f"  ... with regimes on          {r['replay_with_regimes_events_per_s'] / 1e6:8.2f} M events/s  "
          "(+ session tags, vol/trend regimes, BOCPD, outcomes)")
    print(f"  pure-Python, reading the log {r['python_reducer_events_per_s'] / 1e6:8.3f} M events/s  "
          f"(first {r['python_reducer_events']:,} events, struct.unpack per record) -> {r['replay_vs_python']:.0f}x")
    print(f"  pure-Python, reducers only   {r['python_reducer_only_events_per_s'] / 1e6:8.3f} M events/s  "
          f"(records decoded before the clock starts) -> {r['replay_vs_python_reducer_only']:.0f}x")
    print(f"  bars produced {r['bars']:,}: replay {r['replay_bars_per_s'] / 1e6:.2f} M bars/s incl. bar building; "
          f"TA-Lib batch indicators {r['talib_bars_per_s'] / 1e6:.2f} M bars/s")
    print(f"  snapshot restore of all reducers: {r['snapshot_restore_ms']:.2f} ms ({r['snapshot_bytes']:,} bytes)")


if __name__ == "__main__":
    main()
