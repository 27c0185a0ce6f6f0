"""Bearer-token authentication as a gRPC interceptor.

Clients send ``authorization: Bearer <token>`` metadata. Health checks and server
reflection stay open (as Kubernetes probes expect). Tokens are compared in constant
time and never logged.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc import aio

log = logging.getLogger(__name__)

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class BearerTokenInterceptor(aio.ServerInterceptor):
    """Reject calls without a valid ``authorization: Bearer`` token (UNAUTHENTICATED)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if not tokens or any(not t for t in tokens):
            raise ValueError("expected at least one non-empty token")
        self._tokens = [t.encode() for t in tokens]

    def _valid(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        for key, value in metadata or ():
            if key.lower() != "authorization":
                continue
            raw = value.encode() if isinstance(value, str) else value
            scheme, _, token = raw.partition(b" ")
            if scheme.lower() == b"bearer" and any(
                hmac.compare_digest(token.strip(), t) for t in self._tokens
            ):
                return True
        return False

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(OPEN_PREFIXES) or self._valid(handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        log.warning("unauthenticated call to %s", method)  # the token itself is never logged
        return _deny(await continuation(handler_call_details))


def _deny(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that aborts with UNAUTHENTICATED."""
    message = "missing or invalid bearer token (send 'authorization: Bearer <token>')"

    async def unary(request: object, context: aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def streaming(request: object, context: aio.ServicerContext):  # type: ignore[no-untyped-def]
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # pragma: no cover - makes this an async generator

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(unary)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming)
    return grpc.unary_unary_rpc_method_handler(
        unary,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
