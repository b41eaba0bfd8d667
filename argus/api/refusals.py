"""What the servicers share: a request refused with a gRPC status, turning any error into the call's
status (logged), and waiting for a subscription's next chunk unless the server starts shutting down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
from grpc import aio

__all__ = ["Refused", "abort", "next_or_closing"]


class Refused(Exception):
    """A request refused with a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


async def abort(context: aio.ServicerContext, exc: BaseException, method: str, log) -> None:
    """End the call with exc's status: a Refused's own, INTERNAL for anything else (logged as an error)."""
    if isinstance(exc, Refused):
        code, message = exc.code, exc.message
    else:
        code, message = grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
    if code == grpc.StatusCode.INTERNAL:
        log.error("request failed", method=method, code=code.name, error=message)
    else:
        log.info("request refused", method=method, code=code.name, error=message)
    await context.abort(code, message)


async def next_or_closing(subscription: AsyncIterator, closing: asyncio.Event, message: str):
    """The subscription's next item, or UNAVAILABLE (`message`) as soon as the server starts shutting down."""
    if closing.is_set():
        raise Refused(grpc.StatusCode.UNAVAILABLE, message)
    nxt = asyncio.ensure_future(anext(subscription))
    stop = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not nxt.done():
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await nxt
    if nxt.cancelled() or not nxt.done():
        raise Refused(grpc.StatusCode.UNAVAILABLE, message)
    return nxt.result()
