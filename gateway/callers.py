"""Who is calling: client policies (grants and quotas) and the record of one call.

A client is an identity established by :mod:`gateway.access` (a bearer token's client name,
or a client certificate's identity). What it may do comes from the ``[clients]`` section of
the routing file (:func:`parse_policies`)::

    [clients.billing-bot]
    models = ["goemotions"]                 # public model names it may use (default: all)
    rpcs = ["Classify", "ClassifyBatch"]    # methods it may call (default: all)
    texts_per_s = 50                        # sustained texts per second (0 or absent: no limit)
    burst_texts = 200                       # texts it may send at once (default: one second's worth)
    max_concurrent_calls = 8                # calls open at once, a stream counting once (0: no limit)
    traffic_class = "bulk"                  # every call of this client is bulk (default: per call)

    [clients."*"]                           # every client without a section of its own

Without a matching section a client may do everything. Quotas count texts (a Classify is
one, a ClassifyBatch one per text, a stream one per message, an Analyze one per sentence), so
a batch call cannot buy more work than the same texts sent one by one. ``traffic_class = "bulk"`` makes every call of
the client bulk whatever the call asks (a corpus job's credentials cannot jump ahead of
interactive callers); ``"interactive"`` only sets the default of calls that name no class.

The interceptor puts a :class:`Call` in a context variable for the duration of each call;
the pipeline reads it with :func:`current_call` to check model grants and take texts from
the client's bucket. Calls outside the interceptor (unit tests of the pipeline) see none.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.errors import Overloaded, PermissionDenied
from gateway.types import TrafficClass

RPCS = ("Classify", "ClassifyBatch", "ClassifyStream", "Analyze", "SubmitFeedback", "ListModels", "GetModel")
WILDCARD = "*"
_POLICY_KEYS = {"models", "rpcs", "texts_per_s", "burst_texts", "max_concurrent_calls", "traffic_class"}


@dataclass(frozen=True)
class ClientPolicy:
    """Grants and quotas of one client (the defaults allow everything without limit)."""

    models: frozenset[str] | None = None  # None: every served model
    rpcs: frozenset[str] | None = None  # None: every method
    texts_per_s: float = 0.0  # 0: no rate limit
    burst_texts: int = 0
    max_concurrent_calls: int = 0  # 0: no limit
    traffic_class: TrafficClass | None = None  # BULK: every call bulk; None: as each call asks

    def traffic_class_of(self, asked: TrafficClass | None, default: TrafficClass) -> TrafficClass:
        """The class a call of this client is served in: bulk clients are always bulk."""
        if self.traffic_class is TrafficClass.BULK:
            return TrafficClass.BULK
        return asked or self.traffic_class or default


UNRESTRICTED = ClientPolicy()


def parse_policies(raw: Mapping, served_models: set[str]) -> dict[str, ClientPolicy]:
    """The ``[clients]`` section of a routing file; raises ValueError naming the bad key."""
    policies: dict[str, ClientPolicy] = {}
    for client, entry in raw.items():
        where = f"clients.{client}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a table")
        unknown = set(entry) - _POLICY_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        models = entry.get("models")
        if models is not None:
            models = frozenset(str(m) for m in models)
            if missing := models - served_models:
                raise ValueError(f"{where}.models: {sorted(missing)} are not served models")
        rpcs = entry.get("rpcs")
        if rpcs is not None:
            rpcs = frozenset(str(r) for r in rpcs)
            if unknown_rpcs := rpcs - set(RPCS):
                raise ValueError(
                    f"{where}.rpcs: unknown {sorted(unknown_rpcs)}; methods are {', '.join(RPCS)}"
                )
        rate = float(entry.get("texts_per_s", 0))
        burst = int(entry.get("burst_texts", math.ceil(rate)))
        concurrent = int(entry.get("max_concurrent_calls", 0))
        if rate < 0 or burst < 0 or concurrent < 0:
            raise ValueError(
                f"{where}: texts_per_s, burst_texts and max_concurrent_calls must not be negative"
            )
        if rate > 0 and burst < 1:
            raise ValueError(f"{where}.burst_texts: must be at least 1 with a rate limit")
        traffic = entry.get("traffic_class")
        if traffic is not None and traffic not in {c.value for c in TrafficClass}:
            raise ValueError(
                f"{where}.traffic_class: must be one of {', '.join(c.value for c in TrafficClass)}; "
                f"got {str(traffic)[:40]!r}"
            )
        traffic_class = TrafficClass(traffic) if traffic is not None else None
        policies[str(client)] = ClientPolicy(models, rpcs, rate, burst, concurrent, traffic_class)
    return policies


def policy_for(policies: Mapping[str, ClientPolicy], client: str) -> ClientPolicy:
    return policies.get(client) or policies.get(WILDCARD) or UNRESTRICTED


class TokenBucket:
    """``rate`` texts per second refill a bucket of ``capacity``; a take is all or nothing."""

    def __init__(self, rate: float, capacity: int, now: float | None = None) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = float(capacity)
        self.stamp = time.monotonic() if now is None else now

    def take(self, n: int, now: float | None = None) -> float:
        """Take ``n`` tokens: 0.0 when taken, else the seconds until they would be there."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        if n > self.capacity:
            return math.inf  # never, at this capacity
        return (n - self.tokens) / self.rate


@dataclass
class ClientState:
    """A client's quota state, kept across routing reloads while its limits stay the same."""

    policy: ClientPolicy
    bucket: TokenBucket | None
    open_calls: int = 0


class Quotas:
    """Per-client token buckets and open-call counts, for at most ``max_clients`` clients.

    Certificate identities are as many as the CA signs, so the table is bounded: beyond
    ``max_clients`` the least recently seen idle client is forgotten (its bucket starts
    full when it comes back, which only ever favours that client).
    """

    def __init__(self, max_clients: int = 10_000) -> None:
        self.max_clients = max_clients
        self._states: OrderedDict[str, ClientState] = OrderedDict()
        self._lock = threading.Lock()  # the asyncio loop is one thread; this is for tests' threads

    def __len__(self) -> int:
        return len(self._states)

    def state(self, client: str, policy: ClientPolicy) -> ClientState:
        with self._lock:
            state = self._states.get(client)
            if state is None or state.policy != policy:
                rate, burst = policy.texts_per_s, policy.burst_texts
                bucket = TokenBucket(rate, burst) if rate > 0 else None
                # A changed policy starts a full bucket but keeps the calls already open.
                state = ClientState(policy, bucket, state.open_calls if state else 0)
                self._states[client] = state
            self._states.move_to_end(client)
            if len(self._states) > self.max_clients:
                idle = next((c for c, s in self._states.items() if s.open_calls == 0 and c != client), None)
                if idle is not None:
                    del self._states[idle]
            return state


@dataclass
class Call:
    """One call as the interceptor and the pipeline see it; filled in as the call runs."""

    client: str
    label: str  # the client as a metrics label: configured names only, so cardinality is bounded
    method: str
    state: ClientState
    models: list[str] = field(default_factory=list)  # served models it used (for the audit line)
    texts: int = 0
    holds_slot: bool = False  # one of the client's concurrent-call slots, released at the end

    @property
    def policy(self) -> ClientPolicy:
        return self.state.policy

    def may_use(self, model: str) -> bool:
        return self.policy.models is None or model in self.policy.models

    def check_model(self, model: str) -> None:
        """Raise PERMISSION_DENIED for a model outside the grant; note the model otherwise."""
        if not self.may_use(model):
            raise PermissionDenied(f"client {self.client} may not use model {model}")
        if model not in self.models:
            self.models.append(model)

    def charge(self, texts: int, retry_after_ms: int) -> None:
        """Take ``texts`` from the client's bucket or refuse the whole request."""
        self.texts += texts
        bucket = self.state.bucket
        if bucket is None:
            return
        wait_s = bucket.take(texts)
        if wait_s == 0.0:
            return
        if math.isinf(wait_s):
            raise Overloaded(
                f"client {self.client} may send at most {bucket.capacity} texts at once; this request has "
                f"{texts}",
                retry_after_ms,
            )
        raise Overloaded(
            f"client {self.client} is over its rate of {bucket.rate:g} texts per second",
            max(retry_after_ms, math.ceil(wait_s * 1000)),
        )


_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("emotionaware_call", default=None)


def current_call() -> Call | None:
    """The call being served in this task (None outside the interceptor)."""
    return _CALL.get()


def enter_call(call: Call) -> contextvars.Token:
    return _CALL.set(call)


def leave_call(token: contextvars.Token) -> None:
    try:
        _CALL.reset(token)
    except ValueError:  # a stream closed from another context: nothing of this one to restore
        _CALL.set(None)
