"""Request decoding that never fails: an undecodable message becomes a value the servicer rejects.

gRPC calls a method's deserializer before any handler runs; when it raises (protobuf's
``DecodeError``, e.g. for a string field that is not valid UTF-8) grpcio answers UNKNOWN
and logs a traceback per request. Here the deserializer returns :class:`Undecodable`
instead, naming the offending field (found by walking the wire format against the message
descriptor), and the servicer turns it into INVALID_ARGUMENT like any other bad field.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from gateway.protocol.convert import Undecodable

log = logging.getLogger(__name__)


class _Truncated(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Truncated
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def locate(descriptor: Descriptor, data: bytes, prefix: str = "") -> tuple[str, str] | None:
    """(field path, problem) of the first field that makes ``data`` undecodable, if one is found."""
    pos, seen = 0, {}
    while pos < len(data):
        try:
            key, pos = _varint(data, pos)
        except _Truncated:
            return prefix.rstrip(".") or "request", "ends inside a field key (the message is cut short)"
        number, wire = key >> 3, key & 7
        field = descriptor.fields_by_number.get(number)
        path = f"{prefix}{field.name if field else f'field {number}'}"
        if field is not None and field.label == FieldDescriptor.LABEL_REPEATED:
            path += f"[{seen.get(number, 0)}]"
            seen[number] = seen.get(number, 0) + 1
        try:
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
            elif wire == 2:
                length, pos = _varint(data, pos)
                chunk, pos = data[pos : pos + length], pos + length
                if len(chunk) < length:
                    raise _Truncated
                if field is not None and field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        chunk.decode("utf-8")
                    except UnicodeDecodeError:
                        return path, "is not valid UTF-8"
                elif (
                    field is not None
                    and field.type == FieldDescriptor.TYPE_MESSAGE
                    and (inner := locate(field.message_type, chunk, path + ".")) is not None
                ):
                    return inner
            else:
                return path, f"uses wire type {wire}, which this API does not accept"
        except _Truncated:
            return path, "is cut short (the message ends inside it)"
        if pos > len(data):
            return path, "is cut short (the message ends inside it)"
    return None


class _RateLimitedLog:
    """At most one warning per ``interval_s``, with the count of those suppressed in between."""

    def __init__(self, interval_s: float = 60.0) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last < self._interval_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        log.warning(message + " (%d more since the last such line)", *args, suppressed)


UNDECODABLE_LOG = _RateLimitedLog()


def lenient(message_class: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """A deserializer that returns :class:`Undecodable` instead of raising."""
    name = message_class.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Message | Undecodable:
        try:
            return message_class.FromString(data)
        except DecodeError:
            field, problem = locate(message_class.DESCRIPTOR, data) or ("request", f"is not a valid {name}")
            # The field path only: never the bytes, which may be request text.
            UNDECODABLE_LOG.warning("undecodable %s: %s %s", name, field, problem)
            return Undecodable(name, field, problem)

    return deserialize


def add_service(
    service: ServiceDescriptor, messages: object, servicer: object, server: grpc.aio.Server
) -> None:
    """Register ``servicer``'s methods for ``service`` with lenient request deserializers.

    ``messages`` is the generated ``*_pb2`` module holding the request and response classes.
    """
    handlers = {}
    for method in service.methods:
        request = getattr(messages, method.input_type.name)
        response = getattr(messages, method.output_type.name)
        kind = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=lenient(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
