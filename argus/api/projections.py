"""The live projections of the server and argus.v1.ProjectionService over them (DESIGN.md §5, §8).

LiveProjections runs a ProjectionEngine over the server's log as a background task: it resumes from the
newest snapshot in the derived store (`<data>/derived/<config hash>/`, beside the log directory), then
follows the log, writing every output row and a snapshot every `snapshot_every` events to the store,
and hands each batch of emitted rows to the watchers.

The engine and the watchers' registrations share the event loop, so "the engine's position" and "the
rows in the derived store" are consistent at any await point: every row produced by an event before
the position is in the store, every later row comes in a later batch. A watch reads the store up to
the position it registered at, then its queue. A watcher's queue holds at most WATCH_QUEUE_BATCHES
batches; one that falls further behind is dropped from the fan-out (the engine never waits for it)
and catches up again from the store, from where it stopped.

Status codes:
  INVALID_ARGUMENT  unknown output, timeframe or symbol (or a filter the output cannot apply), bad format
  OUT_OF_RANGE      an offset past the engine's position
  UNAVAILABLE       the server is shutting down, or the projections stopped on an error
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import struct
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import structlog
import xxhash
from grpc import aio

from argus.api.refusals import Refused, abort
from argus.log import EventLog
from argus.projections.config import ProjectionConfig
from argus.projections.engine import ProjectionEngine
from argus.projections.store import DerivedStore
from argus.v1 import projection_service_pb2 as pb
from argus.v1 import projection_service_pb2_grpc as pb_grpc

#: Batches a watcher may have queued before it is dropped to catch up from the derived store.
WATCH_QUEUE_BATCHES = 256
DEFAULT_MAX_BATCH_ROWS = 10_000
_ROW_KEY = struct.Struct(">QI")  # the derived store's row keys (argus.projections.store)

log = structlog.get_logger("argus.api.projections")


def dtype_json(dtype: np.dtype) -> str:
    """The numpy descr of a row dtype as JSON (np.dtype([tuple(f) for f in json.loads(s)]) reads it)."""
    return json.dumps([list(f) for f in dtype.descr])


class _Watcher:
    """One watch's bounded queue of (first offset, next offset, rows) batches."""

    def __init__(self, output: str):
        self.output = output
        self.batches: deque[tuple[int, np.ndarray]] = deque()
        self.wake = asyncio.Event()
        self.detached = False


class LiveProjections:
    """A ProjectionEngine following a log, its derived store, its digests and its watchers."""

    def __init__(self, event_log: EventLog, config: ProjectionConfig, derived_root: str | os.PathLike):
        self.log = event_log
        self.config = config
        self.engine = ProjectionEngine(event_log, config)
        self.names = self.engine.projections.output_names()
        self.dtypes = self.engine.projections.dtypes()
        self.store = DerivedStore.for_config(derived_root, config.config_hash, self.names)
        self.engine.store = self.store
        # Handles of the output tables (open_db of an open table returns the same table).
        self._dbs = {n: self.store.env.open_db(f"out:{n}".encode(), create=False) for n in self.names}
        self.timeframes = [b.label for b in config.bars]
        self.restored_from = self._newest_snapshot()
        self.start_offset = self.restored_from or 0
        self.position = self.start_offset
        self._digests = {n: xxhash.xxh3_128() for n in self.names}
        self._watchers: set[_Watcher] = set()
        self._task: asyncio.Task | None = None
        self.error: BaseException | None = None
        self.stopped = asyncio.Event()

    def _newest_snapshot(self) -> int | None:
        """The newest offset at which every reducer has a snapshot (where the engine resumes)."""
        common = None
        for r in self.engine.projections.all:
            offs = set(self.store.snapshot_offsets(r.name))
            common = offs if common is None else common & offs
        return max(common) if common else None

    # -- the engine task ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="argus-projections")

    async def _run(self) -> None:
        follow = self.engine.follow(self.start_offset)
        try:
            async for next_offset, rows in follow:
                for name, arr in rows.items():
                    if len(arr):
                        self._digests[name].update(arr)
                self.position = next_offset
                self._publish(rows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to every reader, then the task ends
            self.error = exc
            log.error("projections stopped", error=f"{type(exc).__name__}: {exc}", position=self.position)
        finally:
            self.stopped.set()
            for w in list(self._watchers):
                w.wake.set()
            with contextlib.suppress(Exception):
                await follow.aclose()

    def _publish(self, rows: dict[str, np.ndarray]) -> None:
        for w in list(self._watchers):
            arr = rows.get(w.output)
            if arr is None or not len(arr):
                continue
            if len(w.batches) >= WATCH_QUEUE_BATCHES:
                # Too slow: the engine does not wait; the watcher catches up from the derived store.
                self._watchers.discard(w)
                w.detached = True
            else:
                w.batches.append((self.position, arr))
            w.wake.set()

    async def stop(self) -> None:
        """Stop the engine (what it wrote stays in the store) and close the store."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.stopped.set()
        for w in list(self._watchers):
            w.wake.set()
        self.store.close()

    # -- digests -----------------------------------------------------------------------------------

    def state_digest(self) -> bytes:
        return self.engine.projections.state_digest()

    def outputs_digest(self) -> bytes:
        """Like a replay's outputs_digest, over the rows emitted since the engine started."""
        total = hashlib.blake2b(digest_size=32)
        for name, h in self._digests.items():
            total.update(name.encode() + b"\0" + h.digest())
        return total.digest()

    # -- reads -------------------------------------------------------------------------------------

    def check_running(self) -> None:
        if self.error is not None:
            raise Refused(grpc.StatusCode.UNAVAILABLE,
                          f"the projections stopped on an error: {type(self.error).__name__}: {self.error}")

    def read_page(self, name: str, start_key: bytes, to_offset: int, max_rows: int) -> tuple[np.ndarray, bytes | None]:
        """Up to max_rows stored rows of an output from a key, with producing offsets < to_offset; and
        the key to continue from (None at the end)."""
        dtype = self.dtypes[name]
        parts: list[bytes] = []
        next_key = None
        with self.store.env.begin(buffers=True) as txn:
            cur = txn.cursor(db=self._dbs[name])
            if cur.set_range(start_key):
                for key, value in cur.iternext():
                    off, _ = _ROW_KEY.unpack(bytes(key))
                    if off >= to_offset:
                        break
                    if len(parts) == max_rows:
                        next_key = bytes(key)
                        break
                    parts.append(bytes(value))
        return np.frombuffer(b"".join(parts), dtype=dtype).copy(), next_key

    def latest(self, name: str, keep, to_offset: int, scan: int = 4096) -> np.ndarray:
        """The newest stored row with producing offset < to_offset that `keep` accepts (0 or 1 rows)."""
        dtype = self.dtypes[name]
        with self.store.env.begin(buffers=True) as txn:
            cur = txn.cursor(db=self._dbs[name])
            found = cur.set_range(_ROW_KEY.pack(to_offset, 0))
            found = cur.prev() if found else cur.last()
            while found:
                parts = []
                while found and len(parts) < scan:
                    parts.append(bytes(cur.value()))
                    found = cur.prev()
                arr = np.frombuffer(b"".join(parts), dtype=dtype)
                hit = np.flatnonzero(keep(arr))
                if len(hit):
                    return arr[hit[:1]].copy()
        return np.empty(0, dtype=dtype)

    def attach(self, output: str) -> tuple[_Watcher, int]:
        """Register a watcher; every row produced before the returned position is in the store, every
        later one will be in its queue."""
        w = _Watcher(output)
        self._watchers.add(w)
        return w, self.position

    def detach(self, w: _Watcher) -> None:
        self._watchers.discard(w)


# -- the servicer -------------------------------------------------------------------------------------


class _Filter:
    """A request's output, symbol and timeframe, validated."""

    def __init__(self, live: LiveProjections, output: str, symbol: str, timeframe: str, fmt: int):
        if output not in live.dtypes:
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                          f"field 'output' = {output!r} must be one of {', '.join(live.names)}")
        if fmt not in (pb.ROW_FORMAT_UNSPECIFIED, pb.ROW_FORMAT_ROWS, pb.ROW_FORMAT_RAW, pb.ROW_FORMAT_BOTH):
            raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"field 'format' = {fmt} must be a RowFormat (0 to 3)")
        self.name = output
        self.dtype = live.dtypes[output]
        self.fmt = fmt or pb.ROW_FORMAT_ROWS
        fields = self.dtype.names
        self.symbols = live.log.symbols()
        self.timeframes = live.timeframes
        self.instrument_id = self.spec = None
        if symbol:
            ids = {s: i for i, s in self.symbols.items()}
            if symbol not in ids:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT, f"field 'symbol' = {symbol!r} is not defined in the log")
            if "instrument_id" not in fields:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"field 'symbol' = {symbol!r}: output {output!r} has no symbol to filter on")
            self.instrument_id = ids[symbol]
        if timeframe:
            if timeframe not in self.timeframes:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"field 'timeframe' = {timeframe!r} must be one of {', '.join(self.timeframes)}")
            if "spec" not in fields:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"field 'timeframe' = {timeframe!r}: output {output!r} has no timeframe to filter on")
            self.spec = self.timeframes.index(timeframe)
        self._floats = [n for n in fields if self.dtype[n].kind == "f" and not self.dtype[n].shape]
        self._ints = [n for n in fields if self.dtype[n].kind in "iub" and not self.dtype[n].shape and n != "offset"]
        self._arrays = [n for n in fields if self.dtype[n].shape and self.dtype[n].base.kind in "fiub"]

    def mask(self, arr: np.ndarray) -> np.ndarray:
        keep = np.ones(len(arr), dtype=bool)
        if self.instrument_id is not None:
            keep &= arr["instrument_id"] == self.instrument_id
        if self.spec is not None:
            keep &= arr["spec"] == self.spec
        return keep

    def select(self, arr: np.ndarray) -> np.ndarray:
        return arr if self.instrument_id is None and self.spec is None else arr[self.mask(arr)]

    def rows(self, arr: np.ndarray) -> list[pb.Row]:
        out = []
        has_sym, has_tf = "instrument_id" in self.dtype.names, "spec" in self.dtype.names
        for rec in arr:
            row = pb.Row(offset=int(rec["offset"]))
            if has_sym:
                row.symbol = self.symbols.get(int(rec["instrument_id"]), "")
            if has_tf:
                spec = int(rec["spec"])
                row.timeframe = self.timeframes[spec] if spec < len(self.timeframes) else ""
            for n in self._floats:
                row.values[n] = float(rec[n])
            for n in self._ints:
                row.ints[n] = int(rec[n]) if int(rec[n]) < 1 << 63 else int(rec[n]) - (1 << 64)
            for n in self._arrays:
                for i, v in enumerate(np.ravel(rec[n]).tolist()):
                    if self.dtype[n].base.kind == "f":
                        row.values[f"{n}[{i}]"] = float(v)
                    else:
                        row.ints[f"{n}[{i}]"] = int(v)
            out.append(row)
        return out

    def fill(self, msg, arr: np.ndarray):
        if self.fmt in (pb.ROW_FORMAT_ROWS, pb.ROW_FORMAT_BOTH):
            msg.rows.extend(self.rows(arr))
        if self.fmt in (pb.ROW_FORMAT_RAW, pb.ROW_FORMAT_BOTH):
            msg.raw_rows = arr.tobytes()
            msg.dtype = dtype_json(self.dtype)
        return msg


def _output_info(name: str, dtype: np.dtype) -> pb.OutputInfo:
    return pb.OutputInfo(name=name, dtype=dtype_json(dtype), has_symbol="instrument_id" in dtype.names,
                         has_timeframe="spec" in dtype.names, fields=list(dtype.names))


class ProjectionServicer(pb_grpc.ProjectionServiceServicer):
    """argus.v1.ProjectionService over LiveProjections."""

    def __init__(self, live: LiveProjections, closing: asyncio.Event):
        self.live = live
        self.closing = closing

    async def _abort(self, context: aio.ServicerContext, exc: BaseException, method: str) -> None:
        await abort(context, exc, method, log)

    def _check_offset(self, field: str, value: int) -> int:
        position = self.live.position
        if value > position:
            raise Refused(grpc.StatusCode.OUT_OF_RANGE,
                          f"field '{field}' = {value} must be <= the projections' position ({position})")
        return position

    async def ListOutputs(self, request, context):  # noqa: N802 - gRPC method name
        try:
            live = self.live
            return pb.ListOutputsResponse(
                outputs=[_output_info(n, live.dtypes[n]) for n in live.names], timeframes=live.timeframes,
                symbols=list(live.log.symbols().values()), config_hash=live.config.config_hash,
                next_offset=live.position)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            await self._abort(context, exc, "ListOutputs")

    async def GetRange(self, request, context):  # noqa: N802
        try:
            self.live.check_running()
            f = _Filter(self.live, request.output, request.symbol, request.timeframe, request.format)
            position = self._check_offset("from_offset", request.from_offset)
            stop = request.to_offset or position
            self._check_offset("to_offset", stop)
            if stop < request.from_offset:
                raise Refused(grpc.StatusCode.INVALID_ARGUMENT,
                              f"field 'to_offset' = {stop} must be 0 or >= from_offset ({request.from_offset})")
            max_rows = request.max_batch_rows or DEFAULT_MAX_BATCH_ROWS
            key: bytes | None = _ROW_KEY.pack(request.from_offset, 0)
            pending = np.empty(0, dtype=f.dtype)
            while key is not None:
                page, key = await asyncio.to_thread(self.live.read_page, f.name, key, stop, max_rows)
                pending = np.concatenate([pending, f.select(page)])
                while len(pending) >= max_rows or (key is None and len(pending)):
                    batch, pending = pending[:max_rows], pending[max_rows:]
                    yield f.fill(pb.GetRangeResponse(count=len(batch)), batch)
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "GetRange")

    async def GetLatest(self, request, context):  # noqa: N802
        try:
            self.live.check_running()
            f = _Filter(self.live, request.output, request.symbol, request.timeframe, request.format)
            position = self.live.position
            arr = await asyncio.to_thread(self.live.latest, f.name, f.mask, position)
            msg = pb.GetLatestResponse(found=bool(len(arr)), next_offset=position)
            return f.fill(msg, arr) if len(arr) else msg
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "GetLatest")

    async def Watch(self, request, context):  # noqa: N802
        watcher = None
        try:
            self.live.check_running()
            f = _Filter(self.live, request.output, request.symbol, request.timeframe, request.format)
            self._check_offset("from_offset", request.from_offset)
            delivered = request.from_offset  # every row produced before it has been sent
            while True:
                watcher, position = self.live.attach(f.name)
                # Catch up from the store: rows produced by events in [delivered, position).
                async for msg in self._stored(f, delivered, position):
                    yield msg
                delivered = position
                while True:
                    while watcher.batches:
                        stop, arr = watcher.batches.popleft()
                        arr = f.select(arr[arr["offset"] >= delivered])
                        delivered = stop
                        if len(arr):
                            yield f.fill(pb.WatchResponse(count=len(arr), next_offset=stop), arr)
                    if watcher.detached:
                        break  # dropped for being slow: catch up from the store again
                    self._check_open()
                    watcher.wake.clear()
                    await self._wait(watcher.wake)
                self.live.detach(watcher)
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "Watch")
        finally:
            if watcher is not None:
                self.live.detach(watcher)

    async def _stored(self, f: _Filter, from_offset: int, stop: int) -> AsyncIterator[pb.WatchResponse]:
        key: bytes | None = _ROW_KEY.pack(from_offset, 0)
        while key is not None and from_offset < stop:
            page, key = await asyncio.to_thread(self.live.read_page, f.name, key, stop, DEFAULT_MAX_BATCH_ROWS)
            page = f.select(page)
            if len(page):
                yield f.fill(pb.WatchResponse(count=len(page), next_offset=stop if key is None else
                                              int(_ROW_KEY.unpack(key)[0])), page)

    def _check_open(self) -> None:
        if self.closing.is_set() or self.live.stopped.is_set():
            self.live.check_running()
            raise Refused(grpc.StatusCode.UNAVAILABLE, "the server is shutting down: watch again to resume")

    async def _wait(self, wake: asyncio.Event) -> None:
        """Until the watcher is woken, or the server starts shutting down."""
        woken = asyncio.ensure_future(wake.wait())
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait({woken, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (woken, closing):
                t.cancel()
        self._check_open()

    async def Digests(self, request, context):  # noqa: N802
        try:
            live = self.live
            msg = pb.DigestsResponse(next_offset=live.position, state_digest=live.state_digest(),
                                     outputs_digest=live.outputs_digest(), outputs_from_offset=live.start_offset,
                                     config_hash=live.config.config_hash)
            if live.restored_from is not None:
                msg.restored_from = live.restored_from
            return msg
        except Exception as exc:  # noqa: BLE001
            await self._abort(context, exc, "Digests")


def derived_root(log_dir: str | os.PathLike) -> Path:
    """The data directory whose `derived/` holds the derived stores: the parent of the log directory."""
    return Path(log_dir).resolve().parent
