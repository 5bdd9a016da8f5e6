"""Typed errors: one exception class per gRPC status code, under :class:`EmotionAwareError`."""

from __future__ import annotations

import grpc

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "CancelledError",
    "DataLossError",
    "DeadlineExceededError",
    "EmotionAwareError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "error_for",
]


class EmotionAwareError(Exception):
    """Base class of every error the client raises for a failed call.

    Attributes:
        code: the gRPC status code of the failure.
        message: the server's (or gRPC's) message; for INVALID_ARGUMENT it names the field.
        retry_after_ms: the back-off the server asked for (``retry-after-ms`` trailer), if any.
    """

    #: The status code this class stands for (the base class: any).
    CODE: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None, retry_after_ms: int | None = None):
        self.code: grpc.StatusCode = code if code is not None else type(self).CODE
        self.message: str = message
        self.retry_after_ms: int | None = retry_after_ms
        super().__init__(f"{self.code.name}: {message}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.code, self.retry_after_ms))


class CancelledError(EmotionAwareError):
    """CANCELLED: the call was cancelled (by the client, typically)."""

    CODE = grpc.StatusCode.CANCELLED


class UnknownError(EmotionAwareError):
    """UNKNOWN: an error without a more specific status."""

    CODE = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(EmotionAwareError):
    """INVALID_ARGUMENT: a request field is out of range; the message names the field and limit."""

    CODE = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(EmotionAwareError):
    """DEADLINE_EXCEEDED: the deadline passed before an answer was ready."""

    CODE = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(EmotionAwareError):
    """NOT_FOUND: the requested model, alias or version is not served."""

    CODE = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(EmotionAwareError):
    """ALREADY_EXISTS (not used by the service; mapped for completeness)."""

    CODE = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(EmotionAwareError):
    """PERMISSION_DENIED: the caller's grant does not cover the method or the model."""

    CODE = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(EmotionAwareError):
    """RESOURCE_EXHAUSTED: the server is overloaded or the caller is over its quota.

    ``retry_after_ms`` carries the back-off the server asked for (retried automatically by the
    client's :class:`~emotionaware_client.RetryPolicy`).
    """

    CODE = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(EmotionAwareError):
    """FAILED_PRECONDITION (not used by the service; mapped for completeness)."""

    CODE = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(EmotionAwareError):
    """ABORTED (not used by the service; mapped for completeness)."""

    CODE = grpc.StatusCode.ABORTED


class OutOfRangeError(EmotionAwareError):
    """OUT_OF_RANGE (not used by the service; mapped for completeness)."""

    CODE = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(EmotionAwareError):
    """UNIMPLEMENTED: the server does not offer the method (e.g. an older server)."""

    CODE = grpc.StatusCode.UNIMPLEMENTED


class InternalError(EmotionAwareError):
    """INTERNAL: an unexpected server fault (the message carries no details)."""

    CODE = grpc.StatusCode.INTERNAL


class UnavailableError(EmotionAwareError):
    """UNAVAILABLE: the server or its backend is not reachable or not ready; retryable."""

    CODE = grpc.StatusCode.UNAVAILABLE


class DataLossError(EmotionAwareError):
    """DATA_LOSS (not used by the service; mapped for completeness)."""

    CODE = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(EmotionAwareError):
    """UNAUTHENTICATED: no valid credentials (send a bearer token, see ``token=``)."""

    CODE = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[EmotionAwareError]] = {
    cls.CODE: cls
    for cls in (
        CancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        AbortedError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}
_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def status_code(code: grpc.StatusCode | int) -> grpc.StatusCode:
    """The :class:`grpc.StatusCode` of a code or its number (unknown numbers: UNKNOWN)."""
    if isinstance(code, grpc.StatusCode):
        return code
    return _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)


def error_for(
    code: grpc.StatusCode | int, message: str, retry_after_ms: int | None = None
) -> EmotionAwareError:
    """The typed exception for a status code (or its number) and message."""
    status = status_code(code)
    cls = _BY_CODE.get(status, UnknownError)
    return cls(message, status, retry_after_ms)
