"""Helpers for the gRPC server tests: record builders, an in-process server, a real `argusctl serve`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from grpc import aio

from argus.events import codec
from argus.events.types import EventType
from argus.log.store import instrument_event
from argus.v1 import event_log_service_pb2 as pb
from argus.v1 import event_log_service_pb2_grpc as pb_grpc
from argus.v1 import events_pb2

ROOT = Path(__file__).resolve().parents[2]
TS = 1_700_000_000_000_000_000
TIMEOUT = 60.0


def spy_record() -> bytes:
    """The InstrumentDefined record of instrument 0 ("SPY")."""
    return codec.encode(instrument_event(0, "SPY", ts=TS))


def trade_records(n: int, first_trade_id: int = 0, instrument_id: int = 0) -> bytes:
    """n trade records whose trade_id counts up from first_trade_id."""
    ids = np.arange(first_trade_id, first_trade_id + n, dtype=np.uint64)
    ts = TS + ids.astype(np.int64)
    arr = codec.encode_columns(EventType.TRADE, instrument_id, ts, ts, price=100.0 + (ids % 7), size=1.0, trade_id=ids)
    return memoryview(np.ascontiguousarray(arr)).cast("B").tobytes()


def trade_event(trade_id: int, instrument_id: int = 0, header_type: int = 0) -> events_pb2.Event:
    return events_pb2.Event(
        header=events_pb2.RecordHeader(type=header_type, ts_event=TS + trade_id, ts_recv=TS + trade_id,
                                       instrument_id=instrument_id),
        trade=events_pb2.Trade(price=101.5, size=2.0, trade_id=trade_id))


def trade_ids_of(records: bytes, first_offset: int) -> dict[int, int]:
    """offset -> trade_id of the trade records of a body."""
    dtype = codec.layout.RECORD_DTYPES[EventType.TRADE]
    out = {}
    for off, rec in codec.iter_records(records, first_offset):
        if int.from_bytes(rec[4:6], "little") == EventType.TRADE:
            out[off] = int(np.frombuffer(rec, dtype=dtype, count=1)[0]["trade_id"])
    return out


def run_with_server(path: Path, body, **server_kwargs):
    """Start an in-process server on a free port, run `await body(stub, channel, server)`, stop it."""
    from argus.api.server import start_server

    async def main():
        server = await start_server(path, port=0, **server_kwargs)
        try:
            async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = pb_grpc.EventLogServiceStub(channel)
                return await asyncio.wait_for(body(stub, channel, server), TIMEOUT)
        finally:
            await server.stop(grace=2)

    return asyncio.run(main())


async def read_all(stub, from_offset: int = 0, fmt=pb.BATCH_FORMAT_RECORDS, **kw) -> list[pb.ReadResponse]:
    return [r async for r in stub.Read(pb.ReadRequest(from_offset=from_offset, format=fmt, **kw), timeout=TIMEOUT)]


class ServeProcess:
    """`python -m argus.cli.main --data DIR serve --port 0` as a subprocess."""

    def __init__(self, data: Path, *args: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        data.mkdir(parents=True, exist_ok=True)
        self.stderr_path = data / f"serve-{os.urandom(4).hex()}.err"
        self.stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "argus.cli.main", "--data", str(data), "serve", "--port", "0", *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"serve did not start: {line!r} {self.stderr_path.read_text()}")
        self.address = line.split()[-1]
        self.port = int(self.address.rsplit(":", 1)[1])

    def stop(self, sig=None) -> int:
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
        try:
            return self.proc.wait(TIMEOUT)
        finally:
            self.proc.stdout.close()
            self.stderr.close()

    def logs(self) -> str:
        return self.stderr_path.read_text()


@pytest.fixture
def serve_process():
    started: list[ServeProcess] = []

    def start(data: Path, *args: str) -> ServeProcess:
        p = ServeProcess(data, *args)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()
        for f in (p.proc.stdout, p.stderr):
            if not f.closed:
                f.close()
