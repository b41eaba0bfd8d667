"""Group commit: many concurrent asyncio producers, one durable write transaction per group.

Producers await `append`; their batches wait in a bounded queue (a full queue slows producers down,
it never drops a batch). One writer task takes everything queued, writes it in one transaction on a
worker thread (EventLog.append_many), and acknowledges each producer only after that transaction is
durable. A bad batch fails alone; the rest of its group is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

from argus.events.codec import Event
from argus.log.store import AppendRequest, AppendResult, EventLog, _as_body


class GroupCommitter:
    """The single writer of a log for asyncio producers. Use `async with GroupCommitter(log) as gc:`."""

    def __init__(self, log: EventLog, *, max_queue: int = 4096, max_group_bytes: int = 64 << 20):
        self.log = log
        self.max_group_bytes = max_group_bytes
        self._queue: asyncio.Queue[tuple[AppendRequest, asyncio.Future] | None] = asyncio.Queue(max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="argus-writer")
        self._task: asyncio.Task | None = None
        self.groups = 0  # transactions committed, for tests and metrics
        self.appends = 0

    async def __aenter__(self) -> GroupCommitter:
        self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="argus-group-commit")

    async def close(self) -> None:
        """Write everything already queued, then stop."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def append(self, batch: bytes | memoryview | list[Event], *, expected_head: int | None = None,
                     producer_id: str | None = None, sequence: int | None = None) -> AppendResult:
        """Queue a batch and wait until it is durable; return its offsets or raise its error."""
        if self._task is None:
            raise RuntimeError("GroupCommitter is not started (use `async with`)")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        item = (AppendRequest(_as_body(batch), expected_head, producer_id, sequence), fut)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            await self._queue.put(item)  # backpressure: wait for room, never drop
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if item is None:
                break
            group = [item]
            size = len(memoryview(item[0].body).cast("B"))
            while size < self.max_group_bytes:
                try:
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
                size += len(memoryview(nxt[0].body).cast("B"))
            try:
                results = await loop.run_in_executor(self._executor, self.log.append_many, [r for r, _ in group])
            except Exception as exc:  # noqa: BLE001 - the transaction failed: nobody in it is acknowledged
                for _, fut in group:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.groups += 1
            self.appends += len(group)
            for (_, fut), res in zip(group, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, Exception):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
        # Fail anything left behind after the stop marker rather than leave producers hanging.
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                with contextlib.suppress(asyncio.InvalidStateError):
                    item[1].set_exception(RuntimeError("GroupCommitter closed before this batch was written"))
