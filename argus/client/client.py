"""An asyncio client of the EventLogService (protos/argus/v1/event_log_service.proto, DESIGN.md §8).

Batches travel as `records` (the log's binary layout) both ways: that is the fast path, and events are
decoded here with argus.events.codec only when asked for (`read`, `subscribe`). `read_records` and
`subscribe_records` hand the bytes over untouched.

Errors: a failed call raises `grpc.aio.AioRpcError` as is; its `code()` says why, following the service:
INVALID_ARGUMENT (a refused event), FAILED_PRECONDITION (expected_head did not match, or a stale producer
sequence), OUT_OF_RANGE (read/subscribe past the head), UNAUTHENTICATED (token), UNAVAILABLE (no server).
Only `subscribe` / `subscribe_records` recover on their own: on UNAVAILABLE (the server went away or the
connection was reset) they reconnect with bounded exponential backoff and resume at the offset after the
last one delivered, so the caller sees every offset exactly once. A batch that does not start where the
client expects (a server bug) raises `SubscriptionGapError` rather than being passed on silently.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np

from argus.errors import ArgusError
from argus.events import codec
from argus.events.codec import Event
from argus.log.store import AppendResult
from argus.v1 import event_log_service_pb2 as pb
from argus.v1 import event_log_service_pb2_grpc as pb_grpc
from argus.v1 import events_pb2
from argus.v1 import projection_service_pb2 as ps
from argus.v1 import projection_service_pb2_grpc as ps_grpc
from argus.v1 import research_service_pb2 as rs
from argus.v1 import research_service_pb2_grpc as rs_grpc

if TYPE_CHECKING:
    import pandas as pd

#: What `append` accepts: a body of records, a structured array of records (codec.encode_columns),
#: a sequence of Events, or an argus.v1.EventBatch of Event messages.
Batch = bytes | bytearray | memoryview | np.ndarray | Sequence[Event] | events_pb2.EventBatch

#: Status codes after which a subscription reconnects and resumes instead of raising.
RESUMABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


class SubscriptionGapError(ArgusError):
    """The server sent a batch that skips offsets after the last one delivered (never passed on)."""


@dataclass(frozen=True)
class HeadInfo:
    """The log's head (the offset the next event gets), its chain-hash head and how many instruments."""

    head: int
    chain_head: bytes
    instruments: int


@dataclass(frozen=True)
class Backoff:
    """Reconnect delays of a subscription: `initial`, doubling up to `maximum` (seconds).

    `max_attempts` bounds consecutive failed reconnects (None: keep trying forever); a delivered batch
    resets the count and the delay."""

    initial: float = 0.05
    maximum: float = 2.0
    max_attempts: int | None = None

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * (2 ** attempt))


def _body(batch: Batch) -> pb.AppendRequest:
    if isinstance(batch, events_pb2.EventBatch):
        return pb.AppendRequest(events=batch)
    if isinstance(batch, np.ndarray):
        return pb.AppendRequest(records=np.ascontiguousarray(batch).tobytes())
    if isinstance(batch, bytes):
        return pb.AppendRequest(records=batch)
    if isinstance(batch, bytearray | memoryview):
        return pb.AppendRequest(records=bytes(batch))
    return pb.AppendRequest(records=codec.concat(codec.encode(e) for e in batch))


def _request(batch: Batch, expected_head: int | None, producer_id: str | None,
             sequence: int | None) -> pb.AppendRequest:
    req = _body(batch)
    if expected_head is not None:
        req.expected_head = expected_head
    if producer_id:
        req.producer_id = producer_id
    if sequence is not None:
        req.sequence = sequence
    return req


def _result(resp: pb.AppendResponse) -> AppendResult:
    return AppendResult(int(resp.first_offset), int(resp.count), bool(resp.duplicate))


def _decode(first_offset: int, body: bytes) -> Iterator[tuple[int, Event]]:
    for offset, record in codec.iter_records(body, first_offset):
        yield offset, codec.decode(record)


class ArgusClient:
    """A connection to an Argus server's event log. Make one with `await ArgusClient.connect(...)`.

    Use it as `async with await ArgusClient.connect(...) as client:` or call `close()`."""

    def __init__(self, channel: grpc.aio.Channel, *, token: str | None = None, backoff: Backoff | None = None,
                 max_batch_events: int = 0):
        self._channel = channel
        self._stub = pb_grpc.EventLogServiceStub(channel)
        self._projections = ps_grpc.ProjectionServiceStub(channel)
        self._research = rs_grpc.ResearchServiceStub(channel)
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        self.backoff = backoff or Backoff()
        self.max_batch_events = max_batch_events

    @classmethod
    async def connect(cls, target: str = "127.0.0.1:50051", token: str | None = None,
                      tls_root_cert: bytes | None = None, *, backoff: Backoff | None = None,
                      max_batch_events: int = 0, timeout: float | None = 10.0) -> ArgusClient:
        """Open a channel to `target` and wait until it is ready (up to `timeout` seconds; None: don't wait).

        `token` is sent as `authorization: Bearer <token>` on every call; `tls_root_cert` (PEM bytes)
        turns on TLS with that root. The channel's own reconnect backoff follows `backoff` so that a
        restarted server is found again quickly."""
        backoff = backoff or Backoff()
        ms = int(backoff.initial * 1000)
        options = [*_CHANNEL_OPTIONS, ("grpc.initial_reconnect_backoff_ms", ms), ("grpc.min_reconnect_backoff_ms", ms),
                   ("grpc.max_reconnect_backoff_ms", int(backoff.maximum * 1000))]
        if tls_root_cert is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=tls_root_cert)
            channel = grpc.aio.secure_channel(target, creds, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        if timeout is not None:
            try:
                await asyncio.wait_for(channel.channel_ready(), timeout)
            except BaseException:
                await channel.close()
                raise
        return cls(channel, token=token, backoff=backoff, max_batch_events=max_batch_events)

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> ArgusClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- writing ---------------------------------------------------------------------------------

    async def append(self, batch: Batch, expected_head: int | None = None, producer_id: str | None = None,
                     sequence: int | None = None) -> AppendResult:
        """Append one batch atomically; returns its offsets once the server says it is durable.

        With `expected_head` the append is refused (FAILED_PRECONDITION) unless the log's head is that
        offset. With `producer_id` and `sequence`, a retried batch is written once (`duplicate` is True)."""
        resp = await self._stub.Append(_request(batch, expected_head, producer_id, sequence), metadata=self._metadata)
        return _result(resp)

    async def append_stream(self, batches: Iterable[Batch] | AsyncIterable[Batch], *, producer_id: str | None = None,
                            first_sequence: int | None = None) -> AsyncIterator[AppendResult]:
        """Append many batches over one AppendStream call, pipelined; yields one result per batch, in order.

        Batches are sent as fast as the stream accepts them, without waiting for earlier results. With
        `producer_id`, batch i gets sequence `first_sequence + i` (default first_sequence: 1)."""
        seq0 = 1 if first_sequence is None else first_sequence

        async def requests() -> AsyncIterator[pb.AppendRequest]:
            i = 0
            if isinstance(batches, AsyncIterable):
                async for b in batches:
                    yield _request(b, None, producer_id, seq0 + i if producer_id else None)
                    i += 1
            else:
                for b in batches:
                    yield _request(b, None, producer_id, seq0 + i if producer_id else None)
                    i += 1

        call = self._stub.AppendStream(requests(), metadata=self._metadata)
        try:
            async for resp in call:
                yield _result(resp)
        finally:
            call.cancel()

    # -- reading ---------------------------------------------------------------------------------

    async def read_records(self, from_offset: int = 0, to_offset: int | None = None) -> AsyncIterator[tuple[int, bytes]]:
        """(first_offset, body) of each batch of [from_offset, to_offset); to_offset None: the head now.

        The body is records in the log's binary layout, not decoded (codec.iter_records walks it)."""
        req = pb.ReadRequest(from_offset=from_offset, to_offset=to_offset or 0,
                             format=pb.BATCH_FORMAT_RECORDS, max_batch_events=self.max_batch_events)
        if to_offset is not None and to_offset <= from_offset:
            return
        call = self._stub.Read(req, metadata=self._metadata)
        try:
            async for resp in call:
                yield int(resp.first_offset), resp.records
        finally:
            call.cancel()

    async def read(self, from_offset: int = 0, to_offset: int | None = None) -> AsyncIterator[tuple[int, Event]]:
        """(offset, Event) of each event of [from_offset, to_offset); to_offset None: the head now."""
        async for first, body in self.read_records(from_offset, to_offset):
            for item in _decode(first, body):
                yield item

    async def subscribe_records(self, from_offset: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """(first_offset, body) of each batch from `from_offset` on, following the live tail forever.

        Survives server restarts and connection resets: on UNAVAILABLE it waits (self.backoff),
        reconnects and resumes at the offset after the last one yielded. Every offset is yielded once, in
        order. Stop by leaving the `async for` (the call is cancelled)."""
        next_offset = from_offset
        attempt = 0
        while True:
            req = pb.SubscribeRequest(from_offset=next_offset, format=pb.BATCH_FORMAT_RECORDS,
                                      max_batch_events=self.max_batch_events)
            call = self._stub.Subscribe(req, metadata=self._metadata)
            try:
                async for resp in call:
                    first, count = int(resp.first_offset), int(resp.count)
                    body = resp.records
                    if first + count <= next_offset:
                        continue  # wholly delivered before a reconnect
                    if first > next_offset:
                        raise SubscriptionGapError(f"expected a batch from offset {next_offset}, got one from {first}")
                    if first < next_offset:  # overlaps what was delivered: keep the new part only
                        from argus.api.convert import slice_records

                        body = slice_records(body, first, next_offset, first + count)
                        first = next_offset
                    next_offset = int(resp.first_offset) + count
                    attempt = 0
                    yield first, body
                return  # the server ended the stream (it is shutting down cleanly): nothing more
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RESUMABLE_CODES:
                    raise
                if self.backoff.max_attempts is not None and attempt >= self.backoff.max_attempts:
                    raise
                await asyncio.sleep(self.backoff.delay(attempt))
                attempt += 1
            finally:
                call.cancel()

    async def subscribe(self, from_offset: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """(offset, Event) of each event from `from_offset` on, live; resumes as `subscribe_records` does."""
        async for first, body in self.subscribe_records(from_offset):
            for item in _decode(first, body):
                yield item

    # -- projections ----------------------------------------------------------------------------

    async def outputs(self) -> ps.ListOutputsResponse:
        """The projections the server runs: outputs and their fields, timeframes, symbols, position."""
        return await self._projections.ListOutputs(ps.ListOutputsRequest(), metadata=self._metadata)

    async def projection(self, output: str, symbol: str = "", timeframe: str = "", from_offset: int = 0,
                         to_offset: int = 0) -> np.ndarray:
        """Rows of a projection output (e.g. "bars", "indicators", "regimes") as a numpy structured
        array, filtered by symbol and timeframe, produced at offsets in [from_offset, to_offset)
        (to_offset 0: up to the server's live position)."""
        request = ps.GetRangeRequest(output=output, symbol=symbol, timeframe=timeframe, from_offset=from_offset,
                                     to_offset=to_offset, format=ps.ROW_FORMAT_RAW)
        parts: list[bytes] = []
        dtype = None
        async for resp in self._projections.GetRange(request, metadata=self._metadata):
            dtype = dtype or _dtype(resp.dtype)
            parts.append(resp.raw_rows)
        if dtype is None:
            info = {o.name: o for o in (await self.outputs()).outputs}
            dtype = _dtype(info[output].dtype) if output in info else np.dtype([])
        return np.frombuffer(b"".join(parts), dtype=dtype).copy()

    async def projection_frame(self, output: str, symbol: str = "", timeframe: str = "", **kwargs: int) -> pd.DataFrame:
        """The same rows as a pandas DataFrame (padding fields dropped, array fields split by index)."""
        import pandas as pd

        rows = await self.projection(output, symbol, timeframe, **kwargs)
        cols: dict[str, Any] = {}
        for name in rows.dtype.names or ():
            if name.startswith("_"):
                continue
            values = rows[name]
            if values.ndim > 1:
                for i in range(values.shape[1]):
                    cols[f"{name}_{i}"] = values[:, i]
            else:
                cols[name] = values
        return pd.DataFrame(cols)

    async def head(self) -> int:
        """The log's head: the offset the next appended event will get."""
        return (await self.head_info()).head

    async def head_info(self) -> HeadInfo:
        """The log's head, its chain-hash head and the number of instruments defined."""
        resp = await self._stub.Head(pb.HeadRequest(), metadata=self._metadata)
        return HeadInfo(int(resp.head), bytes(resp.chain_head), int(resp.instruments))

    # -- research ------------------------------------------------------------------------------

    async def submit_research(self, config_yaml: str, run_name: str | None = None, workers: int = 1,
                              cluster: str | None = None, group_size: int = 0) -> rs.SubmitRunResponse:
        """Start a research run of `config_yaml` on the server (argus.v1.ResearchService): returns its
        `run_id`, `run_dir` and `state`. The same configuration on the same log gives the same run_id
        (a finished run is not run again; a failed one resumes). `group_size`: configurations per replay
        pass and progress step (0: the server's default). A bad configuration raises
        INVALID_ARGUMENT naming the field."""
        request = rs.SubmitRunRequest(config_yaml=config_yaml, workers=workers, group_size=group_size)
        if run_name is not None:
            request.run_name = run_name
        if cluster is not None:
            request.cluster = cluster
        return await self._research.SubmitRun(request, metadata=self._metadata)

    async def watch_research(self, run_id: str) -> AsyncIterator[rs.RunProgress]:
        """The run's progress (state, done, total, message) now and at every change, until it is
        RUN_STATE_DONE or RUN_STATE_FAILED (the last item)."""
        call = self._research.WatchRun(rs.WatchRunRequest(run_id=run_id), metadata=self._metadata)
        try:
            async for progress in call:
                yield progress
        finally:
            call.cancel()

    async def research_results(self, run_id: str, limit: int = 0) -> rs.GetResultsResponse:
        """A finished run's summary.json (`summary_json`) and its results.parquet rows (`results`; at most
        `limit`, 0: all). FAILED_PRECONDITION while the run is not done."""
        return await self._research.GetResults(rs.GetResultsRequest(run_id=run_id, limit=limit),
                                               metadata=self._metadata)

    async def research_runs(self) -> list[rs.RunInfo]:
        """The server's research runs, by run_id."""
        return list((await self._research.ListRuns(rs.ListRunsRequest(), metadata=self._metadata)).runs)

    @staticmethod
    def to_frame(events: Iterable[tuple[int, Event]]) -> pd.DataFrame:
        """See the module function `to_frame`."""
        return to_frame(events)


def _dtype(descr_json: str) -> np.dtype:
    """The numpy dtype of a RAW row batch (its descr, as JSON)."""
    import json

    def fix(field: list) -> tuple:
        name, kind, *shape = field
        return (name, kind, tuple(shape[0])) if shape else (name, kind)

    return np.dtype([fix(f) for f in json.loads(descr_json)])


def to_frame(events: Iterable[tuple[int, Event]]) -> pd.DataFrame:
    """A pandas DataFrame of (offset, Event) pairs, one row per event.

    Columns: offset, type (the EventType name), ts_event, ts_recv, instrument_id, then every payload
    field seen (missing in a row: NaN / None). pandas is imported here only, so the client works without it."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for offset, ev in events:
        row: dict[str, Any] = {"offset": offset, "type": ev.type.name, "ts_event": ev.ts_event, "ts_recv": ev.ts_recv,
                               "instrument_id": ev.instrument_id}
        for key, value in ev.data.items():
            row.setdefault(key, value)
        rows.append(row)
    base = ["offset", "type", "ts_event", "ts_recv", "instrument_id"]
    return pd.DataFrame(rows, columns=base + [c for c in dict.fromkeys(k for r in rows for k in r) if c not in base])
