"""Channels, credentials, metadata and error mapping shared by the sync and asyncio clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Union

import grpc

from emotionaware_client.errors import EmotionAwareError, error_for

#: Largest message sent or received (a batch of 256 long texts with every score fits).
MAX_MESSAGE_BYTES = 64 << 20
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
#: The trailing metadata key of RESOURCE_EXHAUSTED that says how long to back off.
RETRY_AFTER_KEY = "retry-after-ms"
SERVICE = "/emotionaware.v1.EmotionService/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_STATUSES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

Metadata = tuple[tuple[str, str], ...]
PemSource = Union[bytes, str, Path]  # noqa: UP007  (a runtime alias on Python 3.10)


@dataclass(frozen=True)
class TlsConfig:
    """TLS settings: a CA to trust and, for mutual TLS, a client certificate and key.

    Each of ``ca``, ``cert`` and ``key`` is PEM bytes or the path of a PEM file (``str`` or
    :class:`~pathlib.Path`); ``ca=None`` trusts the system's CA certificates.
    """

    ca: PemSource | None = None
    """CA certificate(s) to trust (None: the system's)."""
    cert: PemSource | None = None
    """Client certificate chain, for mTLS (with ``key``)."""
    key: PemSource | None = None
    """Private key of ``cert``."""
    server_name: str | None = None
    """Host name to verify the server's certificate against, when it differs from the target's."""

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("TlsConfig: cert and key go together (mutual TLS)")

    def credentials(self) -> grpc.ChannelCredentials:
        """The gRPC channel credentials of this configuration."""
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca), private_key=_pem(self.key), certificate_chain=_pem(self.cert)
        )


def _pem(source: PemSource | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()


def tls_config(tls: bool | TlsConfig) -> TlsConfig | None:
    """The TlsConfig of a client's ``tls`` argument (None: plaintext)."""
    if isinstance(tls, TlsConfig):
        return tls
    return TlsConfig() if tls else None


def channel_options(tls: TlsConfig | None) -> list[tuple[str, int | str]]:
    """Channel options: message limits, and the TLS server-name override when given."""
    options: list[tuple[str, int | str]] = list(CHANNEL_OPTIONS)
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options


def metadata(token: str | None) -> Metadata:
    """Call metadata: the bearer token as ``authorization: Bearer <token>``, when given."""
    return (("authorization", f"Bearer {token}"),) if token else ()


class _RpcErrorLike(Protocol):
    def code(self) -> grpc.StatusCode: ...
    def details(self) -> str | None: ...
    def trailing_metadata(self) -> Sequence[tuple[str, str | bytes]] | None: ...


def retry_after_ms(trailers: Sequence[tuple[str, str | bytes]] | None) -> int | None:
    """The ``retry-after-ms`` trailer as an int, when present and well-formed."""
    for key, value in trailers or ():
        if key == RETRY_AFTER_KEY:
            try:
                return max(0, int(value.decode() if isinstance(value, bytes) else value))
            except ValueError:
                return None
    return None


def from_rpc_error(error: grpc.RpcError) -> EmotionAwareError:
    """The typed error of a failed gRPC call (sync or asyncio)."""
    call: _RpcErrorLike = error  # type: ignore[assignment]  # RpcErrors raised by calls are Calls
    try:
        code, details = call.code(), call.details() or ""
        trailers = call.trailing_metadata()
    except AttributeError:  # an RpcError that is not a Call
        return error_for(grpc.StatusCode.UNKNOWN, str(error))
    return error_for(code, details, retry_after_ms(trailers))


def encode_health_request(service: str) -> bytes:
    """grpc.health.v1.HealthCheckRequest{service} in wire format (no extra dependency)."""
    raw = service.encode()
    if not raw:
        return b""
    length, out = len(raw), bytearray(b"\x0a")
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes(out) + raw


def decode_health_response(data: bytes) -> str:
    """The status name of a grpc.health.v1.HealthCheckResponse in wire format."""
    i, status = 0, 0
    while i < len(data):
        tag = data[i]
        i += 1
        value, shift = 0, 0
        if tag & 7 == 0:  # varint
            while True:
                byte = data[i]
                i += 1
                value |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            if tag >> 3 == 1:
                status = value
        else:  # any other field type is not expected in this message
            break
    return HEALTH_STATUSES.get(status, "UNKNOWN")
