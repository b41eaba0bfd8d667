"""The gRPC server of the event log (DESIGN.md §8): EventLogService, OptionsService (argus.api.options),
ResearchService (argus.api.research), health and reflection over grpc.aio.

The servicer is thin: it turns requests into log calls (through argus.api.convert) and log errors into
gRPC status codes. Every append goes through one GroupCommitter, so concurrent producers share write
transactions and each is acknowledged only once its batch is durable.

Status codes:
  INVALID_ARGUMENT     a bad record or event, or no batch (nothing of the batch is written)
  FAILED_PRECONDITION  expected_head is not the log's head; or an idempotent producer's sequence is
                       older than its last acknowledged one (ProducerSequenceError; a retry of the
                       last batch itself is not an error: it is answered with duplicate = true)
  OUT_OF_RANGE         Read or Subscribe from an offset past the head
  DATA_LOSS            a chunk failed its checksum or hash-chain check
  UNAVAILABLE          the server is shutting down (a batch refused this way was not written)
  UNAUTHENTICATED / PERMISSION_DENIED  see argus.api.auth

Reads and subscriptions pull from the log only when gRPC is ready to send the previous response (one
response at a time, flow control applies backpressure), so a slow subscriber holds at most a few MiB
of server memory and never slows producers: it simply falls behind and re-reads from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import grpc
import structlog
from grpc import aio

from argus.api import convert
from argus.api.options import OptionsServicer
from argus.api.projections import LiveProjections, ProjectionServicer, derived_root
from argus.api.refusals import Refused, next_or_closing
from argus.api.research import ResearchServicer
from argus.errors import CorruptLogError, EventValidationError, ProducerSequenceError, WrongExpectedHeadError
from argus.log import EventLog, GroupCommitter
from argus.log.chunk import Chunk
from argus.projections.config import ProjectionConfig, load_config
from argus.v1 import event_log_service_pb2 as pb
from argus.v1 import event_log_service_pb2_grpc as pb_grpc
from argus.v1 import options_service_pb2 as opt_pb
from argus.v1 import options_service_pb2_grpc as opt_pb_grpc
from argus.v1 import projection_service_pb2 as proj_pb
from argus.v1 import projection_service_pb2_grpc as proj_pb_grpc
from argus.v1 import research_service_pb2 as res_pb
from argus.v1 import research_service_pb2_grpc as res_pb_grpc

DEFAULT_MAX_BATCH_EVENTS = 10_000
#: Most record bytes per response (a batch is cut at whichever of this and max_batch_events comes first).
MAX_BATCH_BYTES = 1 << 20
#: Bytes of chunks a reader pulls from the log at a time (bounds a subscriber's server-side memory).
READ_AHEAD_BYTES = 1 << 20
MAX_MESSAGE_BYTES = 64 << 20
SHUTDOWN_GRACE_S = 10.0
#: The server's projections without a configuration: the default configuration less risk_flow and
#: market_regime, whose reducers are built from the symbols defined when the engine starts (a server
#: usually starts before its symbols are defined; name them in a --config to turn them on).
DEFAULT_PROJECTIONS = {"risk_flow": False, "market_regime": False}

log = structlog.get_logger("argus.api.server")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the server's certificate chain and private key."""

    cert: str
    key: str


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message of an error raised by the log or by convert."""
    if isinstance(exc, Refused):
        return exc.code, exc.message
    if isinstance(exc, EventValidationError | ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, WrongExpectedHeadError | ProducerSequenceError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, CorruptLogError):
        return grpc.StatusCode.DATA_LOSS, str(exc)
    return grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"


def _batches(chunks: Iterable[Chunk], max_events: int) -> Iterator[tuple[int, int, bytes]]:
    """(first offset, count, records) of runs of consecutive records, at most max_events (and about
    MAX_BATCH_BYTES) each; runs span chunks."""
    parts: list[bytes] = []
    first = count = size = 0
    for c in chunks:
        a = c.start
        while a < c.stop:
            b = min(c.stop, a + max_events - count)
            records = convert.slice_records(c.body, c.first_offset, a, b)
            if not parts:
                first = a
            parts.append(records)
            count += b - a
            size += len(records)
            a = b
            if count >= max_events or size >= MAX_BATCH_BYTES:
                yield first, count, b"".join(parts)
                parts, count, size = [], 0, 0
    if parts:
        yield first, count, b"".join(parts)


def _fill(msg, first: int, count: int, records: bytes, fmt: int):
    msg.first_offset = first
    msg.count = count
    if fmt == pb.BATCH_FORMAT_EVENTS:
        msg.events.CopyFrom(convert.body_to_events(records, first, first, first + count))
    else:
        msg.records = records
    return msg


def _max_events(requested: int) -> int:
    return requested or DEFAULT_MAX_BATCH_EVENTS


def _format(value: int) -> int:
    if value not in (pb.BATCH_FORMAT_UNSPECIFIED, pb.BATCH_FORMAT_RECORDS, pb.BATCH_FORMAT_EVENTS):
        raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"field 'format' = {value} must be a BatchFormat (0, 1 or 2)")
    return value


class EventLogServicer(pb_grpc.EventLogServiceServicer):
    """argus.v1.EventLogService over an EventLog and its GroupCommitter."""

    def __init__(self, event_log: EventLog, committer: GroupCommitter):
        self.log = event_log
        self.committer = committer
        self.closing = asyncio.Event()

    # -- appends ----------------------------------------------------------------------------------

    async def _append(self, request: pb.AppendRequest) -> pb.AppendResponse:
        if self.closing.is_set():
            raise Refused(grpc.StatusCode.UNAVAILABLE, "the server is shutting down: the batch was not written")
        which = request.WhichOneof("batch")
        if which == "records":
            body = request.records
        elif which == "events":
            body = convert.events_to_body(request.events)
        else:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, "field 'batch' = None must be one of 'records', 'events'")
        res = await self.committer.append(
            body,
            expected_head=request.expected_head if request.HasField("expected_head") else None,
            producer_id=request.producer_id or None,
            sequence=request.sequence if request.HasField("sequence") else None,
        )
        return pb.AppendResponse(first_offset=res.first_offset, count=res.count, duplicate=res.duplicate)

    async def _abort(self, context: aio.ServicerContext, exc: BaseException, method: str) -> None:
        code, message = status_of(exc)
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS):
            log.error("request failed", method=method, code=code.name, error=message)
        else:
            log.info("request refused", method=method, code=code.name, error=message)
        await context.abort(code, message)

    async def Append(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return await self._append(request)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            await self._abort(context, exc, "Append")

    async def AppendStream(self, request_iterator, context):  # noqa: N802
        try:
            async for request in request_iterator:
                yield await self._append(request)
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "AppendStream")

    # -- reads ------------------------------------------------------------------------------------

    def _check_from(self, from_offset: int) -> int:
        head = self.log.head()
        if from_offset > head:
            raise Refused(grpc.StatusCode.OUT_OF_RANGE,
                           f"field 'from_offset' = {from_offset} must be <= the log's head ({head})")
        return head

    async def Read(self, request, context):  # noqa: N802
        try:
            fmt = _format(request.format)
            head = self._check_from(request.from_offset)
            stop = request.to_offset or head
            if stop < request.from_offset:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                               f"field 'to_offset' = {stop} must be 0 or >= from_offset ({request.from_offset})")
            chunks = self.log.chunks(request.from_offset, stop, max_bytes=READ_AHEAD_BYTES)
            responses = (_fill(pb.ReadResponse(), *b, fmt) for b in _batches(chunks, _max_events(request.max_batch_events)))
            done = object()
            while True:
                # Read and convert off the event loop, one response at a time (pulled when gRPC wants it).
                msg = await asyncio.to_thread(next, responses, done)
                if msg is done:
                    return
                yield msg
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "Read")

    async def Subscribe(self, request, context):  # noqa: N802
        subscription = None
        try:
            fmt = _format(request.format)
            self._check_from(request.from_offset)
            max_events = _max_events(request.max_batch_events)
            subscription = self.log.subscribe(request.from_offset)
            while True:
                chunk = await next_or_closing(subscription, self.closing,
                                              "the server is shutting down: subscribe again to resume")
                for first, count, records in _batches([chunk], max_events):
                    msg = pb.SubscribeResponse(head=self.log.head())
                    if fmt == pb.BATCH_FORMAT_EVENTS:
                        msg = await asyncio.to_thread(_fill, msg, first, count, records, fmt)
                    else:
                        _fill(msg, first, count, records, fmt)
                    yield msg
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "Subscribe")
        finally:
            if subscription is not None:
                await subscription.aclose()


    async def Head(self, request, context):  # noqa: N802
        try:
            # Read the chain head on both sides of the counters so that the pair is consistent.
            for _ in range(10):
                chain = self.log.chain_head()
                info = self.log.info()
                if self.log.chain_head() == chain:
                    break
            return pb.HeadResponse(head=info.head, chain_head=chain, instruments=info.instruments)
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "Head")


class Server:
    """A running server: the gRPC server, its log and committer, and an orderly stop."""

    def __init__(self, grpc_server: aio.Server, servicer: EventLogServicer, health, port: int, host: str,
                 projections: LiveProjections | None = None, research: ResearchServicer | None = None):
        self.grpc = grpc_server
        self.servicer = servicer
        self.research = research
        self.projections = projections
        self.health = health
        self.port = port
        self.host = host
        self._stopped = False

    async def stop(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Stop accepting calls, end subscriptions (UNAVAILABLE), give in-flight appends `grace` seconds
        to be written and acknowledged (after that they are cancelled, unacknowledged), then write
        whatever is queued and close the committer and the log."""
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        self.servicer.closing.set()
        if self.research is not None:
            await self.research.close()  # kills the running research run's processes (it resumes when resubmitted)
        await self.grpc.stop(grace)
        await self.servicer.committer.close()
        if self.projections is not None:
            await self.projections.stop()
        head = self.servicer.log.head()
        self.servicer.log.close()
        log.info("stopped", host=self.host, port=self.port, head=head)


async def start_server(data_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0, *,
                       tokens: Iterable[str] | None = None, read_tokens: Iterable[str] | None = None,
                       tls: TlsFiles | tuple[str, str] | None = None, durability: str = "safe",
                       projections: bool = True, projection_config: ProjectionConfig | str | os.PathLike | dict | None = None,
                       ) -> Server:
    """Open the event log at `data_dir` (the log's own directory) and start serving it; the returned
    Server knows its port (the one picked when `port` is 0). Stop it with `await server.stop()`.

    With `projections` (the default) it also runs the live projections of `projection_config` (a
    ProjectionConfig, a YAML file or a mapping; default DEFAULT_PROJECTIONS) over the log, with their
    derived store in `<parent of data_dir>/derived/`, and serves them (argus.v1.ProjectionService)."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    from argus.api.auth import BearerTokenInterceptor

    tokens, read_tokens = list(tokens or ()), list(read_tokens or ())
    event_log = EventLog.open(data_dir, durability=durability)
    try:
        committer = GroupCommitter(event_log, max_group_bytes=MAX_MESSAGE_BYTES)
        committer.start()
        live = None
        if projections:
            config = projection_config if isinstance(projection_config, ProjectionConfig) else \
                load_config(DEFAULT_PROJECTIONS if projection_config is None else projection_config)
            live = LiveProjections(event_log, config, derived_root(data_dir))
        interceptors = [BearerTokenInterceptor(tokens, read_tokens)] if tokens or read_tokens else []
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.so_reuseport", 0)]
        server = aio.server(interceptors=interceptors, options=options)
        servicer = EventLogServicer(event_log, committer)
        pb_grpc.add_EventLogServiceServicer_to_server(servicer, server)
        service_names = [pb.DESCRIPTOR.services_by_name["EventLogService"].full_name]
        opt_pb_grpc.add_OptionsServiceServicer_to_server(OptionsServicer(event_log, servicer.closing), server)
        service_names.append(opt_pb.DESCRIPTOR.services_by_name["OptionsService"].full_name)
        research = ResearchServicer(event_log, data_dir, servicer.closing)
        res_pb_grpc.add_ResearchServiceServicer_to_server(research, server)
        service_names.append(res_pb.DESCRIPTOR.services_by_name["ResearchService"].full_name)
        if live is not None:
            proj_pb_grpc.add_ProjectionServiceServicer_to_server(ProjectionServicer(live, servicer.closing), server)
            service_names.append(proj_pb.DESCRIPTOR.services_by_name["ProjectionService"].full_name)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if tls is not None:
            cert, key = (tls.cert, tls.key) if isinstance(tls, TlsFiles) else tls
            with open(key, "rb") as k, open(cert, "rb") as c:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            bound = server.add_secure_port(address, creds)
        else:
            bound = server.add_insecure_port(address)
        if not bound:
            raise OSError(f"could not bind {address}")
        await server.start()
        if live is not None:
            live.start()
        for name in ("", *service_names):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    except BaseException:
        if "committer" in locals():
            await committer.close()
        if locals().get("live") is not None:
            await live.stop()
        event_log.close()
        raise
    log.info("started", host=host, port=bound, tls=tls is not None, auth=bool(interceptors),
             durability=durability, path=str(data_dir), head=event_log.head(),
             projections=None if live is None else live.config.config_hash.hex()[:16],
             restored_from=None if live is None else live.restored_from)
    return Server(server, servicer, health_servicer, bound, host, live, research)


async def serve(data_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0, tokens: Iterable[str] | None = None,
                read_tokens: Iterable[str] | None = None, tls: TlsFiles | tuple[str, str] | None = None,
                durability: str = "safe", ready: Callable[[int], None] | None = None,
                stop: asyncio.Event | None = None, projections: bool = True,
                projection_config: ProjectionConfig | str | os.PathLike | dict | None = None) -> None:
    """Serve the log at `data_dir` until SIGINT or SIGTERM (or `stop` is set), then stop gracefully.

    `ready(port)` is called once the server accepts calls."""
    server = await start_server(data_dir, host, port, tokens=tokens, read_tokens=read_tokens, tls=tls,
                                durability=durability, projections=projections,
                                projection_config=projection_config)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        if ready is not None:
            ready(server.port)
        await stop.wait()
        log.info("stopping", host=host, port=server.port)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.stop()


def configure_logging() -> None:
    """structlog to stderr: JSON lines when stderr is not a terminal, readable lines when it is."""
    renderer = structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info, renderer],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
