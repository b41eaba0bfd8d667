"""The event log: an append-only store of chunks in one LMDB environment (DESIGN.md §3).

One writer process (guarded by an exclusive lock file) and any number of readers, in this process or
others. Every append is one LMDB write transaction: all of its records are written, or none.

Tables (LMDB named databases):
  chunks      big-endian first offset -> chunk (argus.log.chunk)
  meta        head, chain_head, chunks, bytes, instruments, first_ts_recv, last_ts_recv
  symbols     big-endian instrument id -> symbol (an index of the InstrumentDefined events)
  symbol_ids  symbol -> instrument id
  producers   producer id -> last sequence, first offset, count (idempotent producers)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import struct
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import lmdb
import numpy as np

from argus.errors import (
    ArgusError,
    CorruptLogError,
    ForkedEnvironmentError,
    LogLockedError,
    ProducerSequenceError,
    WrongExpectedHeadError,
)
from argus.events import codec
from argus.events.codec import Event
from argus.events.layout import NO_INSTRUMENT
from argus.events.types import EventType, InstrumentKind
from argus.kernels import codec as _kcodec
from argus.log.chunk import ZERO_HASH, Chunk, build_chunk, chain_hash, chunk_key, header_bytes, parse_chunk

Durability = Literal["safe", "fast"]

DEFAULT_MAP_SIZE = 256 << 20
DEFAULT_MAX_CHUNK_BYTES = 1 << 20
MAX_READERS = 1024
_PRODUCER = struct.Struct("<QQQ")


@dataclass
class _State:
    """The log's counters and chain head: one packed value in the meta table, read and written once
    per transaction."""

    head: int = 0
    instruments: int = 0
    chunks: int = 0
    bytes: int = 0
    first_ts_recv: int = 0
    last_ts_recv: int = 0
    chain_head: bytes = ZERO_HASH

    PACK = struct.Struct("<QQQQqq32s")

    @classmethod
    def load(cls, txn: lmdb.Transaction, db) -> _State:
        raw = txn.get(b"state", db=db)
        return cls() if raw is None else cls(*cls.PACK.unpack(bytes(raw)))

    def store(self, txn: lmdb.Transaction, db) -> None:
        txn.put(b"state", self.PACK.pack(self.head, self.instruments, self.chunks, self.bytes, self.first_ts_recv,
                                         self.last_ts_recv, self.chain_head), db=db)


@dataclass(frozen=True)
class AppendRequest:
    """One producer's batch: a body of encoded records, with optional concurrency and idempotency keys."""

    body: bytes | memoryview
    expected_head: int | None = None
    producer_id: str | None = None
    sequence: int | None = None


@dataclass(frozen=True)
class AppendResult:
    """The offsets an append was given: [first_offset, first_offset + count)."""

    first_offset: int
    count: int
    duplicate: bool = False  # True when an idempotent retry was answered with the original offsets

    @property
    def offsets(self) -> range:
        return range(self.first_offset, self.first_offset + self.count)


@dataclass(frozen=True)
class LogInfo:
    head: int
    events: int
    chunks: int
    bytes: int
    first_ts_recv: int | None
    last_ts_recv: int | None
    instruments: int


@dataclass
class VerifyReport:
    ok: bool
    events: int
    chunks: int
    chain_head: str
    errors: list[str] = field(default_factory=list)


def _as_body(batch: bytes | memoryview | np.ndarray | Sequence[Event]) -> bytes | memoryview:
    if isinstance(batch, np.ndarray):
        return memoryview(np.ascontiguousarray(batch)).cast("B")
    if isinstance(batch, bytes | bytearray | memoryview):
        return batch
    return codec.concat(codec.encode(e) for e in batch)


class EventLog:
    """An append-only event log at a directory path. Use `EventLog.open(path)`."""

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False, durability: Durability = "safe",
                 map_size: int = DEFAULT_MAP_SIZE, max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES):
        if durability not in ("safe", "fast"):
            raise ValueError(f"durability = {durability!r} must be 'safe' or 'fast'")
        self.path = Path(path)
        self.readonly = readonly
        self.durability = durability
        self.max_chunk_bytes = max_chunk_bytes
        self._pid = os.getpid()
        self._write_lock = threading.RLock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._waiters_lock = threading.Lock()
        self._lock_file = None
        self._psize: int | None = None
        if readonly:
            if not (self.path / "data.mdb").exists():
                raise FileNotFoundError(f"no event log at {self.path} (data.mdb is missing)")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.path / "writer.lock", "a+b")  # noqa: SIM115 - held while open
            try:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock_file.close()
                raise LogLockedError(f"{self.path}: another process holds the writer lock (one writer per log)") from None
        self.env = lmdb.open(str(self.path), map_size=map_size, max_dbs=8, max_readers=MAX_READERS,
                             readonly=readonly, sync=durability == "safe", metasync=durability == "safe",
                             readahead=False, lock=True, subdir=True)
        # Reader slots of processes that died without closing are reclaimed here.
        self.env.reader_check()
        create = not readonly
        self._chunks = self.env.open_db(b"chunks", create=create)
        self._meta = self.env.open_db(b"meta", create=create)
        self._symbols = self.env.open_db(b"symbols", create=create)
        self._symbol_ids = self.env.open_db(b"symbol_ids", create=create)
        self._producers = self.env.open_db(b"producers", create=create)

    @classmethod
    def open(cls, path: str | os.PathLike, **kwargs) -> EventLog:
        return cls(path, **kwargs)

    def close(self) -> None:
        self.env.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------------

    def _check_pid(self) -> None:
        if os.getpid() != self._pid:
            raise ForkedEnvironmentError(
                f"{self.path}: this EventLog was opened in process {self._pid} and used in {os.getpid()} "
                "after a fork; open the log again in the child")

    @contextlib.contextmanager
    def _read_txn(self, buffers: bool = False) -> Iterator[lmdb.Transaction]:
        self._check_pid()
        try:
            txn = self.env.begin(buffers=buffers)
        except lmdb.MapResizedError:
            # The writer (another process) grew the map: adopt the new size.
            self.env.set_mapsize(0)
            txn = self.env.begin(buffers=buffers)
        try:
            yield txn
        finally:
            txn.abort()

    def _state(self, txn: lmdb.Transaction) -> _State:
        return _State.load(txn, self._meta)

    def head(self) -> int:
        """The offset the next appended event will get (the number of events in the log)."""
        with self._read_txn() as txn:
            return self._state(txn).head

    def info(self) -> LogInfo:
        with self._read_txn() as txn:
            st = self._state(txn)
        return LogInfo(head=st.head, events=st.head, chunks=st.chunks, bytes=st.bytes,
                       first_ts_recv=st.first_ts_recv if st.head else None,
                       last_ts_recv=st.last_ts_recv if st.head else None, instruments=st.instruments)

    def chain_head(self) -> bytes:
        with self._read_txn() as txn:
            return self._state(txn).chain_head

    def instrument_id(self, symbol: str) -> int | None:
        with self._read_txn() as txn:
            raw = txn.get(symbol.encode(), db=self._symbol_ids)
            return None if raw is None else int.from_bytes(raw, "big")

    def symbols(self) -> dict[int, str]:
        """Every instrument id and its symbol, in id order."""
        with self._read_txn() as txn:
            return {int.from_bytes(k, "big"): v.decode() for k, v in txn.cursor(db=self._symbols)}

    @contextlib.contextmanager
    def reader(self) -> Iterator[LogReader]:
        """A consistent, zero-copy view of the log: chunk bodies are views into the map, valid inside
        the `with` block only."""
        with self._read_txn(buffers=True) as txn:
            yield LogReader(self, txn)

    def chunks(self, from_offset: int = 0, to_offset: int | None = None, *,
               max_bytes: int = 8 << 20) -> Iterator[Chunk]:
        """Chunks covering [from_offset, to_offset), with their bodies copied (safe to keep).

        Reads in short transactions of about max_bytes, so a slow consumer never pins old pages."""
        next_offset = from_offset
        while True:
            batch: list[Chunk] = []
            size = 0
            with self.reader() as r:
                for c in r.chunks(next_offset, to_offset):
                    batch.append(Chunk(c.header, bytes(c.body), c.start, c.stop))
                    size += len(c.body)
                    if size >= max_bytes:
                        break
            if not batch:
                return
            yield from batch
            next_offset = batch[-1].stop

    def scan(self, walker, from_offset: int = 0, to_offset: int | None = None) -> int:
        """Feed the records in [from_offset, to_offset) to a kernel ChunkWalker, zero-copy.

        Returns the offset after the last record walked."""
        end = from_offset
        with self.reader() as r:
            for c in r.chunks(from_offset, to_offset):
                end = walker.walk(c.body, c.first_offset, c.start, c.stop)
        return end

    def events(self, from_offset: int = 0, limit: int | None = None) -> Iterator[tuple[int, Event]]:
        """(offset, Event) from from_offset on, decoded one by one (for tools, not for hot paths)."""
        to = None if limit is None else from_offset + limit
        for c in self.chunks(from_offset, to):
            for off, rec in codec.iter_records(c.body, c.first_offset):
                if c.start <= off < c.stop:
                    yield off, codec.decode(rec)

    async def subscribe(self, from_offset: int = 0, *, poll_interval: float = 0.05) -> AsyncIterator[Chunk]:
        """Catch up from from_offset, then follow the live tail, one chunk at a time.

        Each read starts at the offset after the last record delivered, so there is no gap and no
        duplicate at the seam between catch-up and live. Appends in this process wake the subscriber at
        once; appends by another process are seen within poll_interval."""
        next_offset = from_offset
        while True:
            delivered = False
            for c in self.chunks(next_offset):
                yield c
                next_offset = c.stop
                delivered = True
            if not delivered:
                await self._wait_for_append(next_offset, poll_interval)

    async def _wait_for_append(self, offset: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._waiters_lock:
            self._waiters.append((loop, fut))
        try:
            if self.head() > offset:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, timeout)
        finally:
            with self._waiters_lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, fut))

    def _notify(self) -> None:
        with self._waiters_lock:
            waiters = list(self._waiters)
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # the loop may be closed
                loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))

    # -- writing ---------------------------------------------------------------------------------

    def append(self, batch: bytes | memoryview | np.ndarray | Sequence[Event], *, expected_head: int | None = None,
               producer_id: str | None = None, sequence: int | None = None) -> AppendResult:
        """Append a batch atomically and durably (per the durability mode); return its offsets.

        The batch is a body of encoded records, a structured array of records (argus.events.codec.
        encode_columns), or a sequence of Events. A bad record refuses the whole batch."""
        result = self.append_many([AppendRequest(_as_body(batch), expected_head, producer_id, sequence)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult | ArgusError]:
        """Append several producers' batches in one write transaction (group commit).

        Each request succeeds or fails on its own; a failed one writes nothing and gets its error in
        the result list. The transaction is durable before this returns."""
        if self.readonly:
            raise ArgusError(f"{self.path} is open read-only")
        self._check_pid()
        with self._write_lock:
            need = sum(len(memoryview(r.body).cast("B")) for r in requests)
            self._ensure_room(need)
            while True:
                try:
                    results = self._append_txn(requests)
                    break
                except lmdb.MapFullError:
                    self._grow(need)
        self._notify()
        return results

    def _append_txn(self, requests: Sequence[AppendRequest]) -> list[AppendResult | ArgusError]:
        """Check each request against the state left by the ones before it, then write every accepted
        body as one run of chunks (a group of single-event appends becomes one chunk)."""
        results: list[AppendResult | ArgusError] = []
        accepted: list[memoryview] = []
        instruments: list[tuple[int, str]] = []
        producers: dict[str, tuple[int, int, int]] = {}
        with self.env.begin(write=True) as txn:
            st = self._state(txn)
            head = st.head
            n_instruments = st.instruments
            lo = hi = None
            checked = self._validate_group(requests, n_instruments)
            for req, pre in zip(requests, checked, strict=True):
                try:
                    body = memoryview(req.body).cast("B")
                    dup = self._check_producer(txn, req, producers)
                    if dup is not None:
                        results.append(dup)
                        continue
                    if req.expected_head is not None and req.expected_head != head:
                        raise WrongExpectedHeadError(req.expected_head, head)
                    info = pre if pre is not None else codec.validate_body(body, n_instruments)
                    seen = {sym for _, sym in instruments}
                    for _, symbol in info.instruments:
                        if symbol in seen or txn.get(symbol.encode(), db=self._symbol_ids) is not None:
                            raise codec.EventValidationError(-1, "INSTRUMENT_DEFINED", "symbol", symbol,
                                                             "a symbol not defined before in the log")
                        seen.add(symbol)
                except ArgusError as exc:
                    results.append(exc)
                    continue
                results.append(AppendResult(head, info.count))
                if req.producer_id is not None:
                    producers[req.producer_id] = (req.sequence, head, info.count)
                if info.count:
                    accepted.append(body)
                    instruments.extend(info.instruments)
                    lo = info.min_ts_recv if lo is None else min(lo, info.min_ts_recv)
                    hi = info.max_ts_recv if hi is None else max(hi, info.max_ts_recv)
                    head += info.count
                    n_instruments = info.n_instruments
            if head == st.head and not producers:
                return results
            if head > st.head:
                self._write_chunks(txn, st, accepted, head - st.head, lo, hi)
            for iid, symbol in instruments:
                txn.put(iid.to_bytes(4, "big"), symbol.encode(), db=self._symbols)
                txn.put(symbol.encode(), iid.to_bytes(4, "big"), db=self._symbol_ids)
            for producer_id, record in producers.items():
                txn.put(producer_id.encode(), _PRODUCER.pack(*record), db=self._producers)
            st.head, st.instruments = head, n_instruments
            st.store(txn, self._meta)
        return results

    @staticmethod
    def _validate_group(requests: Sequence[AppendRequest], n_instruments: int) -> list[codec.BodyInfo | None]:
        """Fast path for a group of plain single-record appends that define no instrument: validate
        them in one kernel call. Anything else (or any failure) is validated request by request."""
        if len(requests) < 2 or any(r.expected_head is not None or r.producer_id is not None for r in requests):
            return [None] * len(requests)
        bodies = [memoryview(r.body).cast("B") for r in requests]
        try:
            info = codec.validate_body(b"".join(bodies), n_instruments)
        except ArgusError:
            return [None] * len(requests)
        if info.instruments or info.count != len(requests):
            return [None] * len(requests)
        # One record each: a request's info is its own record's.
        return [codec.BodyInfo(1, n_instruments, t, t, []) for t in (_recv_of(b) for b in bodies)]

    def _write_chunks(self, txn: lmdb.Transaction, st: _State, bodies: list[memoryview], count: int,
                      lo: int, hi: int) -> None:
        body = bodies[0] if len(bodies) == 1 else memoryview(b"".join(bodies))
        if st.head == 0:
            st.first_ts_recv = lo
        st.last_ts_recv = max(st.last_ts_recv, hi)
        cursor = txn.cursor(db=self._chunks)
        parts = list(self._split(body, count))
        for start, stop, first, n in parts:
            part = body[start:stop]
            plo, phi = (lo, hi) if len(parts) == 1 else _ts_range(part)
            value, st.chain_head = build_chunk(part, n, st.head + first, plo, phi, st.chain_head)
            cursor.put(chunk_key(st.head + first), value, append=True)
            st.chunks += 1
            st.bytes += len(value)

    def _check_producer(self, txn: lmdb.Transaction, req: AppendRequest,
                        pending: dict[str, tuple[int, int, int]]) -> AppendResult | None:
        """The original result of an idempotent retry, None for a new batch; raises on an old sequence.

        `pending` holds what earlier requests of the same transaction recorded."""
        if req.producer_id is None:
            return None
        if req.sequence is None or req.sequence < 0:
            raise codec.EventValidationError(-1, "append", "sequence", req.sequence,
                                             "an integer >= 0 when producer_id is set")
        if req.producer_id in pending:
            last, first, count = pending[req.producer_id]
        else:
            raw = txn.get(req.producer_id.encode(), db=self._producers)
            if raw is None:
                return None
            last, first, count = _PRODUCER.unpack(bytes(raw))
        if req.sequence == last:
            return AppendResult(first, count, duplicate=True)
        if req.sequence < last:
            raise ProducerSequenceError(req.producer_id, req.sequence, last)
        return None

    def _split(self, body: memoryview, count: int) -> Iterator[tuple[int, int, int, int]]:
        """(byte start, byte stop, first record index, record count) of each chunk of a body."""
        if len(body) <= self.max_chunk_bytes:
            yield 0, len(body), 0, count
            return
        positions = _kcodec.index_records(body)
        # Cut at the first record boundary at or past each multiple of max_chunk_bytes.
        cuts = np.searchsorted(positions, np.arange(self.max_chunk_bytes, len(body), self.max_chunk_bytes))
        bounds = [0, *sorted(set(int(c) for c in cuts if 0 < c < count)), count]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            stop = int(positions[b]) if b < count else len(body)
            yield int(positions[a]), stop, a, b - a

    def _used_bytes(self) -> int:
        if self._psize is None:
            self._psize = self.env.stat()["psize"]
        return (self.env.info()["last_pgno"] + 1) * self._psize

    def _ensure_room(self, need: int) -> None:
        # Chunks are stored on overflow pages; twice the body size plus slack covers pages and branches.
        info = self.env.info()
        if self._psize is None:
            self._psize = self.env.stat()["psize"]
        if (info["last_pgno"] + 1) * self._psize + 2 * need + (1 << 20) > info["map_size"]:
            self._grow(need)

    def _grow(self, need: int) -> None:
        size = self.env.info()["map_size"]
        target = max(2 * size, self._used_bytes() + 4 * need + (16 << 20))
        self.env.set_mapsize(target)

    # -- instruments -----------------------------------------------------------------------------

    def define_instrument(self, symbol: str, *, kind: InstrumentKind = InstrumentKind.EQUITY, ts: int = 1,
                          multiplier: float = 1.0, **terms) -> int:
        """The id of `symbol`, appending its InstrumentDefined event when it is new."""
        existing = self.instrument_id(symbol)
        if existing is not None:
            return existing
        with self._write_lock:  # the id is the next dense id; take it under the writer lock
            existing = self.instrument_id(symbol)
            if existing is not None:
                return existing
            with self._read_txn() as txn:
                iid = self._state(txn).instruments
        event = instrument_event(iid, symbol, kind=kind, ts=ts, multiplier=multiplier, **terms)
        self.append([event])
        return iid

    # -- verification ----------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Walk every chunk: checksums, hash chain, dense offsets and every record's layout rules."""
        errors: list[str] = []
        expected = 0
        n_instruments = 0
        n_chunks = 0
        prev = ZERO_HASH
        with self._read_txn(buffers=True) as txn:
            for key, value in txn.cursor(db=self._chunks):
                n_chunks += 1
                try:
                    header, body = parse_chunk(bytes(key), value)
                except CorruptLogError as exc:
                    errors.append(str(exc))
                    prev = chain_hash(header_bytes(value))
                    expected = _safe_end(key, value, expected)
                    continue
                where = f"chunk at offset {header.first_offset}"
                if header.first_offset != expected:
                    errors.append(f"{where}: first_offset = {header.first_offset} must be {expected} (offsets are dense)")
                if header.prev_hash != prev:
                    errors.append(f"{where}: prev_hash does not match the previous chunk (hash chain broken)")
                try:
                    info = codec.validate_body(body, n_instruments)
                    n_instruments = info.n_instruments
                    if info.count != header.count:
                        errors.append(f"{where}: count = {header.count} but the body holds {info.count} records")
                except ArgusError as exc:
                    errors.append(f"{where}: {exc}")
                prev = chain_hash(header_bytes(value))
                expected = header.end
            st = self._state(txn)
            head, stored = st.head, st.chain_head
        if head != expected:
            errors.append(f"meta head = {head} but the chunks end at offset {expected}")
        if stored != prev:
            errors.append("meta chain_head does not match the last chunk's hash (hash chain broken)")
        return VerifyReport(ok=not errors, events=expected, chunks=n_chunks, chain_head=prev.hex(), errors=errors)


class LogReader:
    """A read transaction over the log (see EventLog.reader)."""

    def __init__(self, log: EventLog, txn: lmdb.Transaction):
        self._log = log
        self._txn = txn

    def head(self) -> int:
        return self._log._state(self._txn).head

    def chunks(self, from_offset: int = 0, to_offset: int | None = None) -> Iterator[Chunk]:
        """Chunks overlapping [from_offset, to_offset), checksum-verified, bodies zero-copy."""
        head = self.head()
        stop_at = head if to_offset is None else min(to_offset, head)
        if from_offset >= stop_at:
            return
        cursor = self._txn.cursor(db=self._log._chunks)
        # The chunk holding from_offset is the last one whose first offset is <= from_offset.
        if not cursor.set_range(chunk_key(from_offset)) or bytes(cursor.key()) != chunk_key(from_offset):
            if not cursor.prev():
                cursor.first()
        while True:
            header, body = parse_chunk(bytes(cursor.key()), cursor.value())
            if header.first_offset >= stop_at:
                return
            if header.end > from_offset:
                yield Chunk(header, body, max(from_offset, header.first_offset), min(stop_at, header.end))
            if not cursor.next():
                return


def _recv_of(record: memoryview) -> int:
    return int.from_bytes(record[24:32], "little", signed=True)


def _ts_range(body: memoryview) -> tuple[int, int]:
    lo, hi = _kcodec.ts_recv_range(body)
    return int(lo), int(hi)


def _safe_end(key: bytes, value: memoryview, expected: int) -> int:
    try:
        from argus.events.layout import CHUNK_HEADER_DTYPE

        h = np.frombuffer(value, dtype=CHUNK_HEADER_DTYPE, count=1)[0]
        return int(h["first_offset"]) + int(h["count"])
    except Exception:  # noqa: BLE001 - a header too broken to read: keep the expected offset
        return expected


def instrument_event(instrument_id: int, symbol: str, *, kind: InstrumentKind = InstrumentKind.EQUITY, ts: int = 1,
                     multiplier: float = 1.0, **terms) -> Event:
    """An InstrumentDefined event for the given dense id."""
    data = {"instrument_id": instrument_id, "symbol": symbol, "kind": int(kind), "multiplier": multiplier,
            "underlying_id": terms.pop("underlying_id", NO_INSTRUMENT), **terms}
    return Event(EventType.INSTRUMENT_DEFINED, ts_event=ts, ts_recv=ts, instrument_id=instrument_id, data=data)
