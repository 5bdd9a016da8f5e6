"""Authentication, grants, quotas and the audit line, as one interceptor on the public port.

Credentials (either or both):

- **Bearer tokens**: ``authorization: Bearer <token>`` metadata, checked against a TOML file
  of SHA-256 hashes (:class:`TokenFile`); each entry names the client and may expire. The
  file (a mounted Kubernetes Secret, say) is re-read when it changes; a file that fails to
  load is logged and the previous tokens stay.
- **Client certificates (mTLS)**: with ``--tls-client-ca-file`` the TLS handshake requires a
  certificate signed by that CA, so a connection without one never reaches a handler (the
  client sees UNAVAILABLE). The identity is the certificate's SPIFFE ID, else its subject
  common name, else its first subject alternative name.

With both, every call needs a valid token over a verified connection and the token names
the client. With neither, every caller is the client ``anonymous`` (the gateway refuses to
start so on a non-loopback address unless ``--allow-unauthenticated``).

For each call of ``emotionaware.v1.EmotionService`` the interceptor authenticates, checks
the method against the client's grant, holds one of its concurrent-call slots, and puts a
:class:`gateway.callers.Call` in context for the pipeline (model grants, text rate). When
the call ends it counts it in ``emotionaware_client_requests_total`` and writes one audit
line: client, method, models, status, latency and sizes, never text. Health and reflection
need no credentials.

``python -m gateway.auth new-token --client NAME`` prints a fresh token and its file entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import secrets
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from gateway.callers import Call, Quotas, enter_call, leave_call, policy_for
from gateway.errors import GatewayError, Overloaded, PermissionDenied, Unauthenticated, set_status
from gateway.metrics import CLIENT_REQUESTS
from gateway.settings import Settings

log = logging.getLogger(__name__)
audit_log = logging.getLogger("emotionaware.audit")

SERVICE_PREFIX = "/emotionaware.v1.EmotionService/"
ANONYMOUS = "anonymous"
UNAUTHENTICATED_LABEL = "unauthenticated"
OTHER_LABEL = "other"
_TOKEN_KEYS = {"client", "sha256", "expires"}
_MAX_CLIENT_CHARS = 128


def token_hash(token: str) -> str:
    """The hex SHA-256 a token is stored as (tokens are random, so no salt or stretching is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    client: str
    expires: dt.datetime | None  # aware, UTC


def parse_tokens(raw: Mapping) -> dict[str, TokenEntry]:
    """``[[tokens]]`` entries by hash; raises ValueError naming the bad entry."""
    unknown = set(raw) - {"tokens"}
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}")
    entries: dict[str, TokenEntry] = {}
    for i, entry in enumerate(raw.get("tokens", [])):
        where = f"tokens[{i}]"
        if set(entry) - _TOKEN_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(set(entry) - _TOKEN_KEYS)}")
        client, digest = str(entry.get("client", "")), str(entry.get("sha256", "")).lower()
        if not client or len(client) > _MAX_CLIENT_CHARS or not client.isprintable():
            raise ValueError(
                f"{where}.client: a printable name of 1 to {_MAX_CLIENT_CHARS} characters is required"
            )
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{where}.sha256: expected 64 hex digits")
        expires = entry.get("expires")
        if expires is not None:
            if not isinstance(expires, dt.datetime) or expires.tzinfo is None:
                raise ValueError(
                    f"{where}.expires: expected a TOML date-time with an offset (2027-01-31T00:00:00Z)"
                )
            expires = expires.astimezone(dt.UTC)
        if digest in entries:
            raise ValueError(f"{where}: the same token is listed twice")
        entries[digest] = TokenEntry(client, expires)
    return entries


class FileWatch:
    """Re-read a file when its modification time or size changes (mounted Secrets swap files)."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = [Path(p) for p in paths if p]
        self._stamp = self.stamp()

    def stamp(self) -> tuple:
        stamps = []
        for path in self.paths:
            try:
                stat = path.stat()
            except FileNotFoundError:
                stamps.append(None)
            else:
                stamps.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        return tuple(stamps)

    def changed(self) -> bool:
        stamp = self.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True


class TokenFile:
    """The hashed bearer tokens, reloaded by :meth:`reload_if_changed`."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._watch = FileWatch([path])
        self._apply(parse_tokens(tomllib.loads(self.path.read_text())))

    def _apply(self, entries: dict[str, TokenEntry]) -> None:
        self.entries = entries
        self.clients = frozenset(e.client for e in entries.values())  # metrics labels, per call

    def reload_if_changed(self) -> bool:
        if not self._watch.changed():
            return False
        try:
            entries = parse_tokens(tomllib.loads(self.path.read_text()))
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            log.error("tokens file %s not applied, keeping the previous tokens: %s", self.path, exc)
            return False
        self._apply(entries)
        log.info("tokens file reloaded: %d tokens for %d clients", len(entries), len(self.clients))
        return True

    def client_of(self, token: str, now: dt.datetime | None = None) -> str:
        entry = self.entries.get(token_hash(token))
        if entry is None:
            raise Unauthenticated("the bearer token is not valid (unknown or revoked)")
        if entry.expires is not None and (now or dt.datetime.now(dt.UTC)) >= entry.expires:
            raise Unauthenticated(f"the bearer token expired at {entry.expires.isoformat()}")
        return entry.client


def certificate_identity(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """The verified client certificate's identity: SPIFFE ID, else common name, else first SAN."""
    for key in ("peer_spiffe_id", "x509_common_name", "x509_subject_alternative_name"):
        values = auth_context.get(key)
        if values:
            return values[0].decode(errors="replace")[:_MAX_CLIENT_CHARS]
    return None


def _bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode(errors="replace")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
            return token.strip()
    return None


class Authenticator:
    """Establishes the client of a call from its metadata and TLS peer."""

    def __init__(self, settings: Settings) -> None:
        self.tokens = TokenFile(settings.auth_tokens_file) if settings.auth_tokens_file else None
        self.mtls = bool(settings.tls_client_ca_file)
        self.poll_s = settings.credentials_poll_s
        self._checked = time.monotonic()

    def client(self, context: grpc.aio.ServicerContext) -> str:
        """The client's identity, or Unauthenticated."""
        if self.tokens is not None:
            # A stat per poll interval, on the call path: a revoked token stops working within
            # poll_s without a background task to supervise.
            if (now := time.monotonic()) - self._checked >= self.poll_s:
                self._checked = now
                self.tokens.reload_if_changed()
            token = _bearer(context.invocation_metadata())
            if token is None:
                raise Unauthenticated(
                    "credentials required: send the metadata 'authorization: Bearer <token>'"
                )
            return self.tokens.client_of(token)
        if self.mtls:
            identity = certificate_identity(context.auth_context())
            if identity is None:  # the handshake requires a certificate; this is a safety net
                raise Unauthenticated("a client certificate is required")
            return identity
        return ANONYMOUS


class CallerInterceptor(grpc.aio.ServerInterceptor):
    """Authentication, method grants, concurrency quotas, client metrics and the audit line."""

    def __init__(
        self, settings: Settings, policies: Callable[[], Mapping], authenticator: Authenticator | None = None
    ) -> None:
        """``policies`` returns the current client policies (the routing table's, hot-reloaded)."""
        self.settings = settings
        self.authenticator = authenticator or Authenticator(settings)
        self.policies = policies
        self.quotas = Quotas()
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._counters: dict[tuple[str, str, str], object] = {}  # bounded: labels are configured names

    def _label(self, client: str, policies: Mapping) -> str:
        """Configured names only: certificate identities are unbounded, metrics labels must not be."""
        tokens = self.authenticator.tokens
        if client == ANONYMOUS or client in policies or (tokens and client in tokens.clients):
            return client
        return OTHER_LABEL

    def _identify(self, method: str, context: grpc.aio.ServicerContext) -> Call:
        client = self.authenticator.client(context)
        policies = self.policies()
        policy = policy_for(policies, client)
        return Call(client, self._label(client, policies), method, self.quotas.state(client, policy))

    def _admit(self, call: Call) -> None:
        """The method grant and a concurrent-call slot (released by :meth:`_end`)."""
        policy = call.policy
        if policy.rpcs is not None and call.method not in policy.rpcs:
            raise PermissionDenied(f"client {call.client} may not call {call.method}")
        limit = policy.max_concurrent_calls
        if limit and call.state.open_calls >= limit:
            raise Overloaded(
                f"client {call.client} has {limit} calls open, its limit", self.settings.retry_after_ms
            )
        call.state.open_calls += 1
        call.holds_slot = True

    def _begin(
        self, method: str, context: grpc.aio.ServicerContext
    ) -> tuple[Call | None, GatewayError | None]:
        """The admitted call, or the refusal (with the call when the client is known)."""
        call = None
        try:
            call = self._identify(method, context)
            self._admit(call)
        except GatewayError as exc:
            return call, exc
        return call, None

    def _end(
        self,
        call: Call | None,
        method: str,
        context: grpc.aio.ServicerContext,
        code: grpc.StatusCode,
        started: float,
        sizes: tuple[int, int],
    ) -> None:
        if call is not None and call.holds_slot:
            call.state.open_calls -= 1
            call.holds_slot = False
        key = (call.label if call else UNAUTHENTICATED_LABEL, method, code.name)
        if (counter := self._counters.get(key)) is None:  # labels() costs more than the increment
            counter = self._counters[key] = CLIENT_REQUESTS.labels(*key)
        counter.inc()
        if not self.settings.audit_log:
            return
        latency_ms = (time.perf_counter() - started) * 1000
        fields = {
            "client": call.client if call else "-",
            "rpc": method,
            "models": ",".join(call.models) if call and call.models else "-",
            "code": code.name,
            "latency_ms": round(latency_ms, 2),
            "texts": call.texts if call else 0,
            "request_bytes": sizes[0],
            "response_bytes": sizes[1],
            "peer": context.peer(),
        }
        # Every value is the gateway's own (config names, counts, codes, the peer address):
        # request text and user-supplied names never reach this line.
        audit_log.info(" ".join(f"{k}={v}" for k, v in fields.items()), extra={"audit": fields})

    @staticmethod
    def _code(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
        code = context.code()
        if code is None:
            return grpc.StatusCode.OK
        if isinstance(code, int):  # grpcio reports what set_code stored, an enum or its int
            return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
        return code

    def _wrap_unary(self, method: str, inner: Callable) -> Callable:
        async def behaviour(request, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            call, refusal = self._begin(method, context)
            if refusal is not None:
                code = set_status(context, refusal)
                self._end(call, method, context, code, started, (_size(request), 0))
                return None
            code, response = grpc.StatusCode.UNKNOWN, None
            token = enter_call(call)
            try:
                response = await inner(request, context)
                code = self._code(context)
                return response
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            finally:
                leave_call(token)
                self._end(call, method, context, code, started, (_size(request), _size(response)))

        return behaviour

    def _wrap_stream(self, method: str, inner: Callable) -> Callable:
        async def behaviour(request_iterator, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            received, sent = [0], [0]
            call, refusal = self._begin(method, context)
            if refusal is not None:
                received[0] = await _drain(request_iterator)
                code = set_status(context, refusal)
                self._end(call, method, context, code, started, (received[0], 0))
                return

            async def counted():
                async for message in request_iterator:
                    received[0] += _size(message)
                    yield message

            code = grpc.StatusCode.UNKNOWN
            token = enter_call(call)
            try:
                async for response in inner(counted(), context):
                    sent[0] += _size(response)
                    yield response
                code = self._code(context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = self._code(context)
                raise
            finally:
                leave_call(token)
                self._end(call, method, context, code, started, (received[0], sent[0]))

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


class CertificateReloader:
    """TLS server credentials whose certificate, key and client CA are re-read when they change.

    gRPC asks for the configuration at each new handshake; connections already open keep
    theirs. A half-written pair (a key that does not match its certificate) fails that
    handshake only; the next one reads the files again.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._watch = FileWatch([settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file])
        self.reloads = 0

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        s = self.settings
        key, chain = Path(s.tls_key_file).read_bytes(), Path(s.tls_cert_file).read_bytes()
        roots = Path(s.tls_client_ca_file).read_bytes() if s.tls_client_ca_file else None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            if not self._watch.changed():
                return None
            configuration = self._configuration()
        except OSError as exc:
            log.error("TLS files not reloaded, keeping the previous ones: %s", exc)
            return None
        self.reloads += 1
        log.info("TLS certificate files reloaded")
        return configuration

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(),
            self._fetch,
            require_client_authentication=bool(self.settings.tls_client_ca_file),
        )


def new_token_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.auth", description="Bearer tokens for the gateway's tokens file."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new-token", help="print a new random token (stderr) and its file entry (stdout)")
    new.add_argument("--client", required=True, help="client identity the token names")
    new.add_argument("--expires", help="expiry as an ISO date-time with offset, e.g. 2027-01-31T00:00:00Z")
    args = parser.parse_args(argv)
    token = secrets.token_urlsafe(32)
    print(
        f"token for {args.client} (shown once; give it to the client, keep it out of files):", file=sys.stderr
    )
    print(token, file=sys.stderr)
    expires = f"\nexpires = {args.expires}" if args.expires else ""
    print(f'[[tokens]]\nclient = "{args.client}"\nsha256 = "{token_hash(token)}"{expires}')
    return 0


if __name__ == "__main__":
    sys.exit(new_token_main())
