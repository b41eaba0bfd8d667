"""Bearer-token authentication for the gRPC server: one interceptor, two kinds of token.

A read-write token may call every method; a read-only token every method but the appends
(PERMISSION_DENIED). A call without a known token is UNAUTHENTICATED. With no token configured at
all, the interceptor is not installed. Health checks need no token (load balancers and probes)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import grpc
from grpc import aio

#: Methods that write to the log: refused to a read-only token.
WRITE_METHODS = frozenset({"/argus.v1.EventLogService/Append", "/argus.v1.EventLogService/AppendStream",
                           "/argus.v1.ResearchService/SubmitRun"})  # starting a run writes to the data directory
#: Methods open to anyone (standard gRPC health checking).
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/",)


def _matches(token: str, known: Iterable[str]) -> bool:
    # Compare against every token in constant time (no early exit on the first match).
    found = False
    for k in known:
        found |= hmac.compare_digest(token.encode(), k.encode())
    return found


def _bearer(metadata) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _deny(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that refuses the call with `code`."""

    async def refuse(_request, context: aio.ServicerContext):
        await context.abort(code, message)

    kwargs = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse, **kwargs)
    return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)


class BearerTokenInterceptor(aio.ServerInterceptor):
    """Checks `authorization: Bearer <token>` metadata against the configured tokens."""

    def __init__(self, tokens: Iterable[str] = (), read_tokens: Iterable[str] = ()):
        self.tokens = tuple(tokens)
        self.read_tokens = tuple(read_tokens)
        if any(not t for t in (*self.tokens, *self.read_tokens)):
            raise ValueError("token = '' must be a non-empty string")

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(PUBLIC_PREFIXES):
            return handler
        token = _bearer(details.invocation_metadata)
        if token is None:
            return _deny(handler, grpc.StatusCode.UNAUTHENTICATED,
                         "metadata 'authorization' must be 'Bearer <token>'")
        if _matches(token, self.tokens):
            return handler
        if _matches(token, self.read_tokens):
            if method in WRITE_METHODS:
                return _deny(handler, grpc.StatusCode.PERMISSION_DENIED,
                             f"method {method} needs a read-write token; this token is read-only")
            return handler
        return _deny(handler, grpc.StatusCode.UNAUTHENTICATED, "metadata 'authorization': unknown bearer token")
