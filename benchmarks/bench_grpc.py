"""gRPC event-log benchmark: append, subscribe fan-out and append-to-subscriber latency over loopback.

    python benchmarks/bench_grpc.py [--json] [--durability fast|safe] [--producers 4] [--batches 25]
                                    [--batch-events 10000] [--latency-seconds 3] [--dir PATH]

A real server subprocess (`argusctl --data DIR serve --port 0 --durability D`) on 127.0.0.1, driven by
argus.client.ArgusClient. Figures (all measured in this run):

  baseline_inprocess_append_events_per_s
                             the same pre-encoded batches (Trade records, --batch-events per batch),
                             one EventLog.append each, in this process, on a fresh log with the same
                             durability: the ceiling the server's append path is measured against.
  append_events_per_s        --producers clients (own channels, one process), each sending --batches
                             batches of --batch-events Trades as `records` over one pipelined
                             AppendStream; acknowledged events / wall time.
  subscribe_1_events_per_s   one subscriber process, Subscribe (records format, not decoded) from offset 1
                             until it has the whole log.
  subscribe_8_*              8 subscriber processes at once: each one's events/s (min / mean) and their sum.
  latency_p50_ms / p99_ms    offered load of 10,000 events/s: 100 Trades per message every 10 ms, each
                             event's ts_recv = send time (time.time_ns()); a live subscriber records
                             receive time - ts_recv for every event. Sender and subscriber share a process.

Targets printed alongside: append >= 1,000,000 events/s, one subscriber >= 3,000,000 events/s, p99 < 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus.client import ArgusClient  # noqa: E402
from argus.events import codec, layout  # noqa: E402
from argus.events.types import EventType  # noqa: E402
from argus.log import EventLog  # noqa: E402
from argus.log.store import instrument_event  # noqa: E402

TRADE = layout.RECORD_DTYPES[EventType.TRADE]
TARGETS = {"append_events_per_s": 1_000_000, "subscribe_1_events_per_s": 3_000_000, "latency_p99_ms": 5.0}


def trades(n: int, start: int = 0, ts_recv: np.ndarray | int | None = None) -> np.ndarray:
    i = np.arange(start, start + n, dtype=np.int64)
    return codec.encode_columns(EventType.TRADE, 0, ts_event=i + 1, ts_recv=i + 1 if ts_recv is None else ts_recv,
                                price=100.0 + (i % 100) * 0.01, size=1.0, trade_id=i, aggressor=1)


def start_server(data: Path, durability: str) -> tuple[subprocess.Popen, str, str]:
    """The server process, its target, and how it was started."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "argus.cli.main", "--data", str(data), "serve", "--port", "0",
           "--durability", durability]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.removeprefix("listening on "), f"argusctl serve --durability {durability}"


def baseline_append(path: Path, batches: list[bytes], durability: str) -> float:
    with EventLog.open(path, durability=durability) as log:
        log.append([instrument_event(0, "BENCH")])
        t0 = time.perf_counter()
        for b in batches:
            log.append(b)
        dt = time.perf_counter() - t0
    return sum(len(b) // TRADE.itemsize for b in batches) / dt


async def bench_append(target: str, producers: int, batches: list[bytes]) -> float:
    clients = [await ArgusClient.connect(target) for _ in range(producers)]
    try:
        async def produce(c: ArgusClient) -> int:
            return sum([r.count async for r in c.append_stream(batches)])

        t0 = time.perf_counter()
        counts = await asyncio.gather(*(produce(c) for c in clients))
        dt = time.perf_counter() - t0
    finally:
        for c in clients:
            await c.close()
    return sum(counts) / dt


def _subscriber(target: str, until: int, barrier, out) -> None:
    async def run() -> float:
        client = await ArgusClient.connect(target)
        try:
            barrier.wait()
            t0 = time.perf_counter()
            # From offset 1: every record after the InstrumentDefined at 0 is a fixed-width Trade.
            async for first, body in client.subscribe_records(1):
                if first + len(body) // TRADE.itemsize >= until:
                    break
            return (until - 1) / (time.perf_counter() - t0)
        finally:
            await client.close()

    out.put(asyncio.run(run()))


async def _head(target: str) -> int:
    async with await ArgusClient.connect(target) as c:
        return await c.head()


def bench_subscribe(target: str, n_subs: int) -> list[float]:
    until = asyncio.run(_head(target))
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(n_subs), ctx.Queue()
    procs = [ctx.Process(target=_subscriber, args=(target, until, barrier, out)) for _ in range(n_subs)]
    for p in procs:
        p.start()
    rates = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    return rates


async def bench_latency(target: str, seconds: float, per_msg: int = 100, period: float = 0.010) -> dict:
    sender, receiver = await ArgusClient.connect(target), await ArgusClient.connect(target)
    lat: list[np.ndarray] = []
    expected = int(seconds / period) * per_msg
    try:
        start = await receiver.head()

        async def receive() -> None:
            got = 0
            async for _, body in receiver.subscribe_records(start):
                now = time.time_ns()
                recs = np.frombuffer(body, dtype=TRADE)
                lat.append(now - recs["ts_recv"])
                got += len(recs)
                if got >= expected:
                    return

        task = asyncio.ensure_future(receive())
        await asyncio.sleep(0.2)
        loop = asyncio.get_running_loop()
        t_next = loop.time()
        for k in range(expected // per_msg):
            t_next += period
            await sender.append(trades(per_msg, k * per_msg, ts_recv=time.time_ns()))
            await asyncio.sleep(max(0.0, t_next - loop.time()))
        await asyncio.wait_for(task, 30)
    finally:
        await sender.close()
        await receiver.close()
    ms = np.concatenate(lat) / 1e6
    return {"latency_events": int(len(ms)), "latency_p50_ms": float(np.percentile(ms, 50)),
            "latency_p99_ms": float(np.percentile(ms, 99)), "latency_max_ms": float(ms.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--durability", choices=["fast", "safe"], default="safe")
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--batches", type=int, default=25, help="batches per producer")
    ap.add_argument("--batch-events", type=int, default=10_000)
    ap.add_argument("--latency-seconds", type=float, default=3.0)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="argus-bench-grpc-", dir=args.dir))
    batches = [trades(args.batch_events, k * args.batch_events).tobytes() for k in range(args.batches)]
    res: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "durability": args.durability,
                 "producers": args.producers, "batch_events": args.batch_events,
                 "append_events": args.producers * args.batches * args.batch_events}
    proc = None
    try:
        res["baseline_inprocess_append_events_per_s"] = baseline_append(
            tmp / "baseline", batches * args.producers, args.durability)
        (tmp / "data").mkdir()
        proc, target, res["server"] = start_server(tmp / "data", args.durability)

        async def setup() -> None:
            async with await ArgusClient.connect(target) as c:
                await c.append([instrument_event(0, "BENCH")])

        asyncio.run(setup())
        res["append_events_per_s"] = asyncio.run(bench_append(target, args.producers, batches))
        res["subscribe_1_events_per_s"] = bench_subscribe(target, 1)[0]
        rates = bench_subscribe(target, 8)
        res.update(subscribe_8_min_events_per_s=min(rates), subscribe_8_mean_events_per_s=sum(rates) / len(rates),
                   subscribe_8_total_events_per_s=sum(rates))
        res.update(asyncio.run(bench_latency(target, args.latency_seconds)))
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    res["targets"] = TARGETS
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"server: {res['server']} (baseline log: same durability); {res['cpus']} CPUs")
    rows = [
        ("in-process EventLog.append (baseline)", res["baseline_inprocess_append_events_per_s"], "events/s", ""),
        (f"gRPC append, {args.producers} producers", res["append_events_per_s"], "events/s", ">= 1,000,000"),
        ("gRPC subscribe, 1 subscriber", res["subscribe_1_events_per_s"], "events/s", ">= 3,000,000"),
        ("gRPC subscribe, 8 subscribers: min each", res["subscribe_8_min_events_per_s"], "events/s", ""),
        ("gRPC subscribe, 8 subscribers: total", res["subscribe_8_total_events_per_s"], "events/s", ""),
        ("append->subscriber latency p50 @10k ev/s", res["latency_p50_ms"], "ms", ""),
        ("append->subscriber latency p99 @10k ev/s", res["latency_p99_ms"], "ms", "< 5"),
    ]
    for name, value, unit, target_txt in rows:
        print(f"{name:44s} {value:>14,.2f} {unit:9s} {('target ' + target_txt) if target_txt else ''}")


if __name__ == "__main__":
    main()
