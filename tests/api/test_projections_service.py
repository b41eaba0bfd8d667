"""argus.v1.ProjectionService against a real server on loopback: the live projections equal a replay."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc import aio

from argus.api.server import start_server
from argus.connectors.synthetic import SyntheticConfig, write_synthetic_market
from argus.log import EventLog
from argus.projections.config import load_config
from argus.projections.engine import ProjectionEngine
from argus.projections.store import DerivedStore
from argus.v1 import event_log_service_pb2 as log_pb
from argus.v1 import event_log_service_pb2_grpc as log_pb_grpc
from argus.v1 import projection_service_pb2 as pb
from argus.v1 import projection_service_pb2_grpc as pb_grpc
from tests.api.conftest import TIMEOUT

CONFIG = {"bars": ["1m", "5m"], "risk_flow": False, "market_regime": False, "snapshot_every": 2000}


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> list[bytes]:
    """Record bodies of a small synthetic market (two symbols, three days), one per source chunk."""
    path = tmp_path_factory.mktemp("source") / "log"
    with EventLog.open(path) as lg:
        write_synthetic_market(lg, SyntheticConfig(seed=7, symbols=("SPY", "AAPL"), start=dt.date(2024, 1, 2),
                                                   days=3, events_per_day=2500))
        return [bytes(c.body) for c in lg.chunks()]


def with_server(data: Path, body, **kwargs):
    """Run `await body(log_stub, projection_stub, server)` against a server over data/log."""

    async def main():
        server = await start_server(data / "log", port=0, projection_config=CONFIG, **kwargs)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stubs = log_pb_grpc.EventLogServiceStub(channel), pb_grpc.ProjectionServiceStub(channel)
                return await asyncio.wait_for(body(*stubs, server), TIMEOUT)
        finally:
            await server.stop(grace=2)

    return asyncio.run(main())


async def append_all(stub, bodies: list[bytes]) -> int:
    for b in bodies:
        await stub.Append(log_pb.AppendRequest(records=b), timeout=TIMEOUT)
    return (await stub.Head(log_pb.HeadRequest(), timeout=TIMEOUT)).head


async def caught_up(stub, head: int) -> pb.DigestsResponse:
    while True:
        d = await stub.Digests(pb.DigestsRequest(), timeout=TIMEOUT)
        if d.next_offset >= head:
            return d
        await asyncio.sleep(0.02)


def replay_of(log_path: Path, tmp: Path):
    """`argusctl replay` of a copy of the log into its own derived store: (engine, result, store)."""
    copy = tmp / "replay"
    shutil.copytree(log_path, copy / "log")
    config = load_config(CONFIG)
    lg = EventLog.open(copy / "log", readonly=True)
    engine = ProjectionEngine(lg, config)
    engine.store = DerivedStore.for_config(copy, config.config_hash, engine.projections.output_names())
    return engine, engine.replay(), engine.store


async def take(stream, rows: int) -> list:
    """Responses of a stream until they hold `rows` rows (then the stream is cancelled)."""
    got: list = []
    async for r in stream:
        got.append(r)
        if sum(x.count for x in got) >= rows:
            break
    stream.cancel()
    return got


def raw_of(responses) -> np.ndarray:
    dtype = np.dtype([tuple(f) for f in json.loads(responses[0].dtype)])
    return np.frombuffer(b"".join(r.raw_rows for r in responses), dtype=dtype)


def stored_outputs(store: DerivedStore) -> dict[str, list[tuple[bytes, bytes]]]:
    out: dict[str, list] = {}
    for table, k, v in store.items():
        if table.startswith("out:"):
            out.setdefault(table, []).append((k, v))
    return out


def test_range_latest_watch_and_digests_equal_a_replay_of_the_same_log(tmp_path: Path, market) -> None:
    async def body(log_stub, stub, server):
        outputs = await stub.ListOutputs(pb.ListOutputsRequest(), timeout=TIMEOUT)
        head = await append_all(log_stub, market[:-1])
        at = (await caught_up(stub, head)).next_offset
        watch = stub.Watch(pb.WatchRequest(output="bars", symbol="SPY", timeframe="1m", from_offset=at,
                                           format=pb.ROW_FORMAT_BOTH), timeout=TIMEOUT)
        head = await append_all(log_stub, market[-1:])
        await caught_up(stub, head)
        rng = [r async for r in stub.GetRange(pb.GetRangeRequest(
            output="bars", symbol="SPY", timeframe="1m", format=pb.ROW_FORMAT_BOTH, max_batch_rows=100),
            timeout=TIMEOUT)]
        after = [r async for r in stub.GetRange(pb.GetRangeRequest(
            output="bars", symbol="SPY", timeframe="1m", from_offset=at, format=pb.ROW_FORMAT_RAW), timeout=TIMEOUT)]
        watched = await take(watch, sum(r.count for r in after))
        latest = await stub.GetLatest(pb.GetLatestRequest(output="bars", symbol="SPY", timeframe="1m",
                                                          format=pb.ROW_FORMAT_BOTH), timeout=TIMEOUT)
        digests = await stub.Digests(pb.DigestsRequest(), timeout=TIMEOUT)
        return outputs, rng, after, watched, latest, digests

    outputs, rng, after, watched, latest, digests = with_server(tmp_path, body)
    names = [o.name for o in outputs.outputs]
    assert {"bars", "indicators", "regimes", "positions"} <= set(names)
    assert list(outputs.timeframes) == ["1m", "5m"]
    engine, result, store = replay_of(tmp_path / "log", tmp_path)
    try:
        spy = {s: i for i, s in engine.log.symbols().items()}["SPY"]
        bars = store.rows("bars", engine.projections.dtypes()["bars"])
        want = bars[(bars["instrument_id"] == spy) & (bars["spec"] == 0)]
        got = raw_of(rng)
        assert len(want) > 100 and len(rng) > 1 and got.tobytes() == want.tobytes()
        assert [r.offset for resp in rng for r in resp.rows] == want["offset"].tolist()
        row = rng[0].rows[0]
        assert (row.symbol, row.timeframe) == ("SPY", "1m") and row.values["close"] == want[0]["close"]
        assert row.ints["trade_count"] == want[0]["trade_count"]
        assert latest.found and raw_of([latest]).tobytes() == want[-1:].tobytes()
        assert latest.rows[0].offset == int(want[-1]["offset"])
        # The watch got exactly the bars emitted after it started, no gap, no duplicate.
        assert len(watched) >= 1 and raw_of(watched).tobytes() == raw_of(after).tobytes()
        # The live engine's digests equal a replay's, and its store holds the replay's outputs byte for byte.
        assert digests.next_offset == result.to_offset
        assert digests.state_digest.hex() == result.state_digest
        assert digests.outputs_digest.hex() == result.outputs_digest and not digests.HasField("restored_from")
        live = DerivedStore.for_config(tmp_path, engine.config.config_hash, engine.projections.output_names(),
                                       readonly=True)
        try:
            assert stored_outputs(live) == stored_outputs(store)
            assert len(stored_outputs(live)["out:bars"]) == result.projections["bars"].outputs
        finally:
            live.close()
    finally:
        store.close()
        engine.log.close()


def test_restart_resumes_from_a_snapshot_and_still_equals_a_replay(tmp_path: Path, market) -> None:
    async def first(log_stub, stub, _server):
        return (await caught_up(stub, await append_all(log_stub, market[:-1]))).next_offset

    async def second(log_stub, stub, _server):
        before = await stub.Digests(pb.DigestsRequest(), timeout=TIMEOUT)
        head = await append_all(log_stub, market[-1:])
        return before, await caught_up(stub, head)

    stopped_at = with_server(tmp_path, first)
    before, after = with_server(tmp_path, second)
    snap = (stopped_at // CONFIG["snapshot_every"]) * CONFIG["snapshot_every"]
    assert before.HasField("restored_from") and before.restored_from == snap > 0
    assert before.outputs_from_offset == snap
    engine, result, store = replay_of(tmp_path / "log", tmp_path)
    try:
        assert after.state_digest.hex() == result.state_digest
        # The outputs the restarted engine produced equal a replay's of the same range.
        ranged = ProjectionEngine(engine.log, engine.config).replay(snap)
        assert after.outputs_digest.hex() == ranged.outputs_digest
        live = DerivedStore.for_config(tmp_path, engine.config.config_hash, engine.projections.output_names(),
                                       readonly=True)
        try:
            assert stored_outputs(live) == stored_outputs(store)
        finally:
            live.close()
    finally:
        store.close()
        engine.log.close()


def test_unknown_output_timeframe_symbol_and_offsets_past_the_position_are_refused(tmp_path: Path, market) -> None:
    async def body(log_stub, stub, _server):
        head = await append_all(log_stub, market[:1])
        await caught_up(stub, head)
        out = []
        for req in (pb.GetLatestRequest(output="nope"), pb.GetLatestRequest(output="bars", timeframe="7m"),
                    pb.GetLatestRequest(output="bars", symbol="MSFT"),
                    pb.GetLatestRequest(output="sessions", symbol="SPY")):
            with pytest.raises(aio.AioRpcError) as err:
                await stub.GetLatest(req, timeout=TIMEOUT)
            out.append((err.value.code(), err.value.details()))
        for stream in (stub.GetRange(pb.GetRangeRequest(output="bars", from_offset=head + 1), timeout=TIMEOUT),
                       stub.Watch(pb.WatchRequest(output="bars", from_offset=head + 1), timeout=TIMEOUT)):
            with pytest.raises(aio.AioRpcError) as err:
                async for _ in stream:
                    pass
            out.append((err.value.code(), err.value.details()))
        return out

    out = with_server(tmp_path, body)
    assert [c for c, _ in out[:4]] == [grpc.StatusCode.INVALID_ARGUMENT] * 4
    assert "'output' = 'nope'" in out[0][1] and "'timeframe' = '7m'" in out[1][1]
    assert "'symbol' = 'MSFT'" in out[2][1] and "'symbol' = 'SPY'" in out[3][1]
    assert [c for c, _ in out[4:]] == [grpc.StatusCode.OUT_OF_RANGE] * 2


def test_server_without_projections_does_not_serve_them(tmp_path: Path) -> None:
    async def body(_log_stub, stub, _server):
        with pytest.raises(aio.AioRpcError) as err:
            await stub.Digests(pb.DigestsRequest(), timeout=TIMEOUT)
        return err.value.code()

    assert with_server(tmp_path, body, projections=False) == grpc.StatusCode.UNIMPLEMENTED


def test_watch_of_a_watcher_too_slow_for_its_queue_catches_up_from_the_store_without_gap_or_duplicate(
        tmp_path: Path, market, monkeypatch) -> None:
    import argus.api.projections as live_projections

    monkeypatch.setattr(live_projections, "WATCH_QUEUE_BATCHES", 0)  # every live batch overflows the queue

    async def body(log_stub, stub, _server):
        watch = stub.Watch(pb.WatchRequest(output="indicators", timeframe="5m", format=pb.ROW_FORMAT_RAW),
                           timeout=TIMEOUT)
        await caught_up(stub, await append_all(log_stub, market))
        want = [r async for r in stub.GetRange(pb.GetRangeRequest(output="indicators", timeframe="5m",
                                                                  format=pb.ROW_FORMAT_RAW), timeout=TIMEOUT)]
        return want, await take(watch, sum(r.count for r in want))

    want, watched = with_server(tmp_path, body)
    assert len(raw_of(want)) > 10 and raw_of(watched).tobytes() == raw_of(want).tobytes()


def test_argusctl_serve_with_config_serves_its_projections(tmp_path: Path, serve_process) -> None:
    cfg = tmp_path / "projections.yaml"
    cfg.write_text("bars: [1m, 15m]\nrisk_flow: false\nmarket_regime: false\n")
    proc = serve_process(tmp_path / "data", "--config", str(cfg))

    async def main():
        async with aio.insecure_channel(proc.address) as channel:
            return await pb_grpc.ProjectionServiceStub(channel).ListOutputs(pb.ListOutputsRequest(), timeout=TIMEOUT)

    try:
        outputs = asyncio.run(main())
    finally:
        assert proc.stop() == 0
    assert list(outputs.timeframes) == ["1m", "15m"] and "bars" in [o.name for o in outputs.outputs]
    assert (tmp_path / "data" / "derived").is_dir()
