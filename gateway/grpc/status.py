"""The gRPC side of the one error table (:data:`gateway.errors.STATUS_CODES`): a status per error."""

from __future__ import annotations

import grpc

from gateway.errors import Code, retry_after_ms, to_status

# gRPC's codes are the canonical ones, number for number.
GRPC_CODES: dict[Code, grpc.StatusCode] = {code: grpc.StatusCode[code.name] for code in Code}
CODES_BY_NUMBER: dict[int, Code] = {code.number: code for code in Code}


def trailers(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """Trailing metadata that goes with an error (the retry hint of RESOURCE_EXHAUSTED)."""
    if (retry_ms := retry_after_ms(exc)) is not None:
        return (("retry-after-ms", str(retry_ms)),)
    return ()


def grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """gRPC status code and client-safe message for any exception."""
    code, message = to_status(exc)
    return GRPC_CODES[code], message


def set_status(context: grpc.aio.ServicerContext, exc: BaseException) -> Code:
    """Give a unary call the status of ``exc`` (code, message, retry trailer); returns the code.

    Without abort(): abort raises through gRPC's handler machinery, which costs more than the
    refusal itself when an overloaded gateway sheds load. A non-OK code makes gRPC discard the
    (absent) response.
    """
    code, message = to_status(exc)
    if extra := trailers(exc):
        context.set_trailing_metadata(extra)
    context.set_code(GRPC_CODES[code])
    context.set_details(message)
    return code
