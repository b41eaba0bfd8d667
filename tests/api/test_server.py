"""`argusctl serve` / argus.api.server against real gRPC on loopback, clients from the generated stubs only."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.cli.main import cli
from argus.log import EventLog
from argus.v1 import event_log_service_pb2 as pb
from argus.v1 import event_log_service_pb2_grpc as pb_grpc
from argus.v1 import events_pb2
from tests.api.conftest import (
    TIMEOUT,
    read_all,
    run_with_server,
    spy_record,
    trade_event,
    trade_ids_of,
    trade_records,
)


async def _code_of(call) -> grpc.StatusCode:
    with pytest.raises(aio.AioRpcError) as err:
        await call
    return err.value.code()


async def _stream_code_of(stream) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(aio.AioRpcError) as err:
        async for _ in stream:
            pass
    return err.value.code(), err.value.details()


# -- round trips ----------------------------------------------------------------------------------


def test_append_records_and_events_then_read_returns_the_same_records_in_both_formats(tmp_path: Path) -> None:
    bodies = [spy_record(), trade_records(5, 100)]
    events = events_pb2.EventBatch(events=[trade_event(200), trade_event(201)])

    async def body(stub, _ch, _srv):
        acks = [await stub.Append(pb.AppendRequest(records=b), timeout=TIMEOUT) for b in bodies]
        acks.append(await stub.Append(pb.AppendRequest(events=events), timeout=TIMEOUT))
        head = await stub.Head(pb.HeadRequest(), timeout=TIMEOUT)
        records = await read_all(stub)
        as_events = await read_all(stub, 1, pb.BATCH_FORMAT_EVENTS)
        return acks, head, records, as_events

    acks, head, records, as_events = run_with_server(tmp_path / "log", body)
    assert [(a.first_offset, a.count) for a in acks] == [(0, 1), (1, 5), (6, 2)]
    assert (head.head, head.instruments) == (8, 1) and len(head.chain_head) == 32
    body_read = b"".join(r.records for r in records)
    assert records[0].first_offset == 0 and sum(r.count for r in records) == 8
    ids = trade_ids_of(body_read, 0)
    assert [ids[o] for o in range(1, 8)] == [100, 101, 102, 103, 104, 200, 201]
    evs = [e for r in as_events for e in r.events.events]
    assert [e.offset for e in evs] == list(range(1, 8))
    assert [e.trade.trade_id for e in evs] == [100, 101, 102, 103, 104, 200, 201]
    assert evs[-1].trade.price == 101.5 and evs[-1].header.type == events_pb2.EVENT_TYPE_TRADE
    with EventLog.open(tmp_path / "log", readonly=True) as lg:  # the server closed the log on stop
        stored = b"".join(bytes(c.body) for c in lg.chunks())
        assert stored == body_read
        assert lg.chain_head() == head.chain_head and lg.verify().ok


def test_read_splits_into_batches_of_at_most_max_batch_events_and_honours_to_offset(tmp_path: Path) -> None:
    async def body(stub, _ch, _srv):
        await stub.Append(pb.AppendRequest(records=spy_record() + trade_records(12)), timeout=TIMEOUT)
        await stub.Append(pb.AppendRequest(records=trade_records(13, 12)), timeout=TIMEOUT)
        split = await read_all(stub, 0, max_batch_events=10)
        ranged = await read_all(stub, 5, to_offset=20, max_batch_events=4)
        empty = await read_all(stub, 26)
        return split, ranged, empty

    split, ranged, empty = run_with_server(tmp_path / "log", body)
    assert [(r.first_offset, r.count) for r in split] == [(0, 10), (10, 10), (20, 6)]
    assert [(r.first_offset, r.count) for r in ranged] == [(5, 4), (9, 4), (13, 4), (17, 3)]
    ids = trade_ids_of(b"".join(r.records for r in ranged), 5)
    assert ids == {o: o - 1 for o in range(5, 20)}
    assert empty == []


def test_subscribe_catches_up_then_follows_live_appends_with_no_gap_or_duplicate(tmp_path: Path) -> None:
    async def body(stub, _ch, _srv):
        await stub.Append(pb.AppendRequest(records=spy_record() + trade_records(10)), timeout=TIMEOUT)
        stream = stub.Subscribe(pb.SubscribeRequest(from_offset=4, format=pb.BATCH_FORMAT_EVENTS, max_batch_events=3))
        seen: list[int] = []
        heads: list[int] = []
        async for msg in stream:
            seen.extend(e.offset for e in msg.events.events)
            assert msg.count == len(msg.events.events) and msg.first_offset == msg.events.events[0].offset
            heads.append(msg.head)
            if seen[-1] == 10:  # caught up: now append live, in two batches
                await stub.Append(pb.AppendRequest(records=trade_records(5, 10)), timeout=TIMEOUT)
                await stub.Append(pb.AppendRequest(events=events_pb2.EventBatch(events=[trade_event(99)])))
            if seen[-1] == 16:
                break
        stream.cancel()
        return seen, heads

    seen, heads = run_with_server(tmp_path / "log", body)
    assert seen == list(range(4, 17))
    assert heads[0] == 11 and heads[-1] >= 17 - 1


def test_eight_producers_and_eight_subscribers_see_every_offset_once_in_order(tmp_path: Path) -> None:
    producers, batches, per_batch = 8, 20, 5
    total = 1 + producers * batches * per_batch

    async def body(stub, _ch, server):
        await stub.Append(pb.AppendRequest(records=spy_record()), timeout=TIMEOUT)

        async def subscriber() -> list[tuple[int, int]]:
            got: list[tuple[int, int]] = []
            async for msg in stub.Subscribe(pb.SubscribeRequest(from_offset=0)):
                got.extend(sorted(trade_ids_of(msg.records, msg.first_offset).items()))
                assert msg.count >= 1
                if msg.first_offset + msg.count == total:
                    return got
            raise AssertionError("subscription ended")

        async def producer(p: int) -> list[tuple[pb.AppendResponse, int]]:
            first_ids = [1_000_000 * (p + 1) + per_batch * i for i in range(batches)]

            async def requests():
                for tid in first_ids:
                    yield pb.AppendRequest(records=trade_records(per_batch, tid))

            acks = [a async for a in stub.AppendStream(requests())]
            return list(zip(acks, first_ids, strict=True))

        subs = [asyncio.create_task(subscriber()) for _ in range(8)]
        acks = await asyncio.gather(*(producer(p) for p in range(producers)))
        seen = await asyncio.gather(*subs)
        return [a for per in acks for a in per], seen, server.servicer.committer.groups

    acks, seen, groups = run_with_server(tmp_path / "log", body)
    expected: dict[int, int] = {}
    for ack, first_id in acks:
        assert ack.count == per_batch
        expected.update({ack.first_offset + i: first_id + i for i in range(per_batch)})
    assert sorted(expected) == list(range(1, total))  # dense: no gap, no overlap
    for got in seen:
        assert [o for o, _ in got] == list(range(1, total))  # every offset once, in order
        assert dict(got) == expected
    assert groups < producers * batches + 1  # producers shared transactions


def test_a_stalled_subscriber_does_not_block_producers_and_later_reads_everything(tmp_path: Path) -> None:
    async def body(stub, _ch, _srv):
        await stub.Append(pb.AppendRequest(records=spy_record()), timeout=TIMEOUT)
        stream = stub.Subscribe(pb.SubscribeRequest(from_offset=0))
        first = await stream.read()
        for i in range(40):  # ~10 MB of records while the subscriber reads nothing
            await stub.Append(pb.AppendRequest(records=trade_records(4000, 4000 * i)), timeout=TIMEOUT)
        offsets = list(range(first.first_offset, first.first_offset + first.count))
        while offsets[-1] < 160_000:
            msg = await stream.read()
            offsets.extend(range(msg.first_offset, msg.first_offset + msg.count))
        stream.cancel()
        return offsets

    assert run_with_server(tmp_path / "log", body) == list(range(0, 160_001))


# -- refusals -------------------------------------------------------------------------------------


BAD_BATCHES = {
    "malformed record": pb.AppendRequest(records=b"\x01" * 40),
    "truncated record": pb.AppendRequest(records=trade_records(2)[:-8]),
    "wrong header type": pb.AppendRequest(events=events_pb2.EventBatch(events=[trade_event(1, header_type=3)])),
    "undefined instrument": pb.AppendRequest(events=events_pb2.EventBatch(events=[trade_event(1, instrument_id=7)])),
    "no batch": pb.AppendRequest(),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_a_bad_batch_is_invalid_argument_naming_the_field_and_writes_nothing(tmp_path: Path, case: str) -> None:
    async def body(stub, _ch, _srv):
        await stub.Append(pb.AppendRequest(records=spy_record() + trade_records(3)), timeout=TIMEOUT)
        with pytest.raises(aio.AioRpcError) as err:
            await stub.Append(BAD_BATCHES[case], timeout=TIMEOUT)
        # In a stream, the bad batch fails the stream after the good ones were acknowledged.
        good = pb.AppendRequest(records=trade_records(1, 50))
        stream = stub.AppendStream(iter([good, BAD_BATCHES[case], good]))
        acks = []
        with pytest.raises(aio.AioRpcError) as stream_err:
            async for ack in stream:
                acks.append(ack)
        head = await stub.Head(pb.HeadRequest(), timeout=TIMEOUT)
        return err.value, stream_err.value, acks, head.head

    err, stream_err, acks, head = run_with_server(tmp_path / "log", body)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "field" in err.details()
    assert stream_err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(a.first_offset, a.count) for a in acks] == [(4, 1)]
    assert head == 5  # only the good batch before the bad one


def test_read_and_subscribe_past_the_head_are_out_of_range(tmp_path: Path) -> None:
    async def body(stub, _ch, _srv):
        await stub.Append(pb.AppendRequest(records=spy_record()), timeout=TIMEOUT)
        read = await _stream_code_of(stub.Read(pb.ReadRequest(from_offset=2), timeout=TIMEOUT))
        sub = await _stream_code_of(stub.Subscribe(pb.SubscribeRequest(from_offset=5), timeout=TIMEOUT))
        return read, sub

    (read_code, read_msg), (sub_code, sub_msg) = run_with_server(tmp_path / "log", body)
    assert read_code == sub_code == grpc.StatusCode.OUT_OF_RANGE
    assert "from_offset" in read_msg and "2" in read_msg and "5" in sub_msg


def test_stale_expected_head_and_old_producer_sequence_are_failed_precondition(tmp_path: Path) -> None:
    async def body(stub, _ch, _srv):
        await stub.Append(pb.AppendRequest(records=spy_record(), expected_head=0), timeout=TIMEOUT)
        stale = await _code_of(stub.Append(pb.AppendRequest(records=trade_records(1), expected_head=0)))
        ok = await stub.Append(pb.AppendRequest(records=trade_records(2), expected_head=1), timeout=TIMEOUT)
        first = await stub.Append(pb.AppendRequest(records=trade_records(1, 7), producer_id="p", sequence=5))
        retry = await stub.Append(pb.AppendRequest(records=trade_records(1, 7), producer_id="p", sequence=5))
        old = await _code_of(stub.Append(pb.AppendRequest(records=trade_records(1, 7), producer_id="p", sequence=4)))
        head = await stub.Head(pb.HeadRequest(), timeout=TIMEOUT)
        return stale, ok, first, retry, old, head.head

    stale, ok, first, retry, old, head = run_with_server(tmp_path / "log", body)
    assert stale == grpc.StatusCode.FAILED_PRECONDITION
    assert (ok.first_offset, ok.count) == (1, 2)
    assert (first.first_offset, first.duplicate) == (3, False)
    assert (retry.first_offset, retry.count, retry.duplicate) == (3, 1, True)
    assert old == grpc.StatusCode.FAILED_PRECONDITION
    assert head == 4


# -- auth, health, reflection ---------------------------------------------------------------------


def test_tokens_are_checked_read_token_cannot_append_and_health_needs_none(tmp_path: Path) -> None:
    rw = [("authorization", "Bearer rw-secret")]
    ro = [("authorization", "Bearer ro-secret")]

    async def body(stub, channel, _srv):
        append = pb.AppendRequest(records=spy_record())
        missing = await _code_of(stub.Append(append, timeout=TIMEOUT))
        unknown = await _code_of(stub.Head(pb.HeadRequest(), metadata=[("authorization", "Bearer nope")]))
        denied = await _code_of(stub.Append(append, metadata=ro, timeout=TIMEOUT))
        denied_stream, _ = await _stream_code_of(stub.AppendStream(iter([append]), metadata=ro, timeout=TIMEOUT))
        no_read, _ = await _stream_code_of(stub.Read(pb.ReadRequest(), timeout=TIMEOUT))
        ack = await stub.Append(append, metadata=rw, timeout=TIMEOUT)
        head = await stub.Head(pb.HeadRequest(), metadata=ro, timeout=TIMEOUT)
        read = await read_all_with(stub, ro)
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        return missing, unknown, denied, denied_stream, no_read, ack, head, read, health

    async def read_all_with(stub, metadata):
        return [r async for r in stub.Read(pb.ReadRequest(), metadata=metadata, timeout=TIMEOUT)]

    missing, unknown, denied, denied_stream, no_read, ack, head, read, health = run_with_server(
        tmp_path / "log", body, tokens=["rw-secret"], read_tokens=["ro-secret"])
    assert missing == unknown == no_read == grpc.StatusCode.UNAUTHENTICATED
    assert denied == denied_stream == grpc.StatusCode.PERMISSION_DENIED
    assert (ack.first_offset, head.head, sum(r.count for r in read)) == (0, 1, 1)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_health_reports_serving_for_the_server_and_the_service_and_reflection_lists_it(tmp_path: Path) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async def body(_stub, channel, _srv):
        health = health_pb2_grpc.HealthStub(channel)
        overall = await health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        service = await health.Check(health_pb2.HealthCheckRequest(service="argus.v1.EventLogService"))
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [s.name async for r in responses for s in r.list_services_response.service]
        return overall.status, service.status, names

    overall, service, names = run_with_server(tmp_path / "log", body)
    assert overall == service == health_pb2.HealthCheckResponse.SERVING
    assert "argus.v1.EventLogService" in names and "grpc.health.v1.Health" in names


# -- the real `argusctl serve` process --------------------------------------------------------------


def test_serve_prints_its_port_serves_and_stops_cleanly_on_sigterm(tmp_path: Path, serve_process) -> None:
    server = serve_process(tmp_path)
    assert server.address.startswith("127.0.0.1:") and server.port > 0
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.EventLogServiceStub(channel)
        ack = stub.Append(pb.AppendRequest(records=spy_record() + trade_records(3)), timeout=TIMEOUT)
        assert (ack.first_offset, ack.count) == (0, 4)
    assert server.stop(signal.SIGTERM) == 0
    events = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    assert [e["event"] for e in events][0] == "started" and events[0]["port"] == server.port
    assert events[-1]["event"] == "stopped" and events[-1]["head"] == 4
    with EventLog.open(tmp_path / "log", readonly=True) as lg:
        assert lg.head() == 4 and lg.verify().ok


def test_sigkill_under_load_keeps_every_acknowledged_append_and_a_resumed_subscriber_sees_no_gap(
        tmp_path: Path, serve_process) -> None:
    server = serve_process(tmp_path)
    with grpc.insecure_channel(server.address) as channel:
        pb_grpc.EventLogServiceStub(channel).Append(pb.AppendRequest(records=spy_record()), timeout=TIMEOUT)
    acked: list[tuple[int, int, int]] = []  # (first_offset, count, first trade id)
    lock = threading.Lock()
    enough = threading.Event()
    last_seen = [-1]

    def producer(p: int) -> None:
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.EventLogServiceStub(channel)

            def requests():
                for i in range(100_000):
                    yield pb.AppendRequest(records=trade_records(10, 10_000_000 * (p + 1) + 10 * i))

            try:
                for i, ack in enumerate(stub.AppendStream(requests(), timeout=TIMEOUT)):
                    with lock:
                        acked.append((ack.first_offset, ack.count, 10_000_000 * (p + 1) + 10 * i))
                        if len(acked) >= 300:
                            enough.set()
            except grpc.RpcError:
                pass  # the server was killed

    def subscriber() -> None:
        with grpc.insecure_channel(server.address) as channel:
            try:
                for msg in pb_grpc.EventLogServiceStub(channel).Subscribe(pb.SubscribeRequest(), timeout=TIMEOUT):
                    assert msg.first_offset == last_seen[0] + 1
                    last_seen[0] = msg.first_offset + msg.count - 1
            except grpc.RpcError:
                pass

    threads = [threading.Thread(target=producer, args=(p,)) for p in range(4)]
    threads.append(threading.Thread(target=subscriber))
    for t in threads:
        t.start()
    assert enough.wait(TIMEOUT)
    server.proc.kill()  # SIGKILL, mid-stream
    server.proc.wait()
    for t in threads:
        t.join(TIMEOUT)
    with lock:
        acked_now = list(acked)
    assert len(acked_now) >= 300 and last_seen[0] >= 0

    restarted = serve_process(tmp_path)
    with grpc.insecure_channel(restarted.address) as channel:
        stub = pb_grpc.EventLogServiceStub(channel)
        head = stub.Head(pb.HeadRequest(), timeout=TIMEOUT).head
        records = b"".join(r.records for r in stub.Read(pb.ReadRequest(), timeout=TIMEOUT))
        ids = trade_ids_of(records, 0)
        for first, count, first_id in acked_now:  # every acknowledged batch: its offsets, its content
            assert [ids[first + i] for i in range(count)] == list(range(first_id, first_id + count))
        stub.Append(pb.AppendRequest(records=trade_records(3, 5)), timeout=TIMEOUT)
        resumed: list[int] = []
        stream = stub.Subscribe(pb.SubscribeRequest(from_offset=last_seen[0] + 1), timeout=TIMEOUT)
        for msg in stream:
            resumed.extend(range(msg.first_offset, msg.first_offset + msg.count))
            if resumed[-1] == head + 2:
                break
        stream.cancel()
        assert resumed == list(range(last_seen[0] + 1, head + 3))
    assert restarted.stop() == 0
    res = CliRunner().invoke(cli, ["--data", str(tmp_path), "log", "verify", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["ok"] is True
    assert json.loads(res.output)["events"] == head + 3


def test_serve_refuses_a_second_writer_on_the_same_log(tmp_path: Path, serve_process) -> None:
    serve_process(tmp_path)
    start = time.monotonic()
    res = CliRunner().invoke(cli, ["--data", str(tmp_path), "serve", "--port", "0"])
    assert res.exit_code == 4 and "writer lock" in res.output
    assert time.monotonic() - start < TIMEOUT


def test_stopping_under_load_acknowledges_only_written_batches_and_ends_subscriptions(tmp_path: Path) -> None:
    from argus.api.server import start_server

    async def main():
        server = await start_server(tmp_path / "log", port=0)
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.EventLogServiceStub(channel)
            await stub.Append(pb.AppendRequest(records=spy_record()), timeout=TIMEOUT)
            acked: list[pb.AppendResponse] = []
            started = asyncio.Event()

            async def producer(p: int):
                # Lockstep writes and reads, so the final status is the server's (a request still in
                # flight when the server ends the call would otherwise fail on the client's side).
                call = stub.AppendStream(timeout=TIMEOUT)
                try:
                    for i in range(100_000):
                        await call.write(pb.AppendRequest(records=trade_records(10, 1_000_000 * (p + 1) + 10 * i)))
                        ack = await call.read()
                        if ack is aio.EOF:
                            break
                        acked.append(ack)
                        if len(acked) >= 100:
                            started.set()
                except (aio.AioRpcError, asyncio.InvalidStateError):
                    pass
                return await call.code()

            sub = stub.Subscribe(pb.SubscribeRequest(), timeout=TIMEOUT)
            tasks = [asyncio.create_task(producer(p)) for p in range(4)]
            await asyncio.wait_for(started.wait(), TIMEOUT)
            t0 = time.monotonic()
            await server.stop(grace=TIMEOUT)
            stop_s = time.monotonic() - t0
            codes = await asyncio.gather(*tasks)
            sub_code, _ = await _stream_code_of(sub)
            return acked, codes, sub_code, stop_s

    acked, codes, sub_code, stop_s = asyncio.run(main())
    assert set(codes) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    assert sub_code == grpc.StatusCode.UNAVAILABLE and stop_s < TIMEOUT / 2  # subscribers do not hold up the stop
    with EventLog.open(tmp_path / "log", readonly=True) as lg:
        assert lg.verify().ok
        ids = {}
        for c in lg.chunks():
            ids.update(trade_ids_of(bytes(c.body), c.first_offset))
        # Every acknowledged batch is written (a batch cut off by the stop may be written unacknowledged).
        assert all(a.first_offset + i in ids for a in acked for i in range(a.count))
        assert sum(a.count for a in acked) <= len(ids) == lg.head() - 1


def test_serve_with_tls_and_a_token_accepts_a_secure_authenticated_client(tmp_path: Path, serve_process) -> None:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=TIMEOUT)
    server = serve_process(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key), "--token", "s3cret")
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    with grpc.secure_channel(server.address, creds) as channel:
        stub = pb_grpc.EventLogServiceStub(channel)
        ack = stub.Append(pb.AppendRequest(records=spy_record()), metadata=[("authorization", "Bearer s3cret")],
                          timeout=TIMEOUT)
        assert ack.count == 1
        with pytest.raises(grpc.RpcError) as err:
            stub.Head(pb.HeadRequest(), timeout=TIMEOUT)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert server.stop() == 0
