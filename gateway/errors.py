"""One error hierarchy for the gateway and the single table mapping it to status codes.

The codes are the canonical ones of the API (``google.rpc.Code``, which gRPC's status codes
are), each with the HTTP status it answers as: the gRPC transport (gateway/grpc/) and the
HTTP one (gateway/http/) both read this one table, and nothing here imports either.

Messages of these errors are written for the client: they name the field, the limit and the
value, and never carry request text or internal details. Anything that is not a
``GatewayError`` becomes INTERNAL with a fixed message.
"""

from __future__ import annotations

import enum
import logging
import traceback

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


class Unimplemented(GatewayError):
    """The method is turned off on this gateway (e.g. SubmitFeedback without a database)."""


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


class Code(enum.Enum):
    """A canonical status code: its number (as in ``google.rpc.Code`` and gRPC) and HTTP status."""

    OK = (0, 200)
    CANCELLED = (1, 499)
    UNKNOWN = (2, 500)
    INVALID_ARGUMENT = (3, 400)
    DEADLINE_EXCEEDED = (4, 504)
    NOT_FOUND = (5, 404)
    PERMISSION_DENIED = (7, 403)
    RESOURCE_EXHAUSTED = (8, 429)
    UNIMPLEMENTED = (12, 501)
    INTERNAL = (13, 500)
    UNAVAILABLE = (14, 503)
    UNAUTHENTICATED = (16, 401)

    @property
    def number(self) -> int:
        return self.value[0]

    @property
    def http(self) -> int:
        return self.value[1]


# The one table: every transport answers a GatewayError with this code.
STATUS_CODES: dict[type[GatewayError], Code] = {
    InvalidArgument: Code.INVALID_ARGUMENT,
    ModelNotFound: Code.NOT_FOUND,
    Overloaded: Code.RESOURCE_EXHAUSTED,
    BackendUnavailable: Code.UNAVAILABLE,
    Unimplemented: Code.UNIMPLEMENTED,
    DeadlineExceeded: Code.DEADLINE_EXCEEDED,
    Unauthenticated: Code.UNAUTHENTICATED,
    PermissionDenied: Code.PERMISSION_DENIED,
    InternalError: Code.INTERNAL,
}


def retry_after_ms(exc: BaseException) -> int | None:
    """The back-off a refusal suggests (RESOURCE_EXHAUSTED), else None."""
    return exc.retry_after_ms if isinstance(exc, Overloaded) else None


def to_status(exc: BaseException) -> tuple[Code, str]:
    """Status code and client-safe message for any exception."""
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls], exc.message  # type: ignore[attr-defined]
    return Code.INTERNAL, INTERNAL_MESSAGE


def log_unhandled(method: str, exc: BaseException) -> None:
    """Log an unexpected exception: its type and stack, never its message (it could quote text)."""
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled %s in %s:\n%s", type(exc).__name__, method, stack)
