"""Micro-batching of the sequences of concurrent requests, per model version, and their admission.

Waiting sequences are kept in two lanes, interactive and bulk (:class:`TrafficClass`), each
sorted by token length. A batch is formed around the sequence that has waited longest in its
lane, growing to its nearest lengths on either side while each addition adds at most
``_PAD_ALLOWANCE`` padded tokens, up to ``batch_max_texts`` sequences or ``batch_token_budget``
padded tokens. So the oldest sequence of a lane is always served next (no starvation) and,
under load, a batch holds texts of nearly one length. Interactive batches go first; bulk
batches use at most ``batch_max_inflight - 1`` of the backend slots (one when it is 1) and are
sized to take at most ``_BULK_BATCH_SHARE`` of the queue-time budget, so an interactive text
never waits behind more than one short bulk batch.

A batch is sent at once when no batch of its model is in flight (an idle backend should not
wait) or when a full batch is waiting, otherwise when the oldest sequence has waited
``batch_wait_ms``. At most ``batch_max_inflight`` batches per model version are at the backend
at once.

Admission (:meth:`MicroBatcher.admit`) estimates when a text admitted now would be answered:
the rest of the batches in flight, then the work queued ahead of it in its class, served in
the largest batches allowed, priced by the backend's measured cost per batch and per token
(:class:`gateway.admission.CostModel`) and scaled by how far such estimates were off for the
answers of the last seconds (:class:`gateway.admission.Calibration`), and by at least as much
as the oldest queued interactive text is already late against its own estimate (a backend that
slows at once shows there before any late answer does).

- Interactive calls are admitted when their answer is expected within ``queue_budget_ms`` of
  their arrival. Otherwise they wait, first come first served, up to ``admission_hold_max``
  per model version, and are refused (RESOURCE_EXHAUSTED, with a ``retry-after-ms``) only when
  they could no longer be answered within the budget, even by an idle backend. So a load that
  can be served within the budget is never refused, and a client that retries at once can't
  turn refusals into a spin that takes the CPU from the model.
- Stream messages (``flow``) wait the same way but as long as their deadline allows: the
  stream is not read meanwhile, which slows it down instead of refusing it.
- Bulk calls are admitted while the bulk lane has room (``bulk_queue_max_texts``) and the work
  ahead of them (both lanes) and their own would end before their deadline.

Each refusal is counted by class and reason (``emotionaware_refused_total``). Until the first
batch has completed there is no estimate and only the counts apply.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from emotionaware.padding import pad_rows
from gateway.admission import SLACK_S, Calibration, CostModel
from gateway.backends.base import Backend
from gateway.errors import DeadlineExceeded, GatewayError, InternalError, Overloaded
from gateway.metrics import (
    ADMISSION_ESTIMATE,
    BATCH_TEXTS,
    BATCH_TOKENS,
    HELD,
    PADDING_EFFICIENCY,
    QUEUE_DEPTH,
    REFUSED,
    STAGE_LATENCY,
)
from gateway.settings import Settings
from gateway.specs import ModelSpec
from gateway.types import TrafficClass

log = logging.getLogger(__name__)

INTERACTIVE, BULK = TrafficClass.INTERACTIVE, TrafficClass.BULK
# Used when a model's metadata has no length buckets (e.g. exported by an older release).
_FALLBACK_BUCKETS = (16, 32, 64, 128, 256, 512)
# Most padded tokens one more sequence may add to a batch (its own padding plus the widening
# of the rows already in). On CPU a run costs about as much as 20 to 40 tokens on top of its
# tokens, so a sequence that would add more padding than that is cheaper in another batch.
# Chosen by `make perf` on GoEmotions test texts (see bench/results).
_PAD_ALLOWANCE = 8
# Weight of the newest sequence in the moving average of queued sequences' tokens (the
# "typical" text counted before a request is tokenized).
_TYPICAL_SMOOTHING = 0.2
# A bulk batch is sized to hold the backend for at most this share of the queue-time budget:
# an interactive text that arrives just after one was sent waits for it.
_BULK_BATCH_SHARE = 0.15


def _length(item: _Item) -> int:
    return item.length


@dataclass(eq=False)  # identity: items are removed from the queue by identity, never compared by value
class _Item:
    ids: np.ndarray
    future: asyncio.Future
    enqueued: float
    deadline: float
    lane: _Lane
    admitted_at: float = 0.0  # when its request was admitted, and the wait estimated then (raw)
    estimated_s: float | None = None
    length: int = field(init=False)
    taken: bool = field(default=False, init=False)
    settled: bool = field(default=False, init=False)  # its tokens no longer count as queued work

    def __post_init__(self) -> None:
        self.length = len(self.ids)


class _Lane:
    """The queued sequences of one traffic class: sorted by length, and in arrival order."""

    def __init__(self, traffic_class: TrafficClass) -> None:
        self.traffic_class = traffic_class
        self.queue: list[_Item] = []  # sorted by length, then arrival
        self.arrivals: deque[_Item] = deque()  # arrival order; taken items are skipped lazily
        self.live = 0  # sequences queued whose caller still waits
        self.tokens = 0  # their tokens

    def oldest(self) -> _Item | None:
        while self.arrivals and self.arrivals[0].taken:
            self.arrivals.popleft()
        return self.arrivals[0] if self.arrivals else None

    def settle(self, item: _Item) -> None:
        """``item`` no longer counts as queued work (taken, or its caller gave up)."""
        if not item.settled:
            item.settled = True
            self.live -= 1
            self.tokens -= item.length

    def clear(self) -> None:
        self.queue.clear()
        self.arrivals.clear()
        self.live = self.tokens = 0


@dataclass(frozen=True)
class SequenceOutput:
    logits: np.ndarray  # float32, shape (labels,)
    model_version: str


@dataclass(eq=False)
class Ticket:
    """An admitted request: the work it reserved until its sequences are queued, and the
    estimate it was admitted on (for :meth:`MicroBatcher.observe`)."""

    traffic_class: TrafficClass
    sequences: int  # still reserved (not yet queued)
    tokens: int
    estimated_s: float | None  # the wait estimated at admission; None without an estimate
    admitted_at: float
    arrived: float  # when the request reached the gateway (admitted_at minus its wait for room)


@dataclass(eq=False)
class _Hold:
    """A request waiting for room; its future resolves to its :class:`Ticket`."""

    future: asyncio.Future
    traffic_class: TrafficClass
    sequences: int
    tokens: int
    arrived: float
    deadline: float
    flow: bool  # a stream message: waits until its deadline, not only within the budget
    typical: bool  # counted as typical sequences (not tokenized yet): ``tokens`` follows the average
    expires: float = 0.0  # when it is refused if still waiting

    @property
    def kind(self) -> str:
        return "bulk" if self.traffic_class is BULK else "flow" if self.flow else "call"


class MicroBatcher:
    """Collects sequences for one model version, admits requests, and sends batches to the backend."""

    def __init__(self, backend: Backend, spec: ModelSpec, settings: Settings) -> None:
        self._backend = backend
        self._spec = spec
        self._settings = settings
        limit = spec.max_tokens
        # Backends without ragged batching need widths from a fixed set (the model's buckets).
        buckets = spec.length_buckets or _FALLBACK_BUCKETS
        self._bounds = (
            sorted({b for b in buckets if b < limit} | {limit}) if backend.pads_to_buckets else None
        )
        self._lanes = {INTERACTIVE: _Lane(INTERACTIVE), BULK: _Lane(BULK)}
        # Work admitted but not queued yet (being tokenized), per class: [sequences, tokens].
        self._reserved = {INTERACTIVE: [0, 0], BULK: [0, 0]}
        self._flights: list[tuple[int, TrafficClass]] = []  # padded tokens and class of each batch in flight
        self._busy_mark = 0.0  # when the backend began its current batch: a dispatch to an idle backend, or the last completion
        self._cost = CostModel()
        self._calibration = Calibration(settings.queue_budget_ms / 1000)
        # Bulk calls are measured whole (admission to the last answer) against their deadline.
        self._bulk_calibration = Calibration(0.0)
        self._typical_tokens = 0.0  # moving average of tokens per queued sequence
        # Requests waiting for room, each kind first come first served; admitted in this order.
        self._holds: dict[str, deque[_Hold]] = {"call": deque(), "flow": deque(), "bulk": deque()}
        self._budget_s = settings.queue_budget_ms / 1000
        self._bulk_slots = max(1, settings.batch_max_inflight - 1)
        self._wake = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._label = f"{spec.name}@{spec.version}"
        self._depth = QUEUE_DEPTH.labels(self._label)
        self._held_gauge = HELD.labels(self._label)
        self._estimate_gauges = {
            t: ADMISSION_ESTIMATE.labels(self._label, t)
            for t in ("batch_seconds", "token_seconds", "calibration")
        }
        self._refused = {
            (c, r): REFUSED.labels(self._label, c.value, r)
            for c in TrafficClass
            for r in ("queue_full", "queue_time", "deadline")
        }

    # -- estimates ----------------------------------------------------------------------------

    @property
    def _queued(self) -> int:
        return sum(len(lane.queue) for lane in self._lanes.values())

    @property
    def _inflight(self) -> int:
        return len(self._flights)

    @property
    def cost(self) -> CostModel:
        """The fitted cost of a batch (seconds per batch and per padded token)."""
        return self._cost

    @property
    def calibration(self) -> float:
        """The factor estimates are scaled by (actual / estimated answer times, high quantile)."""
        return self._calibration.factor

    def _inflight_s(self, now: float) -> float:
        """What is left of the batches at the backend (served one after another).

        A batch that has run longer than estimated counts as taking as long again as it has
        overrun: a backend that slowed or stalled at once stops taking work before the
        cost model has measured a batch at the new pace.
        """
        if not self._flights:
            return 0.0
        total = sum(self._cost.batch_s(tokens) for tokens, _ in self._flights)
        return abs(total - (now - self._busy_mark))

    def _drain_s(self, classes: tuple[TrafficClass, ...], sequences: int, tokens: int) -> float:
        for c in classes:
            lane, reserved = self._lanes[c], self._reserved[c]
            sequences += lane.live + reserved[0]
            tokens += lane.tokens + reserved[1]
        s = self._settings
        return self._cost.drain_s(sequences, tokens, s.batch_max_texts, s.batch_token_budget)

    def estimated_wait_s(
        self, sequences: int = 0, tokens: int = 0, traffic_class: TrafficClass = INTERACTIVE
    ) -> float | None:
        """Seconds until ``sequences`` more of ``tokens`` in ``traffic_class`` would be done,
        before calibration; None before any measurement.

        Interactive work waits for the batches in flight and the interactive lane; bulk work
        for everything queued.
        """
        if not self._cost.known:
            return None
        classes = (INTERACTIVE,) if traffic_class is INTERACTIVE else (INTERACTIVE, BULK)
        return self._inflight_s(time.monotonic()) + self._drain_s(classes, sequences, tokens)

    def _busy(self) -> bool:
        return bool(
            self._flights or any(lane.live for lane in self._lanes.values()) or self._reserved[INTERACTIVE][0]
        )

    def _expected_s(self, now: float, sequences: int, tokens: int) -> float | None:
        """When an interactive request admitted now would be answered, calibrated; None when
        it would not wait at all (no estimate yet, or an idle backend)."""
        if not self._cost.known or not self._busy():
            return None
        wait = self._inflight_s(now) + self._drain_s((INTERACTIVE,), sequences, tokens)
        expected = self._calibration.scale(wait, now)
        # The oldest queued text against what was estimated for it: when it has already waited
        # longer than that (the backend slowed at once, e.g. its CPU taken by a surge of calls),
        # every estimate is off by at least as much, before the cost model or the calibration
        # has seen a late answer. A burst queued at once is not late by this measure.
        oldest = self._lanes[INTERACTIVE].oldest()
        if oldest is not None and oldest.estimated_s is not None:
            late = (now - oldest.admitted_at) / (oldest.estimated_s + SLACK_S)
            expected = max(expected, (wait + SLACK_S) * late)
        return expected

    def _alone_s(self, sequences: int, tokens: int) -> float:
        """A request's own answer time on an idle backend, calibrated (0 without an estimate)."""
        if not self._cost.known:
            return 0.0
        s = self._settings
        drain = self._cost.drain_s(sequences, tokens, s.batch_max_texts, s.batch_token_budget)
        return self._calibration.scale(drain, time.monotonic())

    # -- admission ----------------------------------------------------------------------------

    def _refuse(
        self, traffic_class: TrafficClass, reason: str, message: str, retry_s: float = 0.0
    ) -> Overloaded:
        self._refused[traffic_class, reason].inc()
        return Overloaded(message, max(self._settings.retry_after_ms, round(retry_s * 1000)))

    def _ticket(self, hold: _Hold, now: float) -> Ticket:
        reserved = self._reserved[hold.traffic_class]
        estimate = self.estimated_wait_s(hold.sequences, hold.tokens, hold.traffic_class)
        reserved[0] += hold.sequences
        reserved[1] += hold.tokens
        return Ticket(hold.traffic_class, hold.sequences, hold.tokens, estimate, now, hold.arrived)

    def release(self, ticket: Ticket) -> None:
        """Return what ``ticket`` reserved and did not queue (a refused or failed request)."""
        reserved = self._reserved[ticket.traffic_class]
        reserved[0] -= ticket.sequences
        reserved[1] -= ticket.tokens
        ticket.sequences = ticket.tokens = 0

    def _limit(self, traffic_class: TrafficClass) -> int:
        s = self._settings
        return s.queue_max_texts if traffic_class is INTERACTIVE else s.bulk_queue_max_texts

    def _room(self, hold: _Hold) -> bool:
        lane, reserved = self._lanes[hold.traffic_class], self._reserved[hold.traffic_class]
        return lane.live + reserved[0] + hold.sequences <= self._limit(hold.traffic_class)

    def _fits(self, now: float, hold: _Hold, memo: dict[tuple[int, int], float | None] | None = None) -> bool:
        """Whether ``hold`` may be admitted now: room in its lane, and its answer expected in time.

        ``memo`` caches the expected time per request size while nothing changes (a scan).
        """
        if not self._room(hold):
            return False
        if hold.traffic_class is BULK:
            # Bulk: the work ahead (both lanes) and its own done before its deadline, as bulk
            # calls were answered lately (interactive work that arrives meanwhile goes first).
            wait = self.estimated_wait_s(hold.sequences, hold.tokens, BULK)
            if wait is None or not self._busy():
                return True
            return self._bulk_calibration.scale(wait, now) <= hold.deadline - now
        if not self._budget_s:
            return True
        size = (hold.sequences, hold.tokens)
        if memo is None or size not in memo:
            expected = self._expected_s(now, *size)
            if memo is not None:
                memo[size] = expected
        else:
            expected = memo[size]
        if hold.flow:
            return expected is None or expected <= self._budget_s
        waited = now - hold.arrived
        if expected is None:
            # An idle backend: a new call goes at once, whatever one batch cost (a cold start);
            # one that waited must still make the budget, or it would be answered late.
            return not hold.expires or waited + self._alone_s(hold.sequences, hold.tokens) <= self._budget_s
        return waited + expected <= self._budget_s

    def _expiry(self, hold: _Hold) -> float:
        """The last moment ``hold`` could still be admitted: its answer, even on an idle backend,
        before its deadline and (interactive calls) within the budget of its arrival."""
        if hold.traffic_class is BULK:
            s = self._settings
            alone = self._cost.drain_s(hold.sequences, hold.tokens, s.batch_max_texts, s.batch_token_budget)
            return hold.deadline - self._bulk_calibration.scale(alone, hold.arrived)
        alone = self._alone_s(hold.sequences, hold.tokens)
        latest = hold.deadline - alone
        return (
            latest if hold.flow or not self._budget_s else min(latest, hold.arrived + self._budget_s - alone)
        )

    async def admit(
        self,
        traffic_class: TrafficClass,
        sequences: int,
        tokens: int | None,
        deadline: float,
        arrived: float | None = None,
        flow: bool = False,
    ) -> Ticket:
        """Admit a request of ``sequences`` (``tokens`` in all; None before tokenization, when
        typical sequences are counted), or raise :class:`Overloaded`.

        A request that does not fit now waits (see the module docstring); ``arrived`` is when
        it reached the gateway (default now), ``flow`` marks a stream message. All or nothing:
        a request is never half queued. Hand the ticket to :meth:`enqueue` with each sequence
        and to :meth:`release` when done queueing.
        """
        now = time.monotonic()
        own = round(sequences * self._typical_tokens) if tokens is None else tokens
        future = asyncio.get_running_loop().create_future()
        arrived = now if arrived is None else arrived
        hold = _Hold(future, traffic_class, sequences, own, arrived, deadline, flow, tokens is None)
        name, limit = self._spec.name, self._limit(traffic_class)
        if sequences > limit:
            raise self._refuse(traffic_class, "queue_full",
                               f"model {name} queues at most {limit} {traffic_class.value} sequences; this request has {sequences}")  # fmt: skip
        holds = self._holds[hold.kind]
        # Calls that wait did not fit when last looked at, and only wait longer since: a new call
        # that fits may pass them. Messages and bulk calls keep their order.
        ahead = hold.kind != "call" and (holds or (hold.kind == "flow" and self._holds["call"]))
        if not ahead and self._fits(now, hold):
            return self._ticket(hold, now)
        if not flow and len(holds) >= self._settings.admission_hold_max:
            raise self._refuse(
                traffic_class, "queue_full",
                f"model {name} has {len(holds)} {traffic_class.value} calls waiting for room "
                f"(limit {self._settings.admission_hold_max})",
                self._retry_s(now),
            )  # fmt: skip
        hold.expires = self._expiry(hold)
        if hold.expires > now:
            # A call that can no longer be answered in time is refused no sooner than
            # refuse_after_ms after it arrived (within its deadline): a caller that sends it
            # again at once is paced by the server instead of spinning on refusals, which would
            # take the CPU the model needs (the refusal itself then says "retry now").
            refuse_at = hold.expires
            if hold.kind == "call":
                refuse_at = max(
                    refuse_at, min(arrived + self._settings.refuse_after_ms / 1000, deadline - 0.01)
                )
            holds.append(hold)
            self._held_gauge.inc()
            try:
                await asyncio.wait({future}, timeout=refuse_at - now)
            except asyncio.CancelledError:
                if self._unhold(hold):  # admitted as it was cancelled: nothing will be queued
                    self.release(future.result())
                raise
            if self._unhold(hold):
                return future.result()
        raise self._refuse_late(hold)

    def _unhold(self, hold: _Hold) -> bool:
        """Stop holding ``hold``; True when it had been admitted (its ticket is its result)."""
        holds = self._holds[hold.kind]
        if hold in holds:
            holds.remove(hold)
            self._held_gauge.dec()
        if hold.future.done() and not hold.future.cancelled():
            return True
        hold.future.cancel()
        return False

    def _refuse_late(self, hold: _Hold) -> Overloaded:
        now, name, cls = time.monotonic(), self._spec.name, hold.traffic_class
        left_ms = max(hold.deadline - now, 0) * 1000
        if not self._room(hold):
            queued = self._lanes[cls].live + self._reserved[cls][0]
            return self._refuse(
                cls, "queue_full",
                f"model {name} has {queued} {cls.value} sequences queued (limit {self._limit(cls)}); "
                f"{hold.sequences} more did not fit in time",
                self._retry_s(now),
            )  # fmt: skip
        if cls is BULK:
            wait = self.estimated_wait_s(hold.sequences, hold.tokens, BULK) or 0.0
            return self._refuse(
                cls, "deadline",
                f"model {name} would need about {wait * 1000:.0f} ms for this request and the work ahead "
                f"of it; its deadline is {left_ms:.0f} ms away",
                wait - (hold.deadline - now),
            )  # fmt: skip
        expected = self._expected_s(now, hold.sequences, hold.tokens) or 0.0
        budget_ms = self._settings.queue_budget_ms
        alone = self._alone_s(hold.sequences, hold.tokens)
        if not hold.flow and alone > self._budget_s:
            return self._refuse(
                cls, "queue_time",
                f"model {name} needs about {alone * 1000:.0f} ms for this request alone, over the "
                f"{budget_ms:.0f} ms queue-time budget of interactive calls; send it as bulk "
                "(options.traffic_class) or in smaller calls",
                self._retry_s(now),
            )  # fmt: skip
        if hold.flow or hold.deadline - now < self._budget_s:
            return self._refuse(
                cls, "deadline",
                f"model {name} would answer this request in about {expected * 1000:.0f} ms; its deadline "
                f"is {left_ms:.0f} ms away",
                self._retry_s(now),
            )  # fmt: skip
        waited_ms = (now - hold.arrived) * 1000
        if waited_ms > budget_ms:  # held past the budget to pace a caller that resends at once
            message = (
                f"model {name} could not answer this call within the {budget_ms:.0f} ms queue-time budget "
                f"(it was held {waited_ms:.0f} ms so that a caller retrying at once does not spin)"
            )
        else:
            message = (
                f"model {name} would answer a new text in about {expected * 1000:.0f} ms; this call has "
                f"waited {waited_ms:.0f} ms of the {budget_ms:.0f} ms queue-time budget"
            )
        return self._refuse(cls, "queue_time", message, self._retry_s(now))

    def _retry_s(self, now: float) -> float:
        """About when the interactive work ahead will have drained to what the budget admits."""
        expected = self._expected_s(now, 0, 0) or 0.0
        return max(expected - self._budget_s / 2, 0.0)

    def check_deadline(self, ticket: Ticket, sequences: int, tokens: int, deadline: float) -> None:
        """After tokenization: refuse a request whose own work (e.g. many windows of a long
        text) would end past its deadline, before any of it is queued."""
        wait = self.estimated_wait_s(
            max(sequences - ticket.sequences, 0), max(tokens - ticket.tokens, 0), ticket.traffic_class
        )
        if wait is None or not self._busy():
            return
        now = time.monotonic()
        calibration = self._calibration if ticket.traffic_class is INTERACTIVE else self._bulk_calibration
        expected, remaining = calibration.scale(wait, now), deadline - now
        if expected > remaining:
            raise self._refuse(
                ticket.traffic_class, "deadline",
                f"model {self._spec.name} would need about {expected * 1000:.0f} ms for this request; its "
                f"deadline is {max(remaining, 0) * 1000:.0f} ms away",
                expected - remaining,
            )  # fmt: skip

    def _release(self, now: float) -> None:
        """Admit the waiting requests that fit now: interactive calls, then stream messages, then
        bulk calls. Calls that do not fit any more let later ones that do by (they differ only
        in how long they have waited); messages and bulk calls keep their order.

        Runs at every batch completion over up to ``admission_hold_max`` calls, so the expected
        time of a request size is computed once until something is admitted.
        """
        for kind, holds in self._holds.items():
            if not holds:
                continue
            memo: dict[tuple[int, int], float | None] = {}
            kept: deque[_Hold] = deque()
            blocked = False
            for hold in holds:
                if hold.future.done():
                    self._held_gauge.dec()
                    continue
                if hold.typical:
                    hold.tokens = round(hold.sequences * self._typical_tokens)
                if not blocked and self._fits(now, hold, memo):
                    self._held_gauge.dec()
                    hold.future.set_result(self._ticket(hold, now))
                    memo.clear()  # the work ahead of the next one has grown
                    continue
                kept.append(hold)
                blocked = kind != "call"
            self._holds[kind] = kept

    def observe(self, ticket: Ticket) -> None:
        """Feedback from one answered interactive text or bulk call, when its answer is ready.

        The caller calls it (the request pipeline, for single texts), so the time the event
        loop takes to resume a waiting request counts too, as its client sees it.
        """
        if ticket.estimated_s is None:
            return
        now = time.monotonic()
        if ticket.traffic_class is BULK:
            self._bulk_calibration.add(ticket.estimated_s, now - ticket.admitted_at, 0.0, now)
            return
        waited = ticket.admitted_at - ticket.arrived
        self._calibration.add(ticket.estimated_s, now - ticket.admitted_at, waited, now)
        self._estimate_gauges["calibration"].set(self._calibration.factor * self._calibration.tail(now))

    # -- queueing and batching ----------------------------------------------------------------

    def _width(self, length: int) -> int:
        """Padded width of a batch whose longest sequence has ``length`` tokens."""
        if self._bounds is None:
            return length
        return self._bounds[min(bisect.bisect_left(self._bounds, length), len(self._bounds) - 1)]

    def _capacity(self, width: int, traffic_class: TrafficClass) -> int:
        texts = self._settings.batch_max_texts
        tokens = self._settings.batch_token_budget
        if traffic_class is BULK and self._budget_s and self._cost.known and self._cost.b > 0:
            tokens = min(tokens, int((_BULK_BATCH_SHARE * self._budget_s - self._cost.a) / self._cost.b))
        return max(1, min(texts, tokens // width))

    def enqueue(
        self, ids: np.ndarray, deadline: float, ticket: Ticket | None = None
    ) -> asyncio.Future[SequenceOutput]:
        """Queue one sequence; the future resolves to its logits or to a :class:`GatewayError`.

        ``ticket`` is the request's admission (its class, and the reservation this sequence
        takes its place of); without one the sequence is interactive. Raises
        :class:`Overloaded` at once when the lane is full (callers admit first, for all their
        sequences). Callers with many sequences (ClassifyBatch) wait on the futures directly,
        without a task per sequence.
        """
        traffic_class = ticket.traffic_class if ticket is not None else INTERACTIVE
        lane = self._lanes[traffic_class]
        limit = (
            self._settings.queue_max_texts
            if traffic_class is INTERACTIVE
            else self._settings.bulk_queue_max_texts
        )
        if len(lane.queue) >= limit:
            raise self._refuse(
                traffic_class,
                "queue_full",
                f"model {self._spec.name} has {len(lane.queue)} sequences queued (limit {limit})",
            )
        if ticket is not None and ticket.sequences:
            reserved = self._reserved[traffic_class]
            taken = min(ticket.tokens, len(ids))
            reserved[0] -= 1
            reserved[1] -= taken
            ticket.sequences -= 1
            ticket.tokens -= taken
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"batcher-{self._label}")
        loop = asyncio.get_running_loop()
        item = _Item(ids, loop.create_future(), time.monotonic(), deadline, lane)
        if ticket is not None:
            item.admitted_at, item.estimated_s = ticket.admitted_at, ticket.estimated_s
        item.future.add_done_callback(functools.partial(self._settle, item))
        bisect.insort_right(lane.queue, item, key=_length)
        lane.arrivals.append(item)
        lane.live += 1
        lane.tokens += item.length
        typical = self._typical_tokens or item.length  # the first sequence starts the average
        self._typical_tokens = typical + _TYPICAL_SMOOTHING * (item.length - typical)
        self._depth.set(self._queued)
        self._wake.set()
        return item.future

    def _settle(self, item: _Item, future: asyncio.Future) -> None:
        """A sequence's future is done: read its exception, and drop abandoned work from the estimate."""
        # A caller that stopped waiting (deadline, a failed sibling window) never reads its
        # future's exception; reading it here keeps asyncio from logging it as lost.
        if not future.cancelled():
            future.exception()
        # Still queued: its caller gave up, and nobody waits for this work any more.
        if not item.taken:
            item.taken = True
            lane = item.lane
            i = bisect.bisect_left(lane.queue, item.length, key=_length)
            while lane.queue[i] is not item:
                i += 1
            del lane.queue[i]
            lane.settle(item)
            self._depth.set(self._queued)

    def _pick(self, now: float) -> tuple[_Lane | None, float]:
        """The lane to send a batch from now, or None and how long to wait before looking again."""
        candidates = []
        for lane in self._lanes.values():
            if lane.traffic_class is BULK and sum(c is BULK for _, c in self._flights) >= self._bulk_slots:
                continue
            if (oldest := lane.oldest()) is not None:
                candidates.append((lane, oldest))
        if not candidates:
            return None, float("inf")
        if not self._flights:
            return candidates[0][0], 0.0  # interactive first
        settings, wait = self._settings, float("inf")
        for lane, oldest in candidates:
            if len(lane.queue) >= settings.batch_max_texts or lane.tokens >= settings.batch_token_budget:
                return lane, 0.0
            wait = min(wait, oldest.enqueued + settings.batch_wait_ms / 1000 - now)
            if wait <= 0:
                return lane, 0.0
        return None, wait

    def _take(self, lane: _Lane) -> list[_Item]:
        """The oldest sequence of ``lane`` and its nearest lengths, removed from the queue."""
        anchor = lane.oldest()
        assert anchor is not None
        queue = lane.queue
        lo = bisect.bisect_left(queue, anchor.length, key=_length)
        while queue[lo] is not anchor:
            lo += 1
        hi = lo  # the batch is queue[lo : hi + 1]
        width = self._width(anchor.length)
        rows = 1
        cls = lane.traffic_class
        while rows < self._capacity(width, cls):
            left = width - queue[lo - 1].length if lo > 0 else None
            right = None
            if hi + 1 < len(queue):
                wider = self._width(queue[hi + 1].length)
                if rows < self._capacity(wider, cls):
                    right = (wider - width) * rows + wider - queue[hi + 1].length
            if left is not None and (right is None or left <= right) and left <= _PAD_ALLOWANCE:
                lo -= 1
            elif right is not None and right <= _PAD_ALLOWANCE:
                hi += 1
                width = wider
            else:
                break
            rows += 1
        taken = queue[lo : hi + 1]
        del queue[lo : hi + 1]
        items = []
        for item in taken:
            item.taken = True
            lane.settle(item)
            if not item.future.done():  # a caller that gave up (deadline, cancel) is skipped
                items.append(item)
        self._depth.set(self._queued)
        return items

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never leave callers waiting on a dead worker
                log.error("batcher for %s failed with %s; failing its queue", self._label, type(exc).__name__)
                for lane in self._lanes.values():
                    for item in lane.queue:
                        item.taken = True
                        if not item.future.done():
                            item.future.set_exception(InternalError())
                    lane.clear()
                self._depth.set(0)

    async def _step(self) -> None:
        """One scheduling decision: send a batch, or wait for more sequences or a free slot."""
        self._wake.clear()
        if self._queued and self._inflight < self._settings.batch_max_inflight:
            lane, wait = self._pick(time.monotonic())
            if lane is not None:
                items = self._take(lane)
                if items:
                    if not self._flights:  # the backend was idle: its busy time starts now
                        self._busy_mark = time.monotonic()
                    inputs = self._pad(items)
                    flight = (int(inputs["input_ids"].size), lane.traffic_class)
                    self._flights.append(flight)
                    task = asyncio.create_task(self._dispatch(items, inputs, flight))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    if lane.traffic_class is BULK and self._holds["bulk"]:
                        self._release(time.monotonic())  # room in the bulk lane
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            return
        await self._wake.wait()

    def _pad(self, items: list[_Item]) -> dict[str, np.ndarray]:
        width = self._width(max(i.length for i in items))
        ids, mask = pad_rows([i.ids for i in items], self._spec.tokenizer.pad_id, width)
        tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {name: tensors[name] for name in self._spec.input_names}

    async def _dispatch(
        self, items: list[_Item], inputs: dict[str, np.ndarray], flight: tuple[int, TrafficClass]
    ) -> None:
        try:
            now = time.monotonic()
            for item in items:
                STAGE_LATENCY.labels("queue").observe(now - item.enqueued)
            real = int(sum(len(i.ids) for i in items))
            padded = flight[0]
            BATCH_TEXTS.labels(self._label).observe(len(items))
            PADDING_EFFICIENCY.labels(self._label).observe(real / padded)
            BATCH_TOKENS.labels(self._label, "real").inc(real)
            BATCH_TOKENS.labels(self._label, "padded").inc(padded)
            timeout = max(i.deadline for i in items) - now
            if timeout <= 0:
                raise DeadlineExceeded("the request deadline passed while waiting for a batch")
            output = await self._backend.infer(self._spec.triton_name, self._spec.version, inputs, timeout)
            done = time.monotonic()
            STAGE_LATENCY.labels("infer").observe(done - now)
            # The backend serves one batch after another: this one held it since the later of
            # its dispatch to an idle backend and the previous completion. A failed batch is not
            # measured; its time counts towards the next completion, which errs towards refusing.
            self._cost.add(padded, done - self._busy_mark)
            self._busy_mark = done
            self._estimate_gauges["batch_seconds"].set(self._cost.a)
            self._estimate_gauges["token_seconds"].set(self._cost.b)
            for row, item in enumerate(items):
                if not item.future.done():
                    item.future.set_result(SequenceOutput(output.logits[row], output.model_version))
        except Exception as exc:  # every waiting caller must get an answer, whatever failed
            if not isinstance(exc, GatewayError):
                log.error("batch for %s failed with %s", self._label, type(exc).__name__)
                exc = InternalError()
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
        finally:
            self._flights.remove(flight)
            self._release(time.monotonic())
            self._wake.set()

    async def close(self) -> None:
        for task in (self._worker, *self._tasks):
            if task is not None:
                task.cancel()
        for holds in self._holds.values():
            for hold in holds:
                hold.future.cancel()
            holds.clear()


class BatcherPool:
    """One :class:`MicroBatcher` per (backend model, version), created on first use."""

    def __init__(self, backend: Backend, settings: Settings) -> None:
        self._backend = backend
        self._settings = settings
        self._batchers: dict[tuple[str, str], MicroBatcher] = {}

    def get(self, spec: ModelSpec) -> MicroBatcher:
        key = (spec.triton_name, spec.version)
        if key not in self._batchers:
            self._batchers[key] = MicroBatcher(self._backend, spec, self._settings)
        return self._batchers[key]

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
