"""One error hierarchy for the gateway and the single table mapping it to gRPC status codes.

Messages of these errors are written for the client: they name the field, the limit and the
value, and never carry request text or internal details. Anything that is not a
``GatewayError`` becomes INTERNAL with a fixed message.
"""

from __future__ import annotations

import logging
import traceback

import grpc

log = logging.getLogger(__name__)

# Longest user-supplied value quoted in an error message: enough to recognise a model name,
# short enough that no client can make an error message (a gRPC trailer) large.
QUOTE_CHARS = 40


def quote(value: str, limit: int = QUOTE_CHARS) -> str:
    """A user-supplied value for an error message: repr'd, cut to ``limit`` characters."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"... ({len(value)} characters)"


class GatewayError(Exception):
    """Base of every error the gateway reports to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(GatewayError):
    """A request field is missing or outside its limits."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class ModelNotFound(GatewayError):
    """The request names a model this gateway does not serve."""


class Overloaded(GatewayError):
    """Queues are full; the client should back off for ``retry_after_ms`` and retry."""

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(f"{message}; retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


class BackendUnavailable(GatewayError):
    """Triton (or the model in it) is not reachable or not ready."""


class DeadlineExceeded(GatewayError):
    """The request's deadline passed before an answer was ready."""


class Unauthenticated(GatewayError):
    """The call carries no valid credentials (no token, an unknown, removed or expired one)."""


class PermissionDenied(GatewayError):
    """The caller is known but its grant does not cover this method or model."""


class InternalError(GatewayError):
    """Something failed that the client cannot fix; details stay in the server log."""

    def __init__(self) -> None:
        super().__init__(INTERNAL_MESSAGE)


INTERNAL_MESSAGE = "internal error"

STATUS_CODES: dict[type[GatewayError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    ModelNotFound: grpc.StatusCode.NOT_FOUND,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    BackendUnavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    InternalError: grpc.StatusCode.INTERNAL,
}


def trailers(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """Trailing metadata that goes with an error (the retry hint of RESOURCE_EXHAUSTED)."""
    if isinstance(exc, Overloaded):
        return (("retry-after-ms", str(exc.retry_after_ms)),)
    return ()


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Status code and client-safe message for any exception."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls], exc.message  # type: ignore[attr-defined]
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE


def log_unhandled(method: str, exc: BaseException) -> None:
    """Log an unexpected exception: its type and stack, never its message (it could quote text)."""
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled %s in %s:\n%s", type(exc).__name__, method, stack)


def set_status(context: grpc.aio.ServicerContext, exc: BaseException) -> grpc.StatusCode:
    """Give a unary call the status of ``exc`` (code, message, retry trailer); returns the code.

    Without abort(): abort raises through gRPC's handler machinery, which costs more than the
    refusal itself when an overloaded gateway sheds load. A non-OK code makes gRPC discard the
    (absent) response.
    """
    code, message = to_status(exc)
    if extra := trailers(exc):
        context.set_trailing_metadata(extra)
    context.set_code(code)
    context.set_details(message)
    return code
