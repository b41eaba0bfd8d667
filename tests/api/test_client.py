"""argus.client.ArgusClient against a real server process on loopback: `argusctl --data DIR serve`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

grpc = pytest.importorskip("grpc")

ROOT = Path(__file__).resolve().parents[2]


# -- server process -----------------------------------------------------------------------------------

class Server:
    """A server subprocess on a data dir; `start()` returns its `HOST:PORT` (the port is kept on restart)."""

    def __init__(self, data: Path):
        self.data = data
        self.port = 0
        self.args: list[str] = ["--durability", "fast"]
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        cmd = [sys.executable, "-m", "argus.cli.main", "--data", str(self.data), "serve", "--port", str(self.port),
               *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        line = self.proc.stdout.readline().strip()
        assert line.startswith("listening on "), f"server said {line!r}"
        target = line.removeprefix("listening on ")
        self.port = int(target.rsplit(":", 1)[1])
        return target

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def server(tmp_path: Path):
    srv = Server(tmp_path / "data")
    srv.data.mkdir()
    yield srv
    srv.kill()


# -- helpers ------------------------------------------------------------------------------------------

def _trades(n: int, start: int = 0):
    from argus.events import codec
    from argus.events.types import EventType

    i = np.arange(start, start + n)
    return codec.encode_columns(EventType.TRADE, 0, ts_event=1_000 + i, ts_recv=2_000 + i,
                                price=100.0 + i, size=1.0 + i % 7, trade_id=i, aggressor=1)


async def _connect(target: str, token: str | None = None):
    from argus.client import ArgusClient, Backoff

    return await ArgusClient.connect(target, token=token, backoff=Backoff(0.02, 0.5))


async def _collect(it: AsyncIterator, n: int, timeout: float = 30.0) -> list:
    out = []

    async def run() -> None:
        async for item in it:
            out.append(item)
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), timeout)
    return out


def _define(client) -> asyncio.Future:
    from argus.log.store import instrument_event

    return client.append([instrument_event(0, "AAPL")])


# -- tests --------------------------------------------------------------------------------------------

def test_append_three_forms_and_read_back(server: Server) -> None:
    from argus.events import codec

    async def main() -> None:
        client = await _connect(server.start())
        try:
            r0 = await _define(client)
            assert (r0.first_offset, r0.count, r0.duplicate) == (0, 1, False)
            arr = _trades(5)
            r1 = await client.append(arr)  # structured array
            r2 = await client.append(_trades(3, 5).tobytes(), expected_head=6)  # record bytes
            events = [codec.decode(rec) for _, rec in codec.iter_records(_trades(4, 8).tobytes(), 0)]
            r3 = await client.append(events, producer_id="p1", sequence=1)  # list of Event
            again = await client.append(events, producer_id="p1", sequence=1)
            assert (r1.first_offset, r1.count) == (1, 5)
            assert (r2.first_offset, r2.count) == (6, 3)
            assert (r3.first_offset, r3.count, r3.duplicate) == (9, 4, False)
            assert (again.first_offset, again.duplicate) == (9, True)
            assert await client.head() == 13
            info = await client.head_info()
            assert info.instruments == 1 and len(info.chain_head) == 32

            got = [item async for item in client.read(1)]
            want = [codec.decode(rec) for _, rec in codec.iter_records(_trades(12).tobytes(), 1)]
            assert [o for o, _ in got] == list(range(1, 13))
            assert [e for _, e in got] == want
            raw = b"".join([body async for _, body in client.read_records(1, 6)])
            assert raw == arr.tobytes()
            assert [o for o, _ in [x async for x in client.read(3, 5)]] == [3, 4]

            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await client.append(_trades(1), expected_head=0)
            assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        finally:
            await client.close()

    asyncio.run(main())


def test_append_stream_pipelined(server: Server) -> None:
    async def main() -> None:
        client = await _connect(server.start())
        try:
            await _define(client)
            results = [r async for r in client.append_stream([_trades(100, 100 * k) for k in range(20)])]
            assert [(r.first_offset, r.count) for r in results] == [(1 + 100 * k, 100) for k in range(20)]
            assert await client.head() == 2001
        finally:
            await client.close()

    asyncio.run(main())


def test_subscribe_sees_later_appends(server: Server) -> None:
    async def main() -> None:
        client = await _connect(server.start())
        try:
            await _define(client)
            await client.append(_trades(10))
            task = asyncio.ensure_future(_collect(client.subscribe(5), 6 + 30))
            await asyncio.sleep(0.2)
            for k in range(3):
                await client.append(_trades(10, 10 + 10 * k))
            got = await task
            assert [o for o, _ in got] == list(range(5, 41))
            assert got[-1][1].data["trade_id"] == 39
        finally:
            await client.close()

    asyncio.run(main())


def test_subscribe_resumes_after_server_sigkill(server: Server) -> None:
    """SIGKILL the server mid-subscription, restart it on the same data dir and port: every offset once."""

    async def main() -> None:
        target = server.start()
        client = await _connect(target)
        writer = await _connect(target)
        try:
            await _define(writer)
            total = 1 + 50 * 20
            seen: list[int] = []
            progress = asyncio.Event()

            async def follow() -> None:
                async for first, body in client.subscribe_records(0):
                    from argus.events import codec

                    seen.extend(o for o, _ in codec.iter_records(body, first))
                    progress.set()
                    if len(seen) >= total:
                        return

            task = asyncio.ensure_future(follow())
            for k in range(20):
                if k == 8:
                    await asyncio.wait_for(progress.wait(), 10)
                    server.kill()  # mid-subscription
                    await asyncio.sleep(0.3)
                    assert server.start() == target
                    await writer.close()
                    writer = await _connect(target)
                await writer.append(_trades(50, 50 * k))
                await asyncio.sleep(0.02)
            await asyncio.wait_for(task, 30)
            assert seen == list(range(total))  # consecutive: no gap, no duplicate
        finally:
            await client.close()
            await writer.close()

    asyncio.run(main())


def test_to_frame_columns(server: Server) -> None:
    from argus.client import to_frame

    async def main() -> None:
        client = await _connect(server.start())
        try:
            await _define(client)
            await client.append(_trades(3))
            frame = to_frame([x async for x in client.read(0)])
        finally:
            await client.close()
        assert list(frame.columns[:5]) == ["offset", "type", "ts_event", "ts_recv", "instrument_id"]
        assert {"price", "size", "trade_id", "aggressor", "symbol"} <= set(frame.columns)
        assert list(frame["offset"]) == [0, 1, 2, 3]
        assert list(frame["type"]) == ["INSTRUMENT_DEFINED", "TRADE", "TRADE", "TRADE"]
        assert frame["price"].iloc[1:].tolist() == [100.0, 101.0, 102.0]
        assert frame["symbol"].iloc[0] == "AAPL"

    asyncio.run(main())


def test_bearer_token(server: Server) -> None:
    server.args += ["--token", "s3cret"]

    async def main() -> None:
        target = server.start()
        anon, authed = await _connect(target), await _connect(target, token="s3cret")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await anon.head()
            assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert (await _define(authed)).first_offset == 0
            assert await authed.head() == 1
        finally:
            await anon.close()
            await authed.close()

    asyncio.run(main())


def test_projection_queries_return_numpy_rows_and_frames(server: Server) -> None:
    """The client reads a projection output into numpy and pandas, filtered by symbol and timeframe."""
    import numpy as np

    from argus.events import codec
    from argus.events.types import EventType
    from argus.log.store import instrument_event

    t0 = 1_709_904_600_000_000_000
    ts = t0 + np.arange(40, dtype=np.int64) * 15_000_000_000
    trades = codec.encode_columns(EventType.TRADE, 0, ts, ts, price=100.0 + np.arange(40), size=10.0)
    target = server.start()

    async def main():
        async with await _connect(target) as client:
            await client.append([instrument_event(0, "ACME", ts=t0)])
            await client.append(trades)
            for _ in range(200):
                bars = await client.projection("bars", symbol="ACME", timeframe="1m")
                if len(bars) >= 9:
                    break
                await asyncio.sleep(0.02)
            frame = await client.projection_frame("bars", symbol="ACME", timeframe="1m")
            return bars, frame

    bars, frame = asyncio.run(main())
    assert bars["open"][:9].tolist() == [100.0 + 4 * k for k in range(9)]
    assert bars["volume"][:9].tolist() == [40.0] * 9
    assert list(frame["close"][:2]) == [103.0, 107.0] and "_reserved" not in frame.columns
