"""Group commit: many concurrent asyncio producers, one durable write transaction per group.

Producers await `append`; their batches go to a dedicated writer thread, which takes everything
waiting, writes it in one transaction (EventLog.append_many) and hands the results back to the event
loop in one callback, acknowledging each producer only after that transaction is durable. A bad batch
fails alone; the rest of its group is written. At most `max_queue` batches wait at a time: a full
queue slows producers down, it never drops a batch.
"""

from __future__ import annotations

import asyncio
import queue
import threading

from argus.events.codec import Event
from argus.log.store import AppendRequest, AppendResult, EventLog, _as_body

_STOP = object()


class GroupCommitter:
    """The single writer of a log for asyncio producers. Use `async with GroupCommitter(log) as gc:`."""

    def __init__(self, log: EventLog, *, max_queue: int = 4096, max_group_bytes: int = 64 << 20):
        self.log = log
        self.max_queue = max_queue
        self.max_group_bytes = max_group_bytes
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._room: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future | None = None
        self.groups = 0  # transactions committed, for tests and metrics
        self.appends = 0

    async def __aenter__(self) -> GroupCommitter:
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def start(self) -> None:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._room = asyncio.Semaphore(self.max_queue)
            self._stopped = self._loop.create_future()
            self._thread = threading.Thread(target=self._run, name="argus-group-commit", daemon=True)
            self._thread.start()

    async def close(self) -> None:
        """Write everything already queued, then stop the writer thread."""
        if self._thread is not None:
            self._inbox.put(_STOP)
            await self._stopped
            self._thread.join()
            self._thread = None

    async def append(self, batch: bytes | memoryview | list[Event], *, expected_head: int | None = None,
                     producer_id: str | None = None, sequence: int | None = None) -> AppendResult:
        """Queue a batch and wait until it is durable; return its offsets or raise its error."""
        if self._thread is None:
            raise RuntimeError("GroupCommitter is not started (use `async with`)")
        await self._room.acquire()  # backpressure: wait for room, never drop
        fut = self._loop.create_future()
        self._inbox.put((AppendRequest(_as_body(batch), expected_head, producer_id, sequence), fut))
        return await fut

    def _run(self) -> None:
        """The writer thread: one transaction per group of whatever is waiting."""
        stopping = False
        while not stopping:
            item = self._inbox.get()
            if item is _STOP:
                break
            group = [item]
            size = len(memoryview(item[0].body).cast("B"))
            while size < self.max_group_bytes:
                try:
                    nxt = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                group.append(nxt)
                size += len(memoryview(nxt[0].body).cast("B"))
            try:
                results: list | BaseException = self.log.append_many([r for r, _ in group])
            except Exception as exc:  # noqa: BLE001 - the transaction failed: nobody in it is acknowledged
                results = exc
            self._loop.call_soon_threadsafe(self._acknowledge, group, results)
        self._loop.call_soon_threadsafe(self._stopped.set_result, None)

    def _acknowledge(self, group: list, results: list | BaseException) -> None:
        """On the event loop: resolve every producer of a committed (or failed) group."""
        if not isinstance(results, BaseException):
            self.groups += 1
            self.appends += len(group)
        for i, (_, fut) in enumerate(group):
            self._room.release()
            if fut.done():
                continue
            res = results if isinstance(results, BaseException) else results[i]
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)
