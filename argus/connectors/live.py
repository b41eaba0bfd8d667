"""Live sources (`argusctl live`): events stamped by a live clock, written with Clock events.

Pieces:

- `Clock`: where live time comes from. `WallClock` reads `time.time_ns()`: this module is the only
  place in Argus where the wall clock is read (reducers never read it; DESIGN.md §1.3). `FakeClock` is
  the injectable clock of tests: every read returns a time `step_ns` after the previous one, and
  `sleep` moves it forward without waiting, so a run is a pure function of its inputs.
- `Sink`: where events go: `LogSink` appends to a local `EventLog` (no server running), `ServerSink`
  appends through `argus.client.ArgusClient` (`--server HOST:PORT`). A sink buffers records and
  appends them in batches (each append atomic); InstrumentDefined events for new symbols are put in
  the same buffer, before the first record that uses them.
- `LiveWriter`: stamps ts_recv from the clock (never decreasing) and writes a Clock event (type CLOCK,
  no instrument, ts_event = ts_recv = the tick) at every multiple of the clock interval (ns since the
  Unix epoch) that live time passes, before any event stamped at or after it. With `WallClock` a
  ticker task also writes the ticks while no event arrives; with `FakeClock` ticks are written when
  the clock is read.
- Sources: `run_tape` re-plays a recorded log (or, via a temporary log, a CSV file read with
  argus.connectors.files, or the seeded synthetic market of argus.connectors.synthetic) as if live at
  `speed` × real time (0: as fast as possible), pacing on the recorded ts_recv, keeping every
  event's ts_event and log order and stamping ts_recv from the live clock. The recorded Clock events
  are dropped (the live ones replace them) and instrument ids are re-mapped to the target log's ids
  (only the record header's id; option chain rows keep theirs). So a live synthetic log differs from
  an ingested one (`argusctl ingest synthetic`, same seed and symbols) only in ts_recv, in the
  instrument definitions' times and in the Clock events' cadence (live time, not market time).
- The Alpaca market-data stream adapter lives in argus.connectors.alpaca.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import struct
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from argus.events import codec
from argus.events.codec import Event
from argus.events.layout import HEADER_DTYPE, NO_INSTRUMENT
from argus.events.types import EventType, InstrumentKind
from argus.log.store import EventLog, instrument_event

NS = 1_000_000_000
_TS_RECV_AT = HEADER_DTYPE.fields["ts_recv"][1]
_TS_EVENT_AT = HEADER_DTYPE.fields["ts_event"][1]
_TYPE_AT = HEADER_DTYPE.fields["type"][1]
_IID_AT = HEADER_DTYPE.fields["instrument_id"][1]
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")
_TYPE_FMT = struct.Struct({2: "<H", 4: "<I"}[HEADER_DTYPE.fields["type"][0].itemsize])


# -- clocks --------------------------------------------------------------------------------------


class Clock(ABC):
    """Live time in ns since the Unix epoch (UTC)."""

    #: True when time passes on its own (a ticker task writes Clock events while nothing arrives).
    realtime: bool = False

    @abstractmethod
    def now_ns(self) -> int: ...

    @abstractmethod
    async def sleep(self, seconds: float) -> None: ...

    async def sleep_until(self, ts_ns: int) -> None:
        wait = (ts_ns - self.peek_ns()) / NS
        if wait > 0:
            await self.sleep(wait)

    def peek_ns(self) -> int:
        """Now, without counting as a read (FakeClock does not advance)."""
        return self.now_ns()


class WallClock(Clock):
    """The wall clock (`time.time_ns`): the only wall-clock read of Argus."""

    realtime = True

    def now_ns(self) -> int:
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock(Clock):
    """A deterministic clock for tests: each `now_ns()` returns the current time and then moves it
    `step_ns` forward; `sleep(s)` moves it `s` seconds forward at once (yielding to the event loop)."""

    def __init__(self, start_ns: int, step_ns: int = 1_000):
        if start_ns <= 0 or step_ns < 0:
            raise ValueError(f"start_ns = {start_ns!r} must be > 0 and step_ns = {step_ns!r} >= 0")
        self._now = int(start_ns)
        self.step_ns = int(step_ns)

    def now_ns(self) -> int:
        t = self._now
        self._now += self.step_ns
        return t

    def peek_ns(self) -> int:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += int(round(seconds * NS))
        await asyncio.sleep(0)


# -- sinks ---------------------------------------------------------------------------------------


class Sink(ABC):
    """Where live events go. Records are buffered (`add`) and appended in order by `flush`, each flush
    one atomic append. `instrument` gives a symbol's id, putting its definition into the buffer when
    the target log does not know it yet."""

    def __init__(self) -> None:
        self._buffer: list[bytes] = []
        self._ids: dict[str, int] = {}
        self._n_instruments = 0
        self._lock = asyncio.Lock()
        self.appended = 0
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.defined = 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def add(self, record: bytes) -> None:
        self._buffer.append(record)

    def instrument(self, symbol: str, ts: int, *, kind: InstrumentKind = InstrumentKind.EQUITY,
                   **terms: Any) -> int:
        iid = self._ids.get(symbol)
        if iid is None:
            iid = self._n_instruments
            self._n_instruments += 1
            self._ids[symbol] = iid
            self.defined += 1
            self.add(codec.encode(instrument_event(iid, symbol, kind=kind, ts=ts, **terms)))
        return iid

    async def flush(self) -> None:
        async with self._lock:
            if not self._buffer:
                return
            body, self._buffer = b"".join(self._buffer), []
            first, count = await self._append(body)
            if self.first_offset is None:
                self.first_offset = first
            self.last_offset = first + count - 1
            self.appended += count

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def _append(self, body: bytes) -> tuple[int, int]: ...

    async def close(self) -> None:
        await self.flush()


class LogSink(Sink):
    """Appends to a local EventLog (the caller opens and closes it)."""

    def __init__(self, log: EventLog):
        super().__init__()
        self.log = log

    async def open(self) -> None:
        self._ids = {sym: iid for iid, sym in self.log.symbols().items()}
        self._n_instruments = self.log.info().instruments

    async def _append(self, body: bytes) -> tuple[int, int]:
        result = self.log.append(body)
        return result.first_offset, result.count


class ServerSink(Sink):
    """Appends through an Argus server: `connect()` gives an `argus.client.ArgusClient` (connectors sit
    below the client in the layers, so the caller makes it, e.g. `lambda: ArgusClient.connect(target,
    token)`). On open it reads the server's log once to learn the symbols already defined (a cost
    proportional to the log's size)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]]):
        super().__init__()
        self._connect = connect
        self.client = None

    async def open(self) -> None:
        self.client = await self._connect()
        info = await self.client.head_info()
        self._n_instruments = info.instruments
        if info.instruments:
            async for first, body in self.client.read_records(0, info.head):
                for _, rec in codec.iter_records(body, first):
                    if _record_type(rec) == EventType.INSTRUMENT_DEFINED:
                        ev = codec.decode(rec)
                        self._ids[ev.data["symbol"]] = ev.instrument_id

    async def _append(self, body: bytes) -> tuple[int, int]:
        result = await self.client.append(body)
        return result.first_offset, result.count

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self.client is not None:
                await self.client.close()


def _record_type(rec: memoryview | bytes) -> int:
    return _TYPE_FMT.unpack_from(rec, _TYPE_AT)[0]


# -- the writer ----------------------------------------------------------------------------------


@dataclass
class Gap:
    """An interval without a connection to the source (ns UTC, live clock)."""

    start_ns: int
    end_ns: int
    reason: str = "reconnect"

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    def as_dict(self) -> dict[str, Any]:
        return {"start_ns": self.start_ns, "end_ns": self.end_ns, "duration_s": self.duration_ns / NS,
                "reason": self.reason}


@dataclass
class LiveStats:
    """What a live run wrote and skipped."""

    source: str
    events: int = 0  # market and other events written (not counting Clock events or definitions)
    clocks: int = 0
    instruments_defined: int = 0
    skipped: int = 0  # bad messages counted and never written
    skip_reasons: dict[str, int] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    reconnects: int = 0
    errors: list[str] = field(default_factory=list)
    first_ts_recv: int | None = None
    last_ts_recv: int | None = None
    first_offset: int | None = None
    last_offset: int | None = None

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "events": self.events, "clocks": self.clocks,
                "instruments_defined": self.instruments_defined, "gaps": len(self.gaps),
                "gap_intervals": [g.as_dict() for g in self.gaps], "skipped": self.skipped,
                "skip_reasons": dict(sorted(self.skip_reasons.items())), "reconnects": self.reconnects,
                "errors": list(self.errors), "first_ts_recv": self.first_ts_recv,
                "last_ts_recv": self.last_ts_recv, "first_offset": self.first_offset,
                "last_offset": self.last_offset}


def parse_clock_interval(text: str) -> int:
    """ns of a Clock interval such as '1s', '1m' (at least 1 ms)."""
    from argus.events.durations import parse_duration

    ns = parse_duration(text, "clock")
    if ns < 1_000_000:
        raise ValueError(f"clock = {text!r} must be at least 1ms")
    return ns


def format_ns(ts_ns: int) -> str:
    """HH:MM:SS.f (UTC, tenths of a second) of a time in ns."""
    t = dt.datetime.fromtimestamp(ts_ns // NS, tz=dt.UTC)
    return f"{t:%H:%M:%S}.{(ts_ns % NS) // 100_000_000}"


class LiveWriter:
    """Stamps events with the live clock and writes them, with the Clock events, into a sink."""

    def __init__(self, sink: Sink, clock: Clock, stats: LiveStats, *, clock_ns: int = NS,
                 max_batch: int = 4096):
        if clock_ns <= 0:
            raise ValueError(f"clock_ns = {clock_ns!r} must be > 0")
        self.sink = sink
        self.clock = clock
        self.stats = stats
        self.clock_ns = clock_ns
        self.max_batch = max_batch
        self.last_recv = 0
        self._next_tick: int | None = None

    def now(self) -> int:
        """Read the clock (never going back), writing the Clock events up to and including now."""
        t = max(self.clock.now_ns(), self.last_recv)
        if self._next_tick is None:
            self._next_tick = (t // self.clock_ns + 1) * self.clock_ns
        while self._next_tick <= t:
            tick = self._next_tick
            self.sink.add(codec.encode_columns(EventType.CLOCK, NO_INSTRUMENT, [tick], [tick]).tobytes())
            self.stats.clocks += 1
            self._next_tick += self.clock_ns
        self.last_recv = t
        if self.stats.first_ts_recv is None:
            self.stats.first_ts_recv = t
        self.stats.last_ts_recv = t
        return t

    def next_tick_ns(self) -> int | None:
        return self._next_tick

    def instrument(self, symbol: str, ts: int, **terms: Any) -> int:
        before = self.sink.defined
        iid = self.sink.instrument(symbol, ts, **terms)
        self.stats.instruments_defined += self.sink.defined - before
        return iid

    def add(self, record: bytes) -> None:
        """Add an encoded record (its ts_recv already stamped)."""
        self.sink.add(record)
        self.stats.events += 1

    def write(self, event: Event) -> None:
        self.add(codec.encode(event))

    def annotate(self, text: str, ts_event: int, ts_recv: int, tags: list[str]) -> None:
        self.write(Event(EventType.ANNOTATION, ts_event=ts_event, ts_recv=ts_recv, data={"text": text, "tags": tags}))

    async def maybe_flush(self) -> None:
        if self.sink.pending >= self.max_batch:
            await self.flush()

    async def flush(self) -> None:
        await self.sink.flush()
        self.stats.first_offset = self.sink.first_offset
        self.stats.last_offset = self.sink.last_offset

    async def ticker(self) -> None:
        """Write the Clock events while no event arrives (only for a real-time clock)."""
        while True:
            nxt = self._next_tick if self._next_tick is not None else self.clock.peek_ns()
            await self.clock.sleep_until(nxt)
            self.now()
            await self.flush()

    @contextlib.asynccontextmanager
    async def running(self):
        """Open the sink, run the ticker (real-time clocks), and flush and close at the end."""
        await self.sink.open()
        self.now()
        task = asyncio.create_task(self.ticker()) if self.clock.realtime else None
        try:
            yield self
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.now()
            await self.sink.close()
            self.stats.first_offset = self.sink.first_offset
            self.stats.last_offset = self.sink.last_offset


# -- tape: re-play a log as if live --------------------------------------------------------------


def _records(log: EventLog) -> Iterator[memoryview]:
    for chunk in log.chunks(0):
        for off, rec in codec.iter_records(chunk.body, chunk.first_offset):
            if chunk.start <= off < chunk.stop:
                yield rec


async def replay_log(source: EventLog, writer: LiveWriter, *, speed: float = 1.0, deadline_ns: int | None = None,
                     stop: asyncio.Event | None = None) -> None:
    """Write every event of `source` as if live: Clock events dropped, instruments re-mapped, ts_event and
    order kept, ts_recv from the live clock; paced at `speed` x the recorded ts_recv (0: no waiting)."""
    if speed < 0:
        raise ValueError(f"speed = {speed!r} must be >= 0")
    clock = writer.clock
    id_map: dict[int, int] = {}
    live_start: int | None = None
    src_start: int | None = None
    src_prev = 0
    for rec in _records(source):
        if stop is not None and stop.is_set():
            return
        t = _record_type(rec)
        if t == EventType.CLOCK:
            continue
        src_recv = max(_I64.unpack_from(rec, _TS_RECV_AT)[0], src_prev)
        src_prev = src_recv
        if speed > 0:
            if live_start is None:
                live_start, src_start = clock.peek_ns(), src_recv
            target = live_start + int((src_recv - src_start) / speed)
            if target > clock.peek_ns():
                if deadline_ns is not None and target >= deadline_ns:
                    await writer.flush()
                    await clock.sleep_until(deadline_ns)
                    return
                await writer.flush()
                await clock.sleep_until(target)
        now = writer.now()
        if deadline_ns is not None and now >= deadline_ns:
            return
        if t == EventType.INSTRUMENT_DEFINED:
            ev = codec.decode(rec)
            data = dict(ev.data)
            symbol = data.pop("symbol")
            data.pop("instrument_id", None)
            kind = InstrumentKind(int(data.pop("kind", InstrumentKind.EQUITY)))
            if data.get("underlying_id", NO_INSTRUMENT) != NO_INSTRUMENT:
                data["underlying_id"] = id_map.get(int(data["underlying_id"]), NO_INSTRUMENT)
            id_map[ev.instrument_id] = writer.instrument(symbol, now, kind=kind, **data)
        else:
            out = bytearray(rec)
            _I64.pack_into(out, _TS_RECV_AT, now)
            iid = _U32.unpack_from(out, _IID_AT)[0]
            if iid != NO_INSTRUMENT:
                _U32.pack_into(out, _IID_AT, id_map[iid])
            writer.add(bytes(out))
        await writer.maybe_flush()


@contextlib.contextmanager
def temporary_log() -> Iterator[EventLog]:
    """A scratch EventLog in a temporary directory (removed at the end)."""
    with tempfile.TemporaryDirectory(prefix="argus-live-") as tmp:
        lg = EventLog.open(Path(tmp) / "log", durability="fast")
        try:
            yield lg
        finally:
            lg.close()


async def run_tape_log(path: str | Path, sink: Sink, clock: Clock, *, speed: float = 1.0, clock_ns: int = NS,
                       duration_s: float | None = None, stop: asyncio.Event | None = None,
                       source: str = "tape") -> LiveStats:
    """Re-play the recorded log at `path` into `sink` as if live."""
    stats = LiveStats(source)
    src = EventLog.open(path, readonly=True)
    try:
        await _run(src, sink, clock, stats, speed=speed, clock_ns=clock_ns, duration_s=duration_s, stop=stop)
    finally:
        src.close()
    return stats


async def run_tape_csv(path: str | Path, sink: Sink, clock: Clock, *, options=None, speed: float = 1.0,
                       clock_ns: int = NS, duration_s: float | None = None,
                       stop: asyncio.Event | None = None) -> LiveStats:
    """Re-play a CSV file (read as argus.connectors.files.ingest_csv reads it) into `sink` as if live."""
    from argus.connectors.files import ingest_csv

    stats = LiveStats("tape")
    with temporary_log() as scratch:
        ingest_csv(scratch, path, options)
        await _run(scratch, sink, clock, stats, speed=speed, clock_ns=clock_ns, duration_s=duration_s, stop=stop)
    return stats


async def run_synthetic(config, sink: Sink, clock: Clock, *, speed: float = 1.0, clock_ns: int = NS,
                        duration_s: float | None = None, stop: asyncio.Event | None = None) -> LiveStats:
    """Stream the seeded synthetic market (argus.connectors.synthetic, `config`: a SyntheticConfig) as
    if live: its days are generated into a scratch log, then released in log order (the synthetic
    receive-time order) at `speed` x real time, stamped by the live clock."""
    from argus.connectors.synthetic import write_synthetic_market

    stats = LiveStats("synthetic")
    with temporary_log() as scratch:
        write_synthetic_market(scratch, config)
        await _run(scratch, sink, clock, stats, speed=speed, clock_ns=clock_ns, duration_s=duration_s, stop=stop)
    return stats


async def _run(src: EventLog, sink: Sink, clock: Clock, stats: LiveStats, *, speed: float, clock_ns: int,
               duration_s: float | None, stop: asyncio.Event | None) -> None:
    writer = LiveWriter(sink, clock, stats, clock_ns=clock_ns)
    async with writer.running():
        deadline = None if duration_s is None else clock.peek_ns() + int(duration_s * NS)
        await replay_log(src, writer, speed=speed, deadline_ns=deadline, stop=stop)


def records_of(log: EventLog) -> list[bytes]:
    """Every record of a log as bytes (for comparisons)."""
    return [bytes(r) for r in _records(log)]


def clock_times(log: EventLog) -> np.ndarray:
    """ts_event of every Clock event of a log, in log order."""
    return np.asarray([_I64.unpack_from(r, _TS_EVENT_AT)[0] for r in _records(log)
                       if _record_type(r) == EventType.CLOCK], dtype=np.int64)
