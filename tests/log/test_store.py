"""The LMDB event log: appends, reads, atomicity, concurrency keys, corruption, growth, processes."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from argus.errors import (
    CorruptLogError,
    EventValidationError,
    ForkedEnvironmentError,
    LogLockedError,
    ProducerSequenceError,
    WrongExpectedHeadError,
)
from argus.events import codec
from argus.events.codec import Event
from argus.events.types import EventType
from argus.kernels.walker import ScanCounter
from argus.log import EventLog
from argus.log.store import instrument_event
from tests.log.helpers import TS, trade_ids, trades


def test_empty_log_has_head_zero_and_verifies(log) -> None:
    assert log.head() == 0
    report = log.verify()
    assert report.ok and report.events == 0 and report.chunks == 0


def test_appends_get_dense_offsets_from_zero(log) -> None:
    log.define_instrument("SPY")
    first = log.append(trades(10, 1))
    second = log.append(trades(5, 11))
    assert list(first.offsets) == list(range(1, 11))
    assert list(second.offsets) == list(range(11, 16))
    assert log.head() == 16
    assert trade_ids(log).tolist() == list(range(1, 16))


def test_batch_with_one_bad_event_writes_nothing(log) -> None:
    log.define_instrument("SPY")
    before = (log.head(), log.chain_head(), log.info())
    batch = trades(100, 1).copy()
    batch["price"][57] = -3.0
    with pytest.raises(EventValidationError) as err:
        log.append(batch)
    assert err.value.index == 57 and err.value.field == "price"
    assert (log.head(), log.chain_head(), log.info()) == before
    assert log.verify().ok


def test_batch_defining_an_instrument_then_failing_defines_nothing(log) -> None:
    body = codec.encode(instrument_event(0, "QQQ")) + codec.encode(
        Event(EventType.QUOTE, TS, TS, 0, {"bid": 2.0, "ask": 1.0}))
    with pytest.raises(EventValidationError):
        log.append(body)
    assert log.instrument_id("QQQ") is None and log.info().instruments == 0


def test_redefining_a_symbol_is_refused(log) -> None:
    log.define_instrument("SPY")
    with pytest.raises(EventValidationError, match="symbol"):
        log.append([instrument_event(1, "SPY")])
    assert log.define_instrument("SPY") == 0  # idempotent lookup, nothing appended
    assert log.head() == 1


def test_append_with_stale_expected_head_is_refused(log) -> None:
    log.define_instrument("SPY")
    log.append(trades(3, 1), expected_head=1)
    with pytest.raises(WrongExpectedHeadError) as err:
        log.append(trades(3, 4), expected_head=1)
    assert (err.value.expected, err.value.actual) == (1, 4)
    assert log.head() == 4


def test_retried_producer_batch_is_written_once(log) -> None:
    log.define_instrument("SPY")
    first = log.append(trades(4, 1), producer_id="feed-a", sequence=1)
    retry = log.append(trades(4, 1), producer_id="feed-a", sequence=1)
    assert retry.duplicate and retry.offsets == first.offsets
    nxt = log.append(trades(2, 5), producer_id="feed-a", sequence=2)
    assert nxt.first_offset == 5 and log.head() == 7
    with pytest.raises(ProducerSequenceError):
        log.append(trades(1, 9), producer_id="feed-a", sequence=1)
    other = log.append(trades(1, 7), producer_id="feed-b", sequence=1)  # sequences are per producer
    assert not other.duplicate and log.head() == 8


def test_read_from_any_offset_returns_exactly_the_range(tmp_path: Path) -> None:
    with EventLog.open(tmp_path / "log", max_chunk_bytes=4096) as lg:
        lg.define_instrument("SPY")
        for k in range(5):
            lg.append(trades(1000, 1 + 1000 * k))
        assert lg.info().chunks > 10  # small chunks: ranges start and stop inside chunks
        for start, stop in [(0, 1), (1, 5001), (63, 64), (1234, 4321), (4999, 5001), (5000, 9999)]:
            got = [off for off, _ in lg.events(start, stop - start)]
            assert got == list(range(start, min(stop, 5001)))
            counter = ScanCounter()
            end = lg.scan(counter, start, stop)
            assert counter.events == min(stop, 5001) - start and end == min(stop, 5001)
        assert trade_ids(lg, 2500).tolist() == list(range(2500, 5001))


def test_zero_copy_reader_walks_chunks_without_copies(log) -> None:
    log.define_instrument("SPY")
    log.append(trades(50_000, 1))
    with log.reader() as r:
        chunks = list(r.chunks(0))
        assert all(isinstance(c.body, memoryview) for c in chunks)
        assert sum(c.stop - c.start for c in chunks) == 50_001


def _flip_byte_in_file(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, "pattern not found in data.mdb"
    data[at + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_in_a_chunk_is_reported_by_verify_and_by_reads(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with EventLog.open(path) as lg:
        lg.define_instrument("SPY")
        batch = trades(1000, 1)
        batch["trade_id"][500] = 0xDEADBEEFCAFE
        lg.append(batch)
        lg.append(trades(10, 1001))
    _flip_byte_in_file(path / "data.mdb", (0xDEADBEEFCAFE).to_bytes(8, "little"))
    with EventLog.open(path, readonly=True) as lg:
        report = lg.verify()
        assert not report.ok
        assert any("checksum" in e for e in report.errors)
        with pytest.raises(CorruptLogError, match="checksum"):
            list(lg.events(0))
        with pytest.raises(CorruptLogError):
            lg.scan(ScanCounter(), 0)


def test_map_grows_past_its_initial_size(tmp_path: Path) -> None:
    with EventLog.open(tmp_path / "log", map_size=1 << 20) as lg:
        lg.define_instrument("SPY")
        for k in range(8):
            lg.append(trades(50_000, 1 + 50_000 * k))  # 3.2 MB each
        assert lg.env.info()["map_size"] > 1 << 20
        assert lg.head() == 400_001
        assert lg.verify().ok
    # A reader that opens with a smaller map size adopts the file's size.
    with EventLog.open(tmp_path / "log", readonly=True, map_size=1 << 20) as lg:
        assert trade_ids(lg, 399_990).tolist() == list(range(399_990, 400_001))


def test_second_writer_is_refused_while_the_first_is_open(tmp_path: Path) -> None:
    with EventLog.open(tmp_path / "log"):
        with pytest.raises(LogLockedError):
            EventLog.open(tmp_path / "log")
        code = f"from argus.log import EventLog; print(EventLog.open({str(tmp_path / 'log')!r}).head())"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0 and "LogLockedError" in other.stderr
    EventLog.open(tmp_path / "log").close()  # the lock is released on close


def test_readonly_open_of_a_missing_log_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no event log"):
        EventLog.open(tmp_path / "nothing", readonly=True)


def _use_after_fork(log: EventLog, queue) -> None:
    try:
        log.head()
        queue.put("no error")
    except ForkedEnvironmentError as exc:
        queue.put(f"refused: {exc}")


def test_environment_is_not_used_across_fork(log) -> None:
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_use_after_fork, args=(log, queue))
    proc.start()
    proc.join(30)
    assert queue.get(timeout=5).startswith("refused")
    assert log.head() == 0  # the parent's environment is unaffected


READER = textwrap.dedent("""
    import sys
    from argus.log import EventLog
    path, until = sys.argv[1], int(sys.argv[2])
    lg = EventLog.open(path, readonly=True, map_size=1 << 20)
    print("READY", flush=True)
    last, heads = 0, set()
    while last < until:
        with lg.reader() as r:
            head = r.head()
            seen = sum(c.stop - c.start for c in r.chunks(0))
        assert seen == head, (seen, head)  # a read transaction sees a whole prefix, never a torn append
        assert head >= last, (head, last)  # and the head never goes back
        last = head
        heads.add(head)
    print(len(heads), lg.env.info()["map_size"])
""")


def test_reader_processes_see_consistent_prefixes_during_writes_and_map_growth(tmp_path: Path) -> None:
    path = tmp_path / "log"
    total = 1 + 60 * 2000
    # The writer starts with a 1 MiB map and grows it while the readers read: they adopt the new size.
    with EventLog.open(path, durability="fast", map_size=1 << 20) as lg:
        lg.define_instrument("SPY")
        readers = [subprocess.Popen([sys.executable, "-c", READER, str(path), str(total)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for proc in readers:
            assert proc.stdout.readline().strip() == "READY", proc.stderr.read()
        for k in range(60):
            lg.append(trades(2000, 1 + 2000 * k))
            time.sleep(0.005)
        final_map = lg.env.info()["map_size"]
    assert final_map > 1 << 20
    for proc in readers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        distinct_heads, reader_map = map(int, out.split())
        assert distinct_heads > 2  # the reader really read while the writer wrote
        assert reader_map == final_map


def test_durability_mode_must_be_known(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        EventLog.open(tmp_path / "log", durability="yolo")


def test_stale_reader_slots_are_cleared_at_open(tmp_path: Path) -> None:
    path = tmp_path / "log"
    EventLog.open(path).close()
    # A reader process killed while holding a read transaction leaves its slot behind.
    code = (f"import os, signal; from argus.log import EventLog; lg = EventLog.open({str(path)!r}, readonly=True); "
            "txn = lg.env.begin(); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", code], check=False)
    with EventLog.open(path) as lg:
        assert lg.env.reader_check() == 0  # already cleared by open
        assert "(no active readers)" in lg.env.readers() or str(os.getpid()) not in lg.env.readers()


def test_info_reports_counts_and_time_range(log) -> None:
    log.define_instrument("SPY", ts=TS - 10)
    log.append(trades(100, 1))
    info = log.info()
    assert (info.head, info.events, info.instruments) == (101, 101, 1)
    assert info.first_ts_recv == TS - 10 and info.last_ts_recv == TS + 100
    assert info.chunks == 2 and info.bytes > 100 * 64
    assert np.isclose(info.bytes / info.events, 64, rtol=0.5)
