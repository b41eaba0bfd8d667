"""Event-log benchmark: batched append, group commit, Cython scan, each next to a py-lmdb baseline.

    python benchmarks/bench_log.py [--json] [--events N] [--durability safe|fast] [--dir PATH]

Figures (every one is measured in this run, next to its baseline; "best of" is --runs, default 3):

  append_batched_events_per_s      N Trade events, pre-encoded with codec.encode_columns into
                                   100,000-event structured arrays, one EventLog.append (one durable
                                   write transaction) per array, on a fresh log; best of 3 (the median
                                   is reported too). Encoding is NOT included; it is timed on its own
                                   (encode_events_per_s) and both together are reported as
                                   append_batched_incl_encode_events_per_s.
  lmdb_putmulti_baseline_events_per_s
                                   the same 64-byte records in a fresh py-lmdb environment (same sync
                                   setting, same map size), one key per event (8-byte big-endian offset),
                                   cursor.putmulti(append=True), one transaction per 100,000 events; the
                                   (key, value) lists are built before timing. Runs alternate with the
                                   batched append's; best of 3 (and the median).
  scan_events_per_s                EventLog.scan(ScanCounter(), 0) over the whole batched log: zero-copy,
                                   every chunk's XXH3-128 checksum verified; best of 3.
  lmdb_cursor_baseline_events_per_s
                                   a plain py-lmdb cursor loop (buffers=True) over the one-key-per-event
                                   environment, summing len(value); best of 3.
  append_single_group_commit_events_per_s
                                   16 asyncio producers, each appending single-Trade bodies through one
                                   GroupCommitter and awaiting the acknowledgement before the next;
                                   acknowledged events per second, on a fresh log (one run, default
                                   100,000 events).
  append_single_sequential_events_per_s
                                   baseline: one producer, one EventLog.append (one durable transaction)
                                   per single-Trade body.
  lmdb_commit16_ceiling_events_per_s
                                   ceiling: raw py-lmdb, one write transaction of 16 single-record puts
                                   each, same sync setting. With one append in flight per producer a
                                   group holds at most 16 events, so this bounds any group committer here.

Temporary directories are created under --dir (default: the system temp dir) and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lmdb
import numpy as np

from argus.events import codec
from argus.events.types import EventType
from argus.kernels import walker
from argus.log import EventLog, GroupCommitter

BATCH = 100_000
MAP_SIZE = 4 << 30  # pre-sized for both the log and the baseline, so neither grows its map while timed
RUNS = 3  # batched append, putmulti, scan and cursor: best of RUNS
GC_PRODUCERS = 16
GC_WINDOW = 4  # appends in flight per producer in the windowed group-commit run
T0 = 1_709_560_800_000_000_000  # 2024-03-04 14:00 UTC in ns: a fixed start, no wall clock in the data


# -- data ------------------------------------------------------------------------------------------

def trade_columns(n: int, first: int, seed: int = 7) -> dict[str, np.ndarray]:
    """Deterministic trade columns for events [first, first + n)."""
    rng = np.random.default_rng(seed + first)
    idx = np.arange(first, first + n, dtype=np.int64)
    ts_event = T0 + idx * 1_000  # one trade per microsecond
    return dict(
        ts_event=ts_event,
        ts_recv=ts_event + 250_000 + rng.integers(0, 50_000, n),
        price=100.0 + np.cumsum(rng.normal(0.0, 0.01, n)).clip(-50.0, None),
        size=rng.integers(1, 500, n).astype(np.float64),
        trade_id=idx.astype(np.uint64),
        aggressor=rng.integers(1, 3, n).astype(np.uint32),
    )


def encode_batch(cols: dict[str, np.ndarray], instrument_id: int = 0) -> np.ndarray:
    return codec.encode_columns(EventType.TRADE, instrument_id, **cols)


# -- machine ---------------------------------------------------------------------------------------

def machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    return {"platform": platform.platform(), "cpu_model": model, "cores": cores, "usable_cores": usable,
            "python": sys.version.split()[0], "numpy": np.__version__, "py_lmdb": lmdb.__version__,
            "lmdb": ".".join(map(str, lmdb.version()))}


# -- measurements ----------------------------------------------------------------------------------

def _build_items(batches: list[np.ndarray]) -> list[list[tuple[bytes, bytes]]]:
    """The baseline's (key, value) lists, one per batch: 8-byte big-endian offset -> the 64-byte record."""
    groups = []
    offset = 0
    for b in batches:
        raw = b.tobytes()
        size = b.dtype.itemsize
        groups.append([((offset + i).to_bytes(8, "big"), raw[i * size:(i + 1) * size]) for i in range(len(b))])
        offset += len(b)
    return groups


def _append_log(path: Path, batches: list[np.ndarray], durability: str) -> tuple[float, object]:
    log = EventLog.open(path, durability=durability, map_size=MAP_SIZE)
    try:
        log.define_instrument("BENCH")  # trades need a defined instrument: it takes offset 0
        gc.collect()
        t = time.perf_counter()
        for b in batches:
            log.append(b)
        elapsed = time.perf_counter() - t
        return elapsed, log.info()
    finally:
        log.close()


def _putmulti(path: Path, groups: list[list[tuple[bytes, bytes]]], durability: str) -> float:
    sync = durability == "safe"
    env = lmdb.open(str(path), map_size=MAP_SIZE, sync=sync, metasync=sync, readahead=False, subdir=True)
    try:
        gc.collect()
        t = time.perf_counter()
        for items in groups:
            with env.begin(write=True) as txn:
                _consumed, added = txn.cursor().putmulti(items, append=True)
                assert added == len(items)
        return time.perf_counter() - t
    finally:
        env.close()


def bench_append(root: Path, events: int, durability: str, runs: int) -> tuple[dict, Path, Path]:
    """Batched append and its putmulti baseline, alternating, `runs` times each on fresh directories."""
    cols = [trade_columns(min(BATCH, events - first), first) for first in range(0, events, BATCH)]
    encode_s, append_s, put_s = [], [], []
    groups = None
    log_path = lmdb_path = None
    for run in range(runs):
        t = time.perf_counter()
        batches = [encode_batch(c) for c in cols]
        encode_s.append(time.perf_counter() - t)
        if groups is None:
            groups = _build_items(batches)  # built once, before any timing, reused by every run
        if run:  # keep only the last run's directories (the scans read them)
            shutil.rmtree(log_path)
            shutil.rmtree(lmdb_path)
        log_path = root / f"log{run}"
        elapsed, info = _append_log(log_path, batches, durability)
        append_s.append(elapsed)
        assert info.events == events + 1, (info.events, events)
        lmdb_path = root / f"lmdb{run}"
        put_s.append(_putmulti(lmdb_path, groups, durability))
    baseline_bytes = os.path.getsize(lmdb_path / "data.mdb")
    incl = [e + a for e, a in zip(encode_s, append_s, strict=True)]
    return {
        "append_batched_events_per_s": events / min(append_s),
        "append_batched_includes_encode": False,
        "append_batched_seconds_runs": append_s,
        "encode_events_per_s": events / min(encode_s),
        "encode_seconds_runs": encode_s,
        "append_batched_incl_encode_events_per_s": events / min(incl),
        "lmdb_putmulti_baseline_events_per_s": events / min(put_s),
        "lmdb_putmulti_seconds_runs": put_s,
        "append_batched_median_events_per_s": events / statistics.median(append_s),
        "lmdb_putmulti_median_events_per_s": events / statistics.median(put_s),
        "bytes_per_event": info.bytes / info.events,
        "log_events": info.events,
        "log_chunks": info.chunks,
        "log_file_bytes_per_event": os.path.getsize(log_path / "data.mdb") / info.events,
        "lmdb_baseline_file_bytes_per_event": baseline_bytes / events,
    }, log_path, lmdb_path


def bench_scan(path: Path, events: int, runs: int) -> dict:
    log = EventLog.open(path, readonly=True, map_size=MAP_SIZE)
    try:
        times = []
        for _ in range(runs):
            counter = walker.ScanCounter()
            t = time.perf_counter()
            end = log.scan(counter, 0)
            times.append(time.perf_counter() - t)
            assert end == events + 1, (end, events)
            assert counter.events == events + 1 and counter.trades == events, (counter.events, counter.trades)
    finally:
        log.close()
    return {"scan_events_per_s": (events + 1) / min(times), "scan_seconds_runs": times}


def bench_cursor(path: Path, events: int, runs: int) -> dict:
    env = lmdb.open(str(path), map_size=MAP_SIZE, readonly=True, readahead=False, subdir=True)
    try:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            n = 0
            total = 0
            with env.begin(buffers=True) as txn:
                for _k, v in txn.cursor():
                    total += len(v)
                    n += 1
            times.append(time.perf_counter() - t)
            assert n == events and total == events * 64, (n, total)
    finally:
        env.close()
    return {"lmdb_cursor_baseline_events_per_s": events / min(times), "lmdb_cursor_seconds_runs": times}


async def _group_commit(log: EventLog, bodies: list[bytes], producers: int,
                        window: int = 1) -> tuple[float, int, int]:
    """`producers` asyncio producers, each with `window` single-event appends in flight (1: each
    awaits its acknowledgement before sending the next)."""
    async with GroupCommitter(log) as committer:
        async def in_flight(mine: list[bytes]) -> int:
            acked = 0
            for body in mine:
                res = await committer.append(body)
                acked += res.count
            return acked

        async def producer(mine: list[bytes]) -> int:
            return sum(await asyncio.gather(*(in_flight(mine[j::window]) for j in range(window))))

        parts = [bodies[i::producers] for i in range(producers)]
        t = time.perf_counter()
        acked = await asyncio.gather(*(producer(p) for p in parts))
        elapsed = time.perf_counter() - t
        groups, appends = committer.groups, committer.appends
    assert sum(acked) == len(bodies)
    return elapsed, groups, appends


def bench_group_commit(root: Path, events: int, sequential_events: int, durability: str) -> dict:
    recs = encode_batch(trade_columns(events + sequential_events, 0, seed=11))
    raw = recs.tobytes()
    size = recs.dtype.itemsize
    bodies = [raw[i * size:(i + 1) * size] for i in range(events + sequential_events)]
    gc_bodies, seq_bodies = bodies[:events], bodies[events:]

    log = EventLog.open(root / "gc", durability=durability, map_size=MAP_SIZE)
    try:
        log.define_instrument("BENCH")
        gc.collect()
        elapsed, groups, appends = asyncio.run(_group_commit(log, gc_bodies, GC_PRODUCERS))
        info = log.info()
        gc.collect()
        w_elapsed, w_groups, w_appends = asyncio.run(_group_commit(log, gc_bodies, GC_PRODUCERS, GC_WINDOW))
        # Baseline: the same single-event appends, one producer, one transaction each.
        gc.collect()
        t = time.perf_counter()
        for body in seq_bodies:
            log.append(body)
        seq_s = time.perf_counter() - t
        assert log.head() == 1 + 2 * events + sequential_events
    finally:
        log.close()

    # Ceiling: raw py-lmdb, one write transaction of GC_PRODUCERS single-record puts each (same sync
    # setting). With one append in flight per producer a group holds at most GC_PRODUCERS events, so no
    # group committer on this disk can acknowledge more than this.
    sync = durability == "safe"
    env = lmdb.open(str(root / "ceiling"), map_size=MAP_SIZE, sync=sync, metasync=sync, readahead=False)
    try:
        n_groups = max(1, sequential_events // 2)
        items = [(i.to_bytes(8, "big"), bodies[i % len(bodies)]) for i in range(n_groups * GC_PRODUCERS)]
        gc.collect()
        t = time.perf_counter()
        for g in range(n_groups):
            with env.begin(write=True) as txn:
                cur = txn.cursor()
                for k, v in items[g * GC_PRODUCERS:(g + 1) * GC_PRODUCERS]:
                    cur.put(k, v, append=True)
        ceiling_s = time.perf_counter() - t
    finally:
        env.close()
    return {
        "append_single_group_commit_events_per_s": events / elapsed,
        "group_commit_events": events,
        "group_commit_producers": GC_PRODUCERS,
        "group_commit_seconds": elapsed,
        "group_commit_groups": groups,
        "group_commit_avg_group_size": appends / groups,
        "group_commit_us_per_commit": elapsed / groups * 1e6,
        "group_commit_bytes_per_event": info.bytes / info.events,
        "append_single_group_commit_window_events_per_s": events / w_elapsed,
        "group_commit_window": GC_WINDOW,
        "group_commit_window_avg_group_size": w_appends / w_groups,
        "append_single_sequential_events_per_s": sequential_events / seq_s,
        "append_single_sequential_events": sequential_events,
        "lmdb_commit16_ceiling_events_per_s": n_groups * GC_PRODUCERS / ceiling_s,
        "lmdb_commit_us": ceiling_s / n_groups * 1e6,
    }


def run(events: int, durability: str, base_dir: str | None, gc_events: int, seq_events: int,
        runs: int = RUNS) -> dict:
    out: dict = {"events": events, "durability": durability, "batch": BATCH, "record_bytes": 64, "runs": runs,
                 "machine": machine()}
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="argus-bench-", dir=base_dir))
    try:
        appended, log_path, lmdb_path = bench_append(root, events, durability, runs)
        out.update(appended)
        out.update(bench_scan(log_path, events, runs))
        out.update(bench_cursor(lmdb_path, events, runs))
        shutil.rmtree(log_path)
        shutil.rmtree(lmdb_path)
        out.update(bench_group_commit(root, gc_events, seq_events, durability))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["append_vs_putmulti"] = out["append_batched_events_per_s"] / out["lmdb_putmulti_baseline_events_per_s"]
    out["append_vs_putmulti_median"] = (out["append_batched_median_events_per_s"]
                                        / out["lmdb_putmulti_median_events_per_s"])
    out["scan_vs_cursor"] = out["scan_events_per_s"] / out["lmdb_cursor_baseline_events_per_s"]
    out["group_commit_vs_sequential"] = (out["append_single_group_commit_events_per_s"]
                                         / out["append_single_sequential_events_per_s"])
    out["group_commit_vs_ceiling"] = (out["append_single_group_commit_events_per_s"]
                                      / out["lmdb_commit16_ceiling_events_per_s"])
    out["total_seconds"] = time.perf_counter() - started
    return out


# -- output ----------------------------------------------------------------------------------------

def _fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:,.2f} M/s"
    return f"{v / 1e3:,.1f} k/s"


def table(r: dict) -> str:
    m = r["machine"]
    p = r["group_commit_producers"]
    rows = [
        ("batched append (encode excluded)", r["append_batched_events_per_s"],
         "py-lmdb putmulti, 1 key/event", r["lmdb_putmulti_baseline_events_per_s"], r["append_vs_putmulti"]),
        ("Cython scan (checksums verified)", r["scan_events_per_s"],
         "py-lmdb cursor loop, buffers=True", r["lmdb_cursor_baseline_events_per_s"], r["scan_vs_cursor"]),
        (f"group commit, {p} producers, acked", r["append_single_group_commit_events_per_s"],
         "sequential EventLog.append, 1 event", r["append_single_sequential_events_per_s"],
         r["group_commit_vs_sequential"]),
        ("", None, f"py-lmdb ceiling, {p} puts/commit", r["lmdb_commit16_ceiling_events_per_s"],
         r["group_commit_vs_ceiling"]),
        (f"group commit, {p} x {r['group_commit_window']} in flight", r["append_single_group_commit_window_events_per_s"],
         "sequential EventLog.append, 1 event", r["append_single_sequential_events_per_s"],
         r["append_single_group_commit_window_events_per_s"] / r["append_single_sequential_events_per_s"]),
    ]
    lines = [
        f"Argus event log benchmark: {r['events']:,} Trade events (64-byte records), "
        f"durability={r['durability']}, best of {r['runs']}",
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['platform']}, Python {m['python']}, "
        f"py-lmdb {m['py_lmdb']} (LMDB {m['lmdb']})",
        "",
        f"{'measure':<38}{'events/s':>14}   {'baseline':<38}{'events/s':>14}{'ratio':>9}",
        "-" * 113,
    ]
    for name, v, bname, b, ratio in rows:
        lines.append(f"{name:<38}{_fmt(v) if v is not None else '':>14}   {bname:<38}{_fmt(b):>14}{ratio:>8.2f}x")
    lines += [
        "",
        f"batched append, median of {r['runs']}: {_fmt(r['append_batched_median_events_per_s'])} vs putmulti "
        f"{_fmt(r['lmdb_putmulti_median_events_per_s'])} ({r['append_vs_putmulti_median']:.2f}x)",
        f"encode_columns alone: {_fmt(r['encode_events_per_s'])}; "
        f"batched append incl. encode: {_fmt(r['append_batched_incl_encode_events_per_s'])}",
        f"group commit: {r['group_commit_events']:,} events in {r['group_commit_groups']:,} transactions, "
        f"avg group size {r['group_commit_avg_group_size']:.2f}, {r['group_commit_us_per_commit']:.0f} us per group "
        f"(py-lmdb commit alone: {r['lmdb_commit_us']:.0f} us); with {r['group_commit_window']} in flight per "
        f"producer: avg group size {r['group_commit_window_avg_group_size']:.1f}",
        f"bytes per event: batched log {r['bytes_per_event']:.2f} ({r['log_chunks']} chunks), "
        f"group-commit log {r['group_commit_bytes_per_event']:.2f}; data.mdb per event: log "
        f"{r['log_file_bytes_per_event']:.2f}, py-lmdb 1 key/event {r['lmdb_baseline_file_bytes_per_event']:.2f}",
        f"total run time: {r['total_seconds']:.1f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--events", type=int, default=2_000_000, help="events for the batched append and scan")
    p.add_argument("--durability", choices=("safe", "fast"), default="safe")
    p.add_argument("--dir", default=None, help="directory to create the temporary logs in")
    p.add_argument("--gc-events", type=int, default=100_000,
                   help="acknowledged single-event appends for the group-commit figure")
    p.add_argument("--seq-events", type=int, default=2_000,
                   help="single-event appends for the sequential baseline of group commit")
    p.add_argument("--runs", type=int, default=RUNS, help="runs of the append, putmulti, scan and cursor (best of)")
    a = p.parse_args(argv)
    if a.events < 1 or a.gc_events < GC_PRODUCERS or a.seq_events < 2 or a.runs < 1:
        p.error("--events and --runs must be >= 1, --seq-events >= 2, --gc-events >= 16")
    r = run(a.events, a.durability, a.dir, a.gc_events, a.seq_events, a.runs)
    print(json.dumps(r, indent=2) if a.json else table(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
