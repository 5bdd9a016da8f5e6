"""Who is calling, and may they: authentication, method grants, concurrency quotas, the
per-client count and the audit line, the same for every transport.

Credentials (either or both):

- **Bearer tokens**: an ``authorization: Bearer <token>`` header (HTTP) or metadata entry
  (gRPC), checked against the tokens file (:class:`gateway.tokens.TokenFile`).
- **Client certificates (mTLS)**: with ``--tls-client-ca-file`` the TLS handshake requires a
  certificate signed by that CA, so a connection without one never reaches a handler. The
  identity is the certificate's SPIFFE ID, else its subject common name, else its first
  subject alternative name (each transport reads these from its TLS layer).

With both, every call needs a valid token over a verified connection and the token names
the client. With neither, every caller is the client ``anonymous`` (the gateway refuses to
start so on a non-loopback address unless ``--allow-unauthenticated``).

A transport calls :meth:`Gatekeeper.begin` before a call's handler runs (authenticate, check
the method against the client's grant, take one of its concurrent-call slots) and puts the
returned :class:`gateway.callers.Call` in context for the pipeline (model grants, text rate);
:meth:`Gatekeeper.end` when the call ends counts it in ``emotionaware_client_requests_total``
and writes one audit line: client, transport, method, models, status, latency and sizes,
never text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.callers import Call, Quotas, policy_for
from gateway.errors import Code, GatewayError, Overloaded, PermissionDenied, Unauthenticated
from gateway.metrics import CLIENT_REQUESTS
from gateway.settings import Settings
from gateway.tokens import MAX_CLIENT_CHARS, TokenFile

log = logging.getLogger(__name__)
audit_log = logging.getLogger("emotionaware.audit")

ANONYMOUS = "anonymous"
UNAUTHENTICATED_LABEL = "unauthenticated"
OTHER_LABEL = "other"


def certificate_identity(
    spiffe_id: str | None, common_name: str | None, alternative_names: tuple[str, ...] = ()
) -> str | None:
    """A verified client certificate's identity: SPIFFE ID, else common name, else first SAN."""
    for value in (spiffe_id, common_name, *alternative_names[:1]):
        if value:
            return value[:MAX_CLIENT_CHARS]
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``authorization`` value (``Bearer <token>``); None when there is none."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the authorization header must be 'Bearer <token>'")
    return token.strip()


@dataclass(frozen=True)
class Credentials:
    """What a transport knows of a caller before its call runs."""

    transport: str  # "grpc" or "http", for the audit line
    authorization: str | None  # the authorization header or metadata value, as sent
    certificate_identity: str | None  # of a verified client certificate (mTLS)
    peer: str  # the peer address, for the audit line


class Authenticator:
    """Establishes the client of a call from its credentials."""

    def __init__(self, settings: Settings) -> None:
        self.tokens = TokenFile(settings.auth_tokens_file) if settings.auth_tokens_file else None
        self.mtls = bool(settings.tls_client_ca_file)

    def client(self, credentials: Credentials) -> str:
        """The client's identity, or Unauthenticated."""
        if self.tokens is not None:
            token = bearer_token(credentials.authorization)
            if token is None:
                raise Unauthenticated("credentials required: send the header 'authorization: Bearer <token>'")
            return self.tokens.client_of(token)
        if self.mtls:
            if credentials.certificate_identity is None:  # the handshake requires one; a safety net
                raise Unauthenticated("a client certificate is required")
            return credentials.certificate_identity
        return ANONYMOUS


class Gatekeeper:
    """Authentication, method grants, concurrency quotas, client metrics and the audit line."""

    def __init__(
        self, settings: Settings, policies: Callable[[], Mapping], authenticator: Authenticator | None = None
    ) -> None:
        """``policies`` returns the current client policies (the routing table's, hot-reloaded)."""
        self.settings = settings
        self.authenticator = authenticator or Authenticator(settings)
        self.policies = policies
        self.quotas = Quotas()
        self._counters: dict[tuple[str, str, str], object] = {}  # bounded: labels are configured names

    def _label(self, client: str, policies: Mapping) -> str:
        """Configured names only: certificate identities are unbounded, metrics labels must not be."""
        tokens = self.authenticator.tokens
        if client == ANONYMOUS or client in policies or (tokens and client in tokens.clients):
            return client
        return OTHER_LABEL

    def _admit(self, call: Call) -> None:
        """The method grant and a concurrent-call slot (released by :meth:`end`)."""
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

    def begin(self, method: str, credentials: Credentials) -> tuple[Call | None, GatewayError | None]:
        """The admitted call, or the refusal (with the call when the client is known)."""
        call = None
        try:
            client = self.authenticator.client(credentials)
            policies = self.policies()
            policy = policy_for(policies, client)
            call = Call(client, self._label(client, policies), method, self.quotas.state(client, policy))
            self._admit(call)
        except GatewayError as exc:
            return call, exc
        return call, None

    def end(
        self,
        call: Call | None,
        method: str,
        credentials: Credentials,
        code: Code,
        started: float,
        sizes: tuple[int, int],
    ) -> None:
        """The call ended with ``code`` (``started``: its ``time.perf_counter()`` at arrival;
        ``sizes``: request and response bytes)."""
        if call is not None and call.holds_slot:
            call.state.open_calls -= 1
            call.holds_slot = False
        key = (call.label if call else UNAUTHENTICATED_LABEL, method, code.name)
        if (counter := self._counters.get(key)) is None:  # labels() costs more than the increment
            counter = self._counters[key] = CLIENT_REQUESTS.labels(*key)
        counter.inc()  # type: ignore[attr-defined]
        if not self.settings.audit_log:
            return
        latency_ms = (time.perf_counter() - started) * 1000
        fields = {
            "client": call.client if call else "-",
            "rpc": method,
            "models": ",".join(call.models) if call and call.models else "-",
            "code": code.name,
            "transport": credentials.transport,
            "latency_ms": round(latency_ms, 2),
            "texts": call.texts if call else 0,
            "request_bytes": sizes[0],
            "response_bytes": sizes[1],
            "peer": credentials.peer,
        }
        # Every value is the gateway's own (config names, counts, codes, the peer address):
        # request text and user-supplied names never reach this line.
        audit_log.info(" ".join(f"{k}={v}" for k, v in fields.items()), extra={"audit": fields})
