"""The gRPC edge of :mod:`gateway.access`: one interceptor on the public port.

For each call of ``emotionaware.v1.EmotionService`` it hands the call's credentials (the
``authorization`` metadata, the verified client certificate, the peer) to the
:class:`gateway.access.Gatekeeper`, answers a refusal before the handler runs, and puts the
admitted :class:`gateway.callers.Call` in context. Health and reflection need no credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence

import grpc

from gateway.access import Credentials, Gatekeeper, certificate_identity
from gateway.callers import enter_call, leave_call
from gateway.errors import Code
from gateway.grpc.status import CODES_BY_NUMBER, set_status

SERVICE_PREFIX = "/emotionaware.v1.EmotionService/"


def grpc_certificate_identity(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """The identity of the verified client certificate in a gRPC auth context."""

    def first(key: str) -> str | None:
        values = auth_context.get(key)
        return values[0].decode(errors="replace") if values else None

    sans = tuple(v.decode(errors="replace") for v in auth_context.get("x509_subject_alternative_name", ()))
    return certificate_identity(first("peer_spiffe_id"), first("x509_common_name"), sans)


class CallerInterceptor(grpc.aio.ServerInterceptor):
    """Authentication, method grants, concurrency quotas, client metrics and the audit line."""

    def __init__(self, gatekeeper: Gatekeeper) -> None:
        self.gatekeeper = gatekeeper
        self._mtls = gatekeeper.authenticator.mtls
        self._audit = gatekeeper.settings.audit_log
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def _credentials(self, context: grpc.aio.ServicerContext) -> Credentials:
        authorization = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value.decode(errors="replace") if isinstance(value, bytes) else value
                break
        identity = grpc_certificate_identity(context.auth_context()) if self._mtls else None
        return Credentials("grpc", authorization, identity, context.peer() if self._audit else "")

    @staticmethod
    def _code(context: grpc.aio.ServicerContext) -> Code:
        code = context.code()
        if code is None:
            return Code.OK
        number = code if isinstance(code, int) else code.value[0]  # grpcio reports an enum or its int
        return CODES_BY_NUMBER.get(number, Code.UNKNOWN)

    def _wrap_unary(self, method: str, inner: Callable) -> Callable:
        async def behaviour(request, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            credentials = self._credentials(context)
            call, refusal = self.gatekeeper.begin(method, credentials)
            if refusal is not None:
                code = set_status(context, refusal)
                self.gatekeeper.end(call, method, credentials, code, started, (_size(request), 0))
                return None
            code, response = Code.UNKNOWN, None
            token = enter_call(call)
            try:
                response = await inner(request, context)
                code = self._code(context)
                return response
            except asyncio.CancelledError:
                code = Code.CANCELLED
                raise
            finally:
                leave_call(token)
                self.gatekeeper.end(
                    call, method, credentials, code, started, (_size(request), _size(response))
                )

        return behaviour

    def _wrap_stream(self, method: str, inner: Callable) -> Callable:
        async def behaviour(request_iterator, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            received, sent = [0], [0]
            credentials = self._credentials(context)
            call, refusal = self.gatekeeper.begin(method, credentials)
            if refusal is not None:
                received[0] = await _drain(request_iterator)
                code = set_status(context, refusal)
                self.gatekeeper.end(call, method, credentials, code, started, (received[0], 0))
                return

            async def counted():
                async for message in request_iterator:
                    received[0] += _size(message)
                    yield message

            code = Code.UNKNOWN
            token = enter_call(call)
            try:
                async for response in inner(counted(), context):
                    sent[0] += _size(response)
                    yield response
                code = self._code(context)
            except asyncio.CancelledError:
                code = Code.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = self._code(context)
                raise
            finally:
                leave_call(token)
                self.gatekeeper.end(call, method, credentials, code, started, (received[0], sent[0]))

        return behaviour

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        full = handler_call_details.method
        # The handlers are registered once at start-up: a wrapped one is reused for every call,
        # without looking the method up again.
        if (cached := self._handlers.get(full)) is not None:
            return cached
        handler = await continuation(handler_call_details)
        if handler is None or not full.startswith(SERVICE_PREFIX):
            return handler  # health and reflection: no credentials, nothing to count
        method = full[len(SERVICE_PREFIX) :]
        if handler.unary_unary is not None:
            wrapped = grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        elif handler.stream_stream is not None:
            wrapped = grpc.stream_stream_rpc_method_handler(
                self._wrap_stream(method, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        else:  # the API has no other kinds; an unknown one is served unwrapped rather than broken
            return handler
        self._handlers[full] = wrapped
        return wrapped


# A refused stream reads at most this many of its messages, for at most this long, before it
# ends: grpcio's asyncio client reports INTERNAL instead of the server's status when one of its
# writes lands after the server ended the stream (grpc/grpc#36066), so a stream ended while its
# client is still sending would not get its refusal. Bounded, so a refused caller costs little.
_DRAIN_MESSAGES = 16
_DRAIN_S = 0.25


async def _drain(request_iterator) -> int:
    """Read a refused stream's first messages (until its client half-closes, within the bounds);
    returns their bytes. The messages are dropped unread."""
    size = 0
    # Whatever ends the reading (the time bound, a broken stream) just ends the drain: the
    # refusal is the answer either way. A cancelled call (CancelledError) still propagates.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_DRAIN_S):
            count = 0
            async for message in request_iterator:
                size += _size(message)
                count += 1
                if count >= _DRAIN_MESSAGES:
                    break
    return size


def _size(message: object) -> int:
    byte_size = getattr(message, "ByteSize", None)
    return byte_size() if byte_size is not None else 0
