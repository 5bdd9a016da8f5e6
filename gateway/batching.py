"""Micro-batching of the sequences of concurrent requests, per model version.

Waiting sequences are kept sorted by token length. A batch is formed around the sequence that
has waited longest, growing to its nearest lengths on either side while each addition adds at
most ``_PAD_ALLOWANCE`` padded tokens, up to ``batch_max_texts`` sequences or
``batch_token_budget`` padded tokens. So the oldest sequence is always served next (no
starvation) and, under load, a batch holds texts of nearly one length.

A batch is sent at once when no batch of its model is in flight (an idle backend should not
wait) or when a full batch is waiting, otherwise when the oldest sequence has waited
``batch_wait_ms``. At most ``batch_max_inflight`` batches per model version are at the backend
at once.

Admission is by count and by time. The queue holds at most ``queue_max_texts`` sequences;
and a request is refused at once (RESOURCE_EXHAUSTED with a retry hint) when a typical text
queued now would not be answered within 60% of ``queue_budget_ms`` (the work ahead of it,
queued and in flight, plus its own; the estimate is a mean, and the rest of the budget is for
its tail), or when the request's own work would not be done before its deadline. The time
is estimated from the backend's measured throughput: the wall time between batch completions
while the backend is busy, per real token (moving averages of both), which holds whether the
backend runs batches one at a time or several at once, and never less than the time the
oldest queued sequence has waited so far (the queue's real delay when the backend slows at
once, before the moving averages follow). Each refusal is counted by its reason
(``emotionaware_refused_total``). So under overload an accepted request is answered within about the budget instead of as long as
the queue is, and refusals take no time. Until the first batch has completed there is no
estimate and only the count applies.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from emotionaware.padding import pad_rows
from gateway.backends.base import Backend
from gateway.errors import DeadlineExceeded, GatewayError, InternalError, Overloaded
from gateway.metrics import BATCH_TEXTS, BATCH_TOKENS, PADDING_EFFICIENCY, QUEUE_DEPTH, REFUSED, STAGE_LATENCY
from gateway.settings import Settings
from gateway.specs import ModelSpec

log = logging.getLogger(__name__)

# Used when a model's metadata has no length buckets (e.g. exported by an older release).
_FALLBACK_BUCKETS = (16, 32, 64, 128, 256, 512)
# Most padded tokens one more sequence may add to a batch (its own padding plus the widening
# of the rows already in). On CPU a run costs about as much as 20 to 40 tokens on top of its
# tokens, so a sequence that would add more padding than that is cheaper in another batch.
# Chosen by `make perf` on GoEmotions test texts (see bench/results).
_PAD_ALLOWANCE = 8
# Weight of the newest batch in the moving averages of the backend's busy time and tokens.
_COST_SMOOTHING = 0.2
# The estimate is of a typical text's answer time, right on average but not in its tail: on a
# busy, shared CPU the p99 of answers is over twice their median (2.3 times in `make overload`
# at 4x on a 2-vCPU host, with either share). So the estimate admitted is at most this share
# of the budget, which makes the budget the p99 of answers under overload rather than their
# median. Measured at one offered load
# (`python -m bench.reliability overload --rate 2300 --seconds 40`, runs alternated, 2-vCPU
# Intel host, 2026-12-03): the full budget gave a p99 of 700 and 575 ms, 0.6 gave 451 and
# 453 ms with as many answers (a shorter queue makes smaller batches, which come back
# sooner, at the same throughput).
_HIGHEST_ADMITTED = 0.6
# Feedback on the estimate's tail: each answer later than _LATE_SHARE of the budget lowers
# the estimate admitted by this factor, and it returns to the highest with this time
# constant. Time, not answers, brings it back, so a cold start's slow answers are forgotten
# in seconds.
_LATE_DECREASE = 0.9
_RECOVERY_S = 5.0
# Late answers at most halve the estimate admitted: below that the queue is too short for
# full batches, throughput falls with it, and shedding feeds on itself.
_LOWEST_ADMITTED = 0.5
# An answer counts as late past this share of the budget: the rest is left for the work around
# the measured span (routing, post-processing, serialization, the event loop's turn).
_LATE_SHARE = 0.9


def _length(item: _Item) -> int:
    return item.length


@dataclass(eq=False)  # identity: items are removed from the queue by identity, never compared by value
class _Item:
    ids: np.ndarray
    future: asyncio.Future
    enqueued: float
    deadline: float
    length: int = field(init=False)
    taken: bool = field(default=False, init=False)
    settled: bool = field(default=False, init=False)  # its tokens no longer count as queued work

    def __post_init__(self) -> None:
        self.length = len(self.ids)


@dataclass(frozen=True)
class SequenceOutput:
    logits: np.ndarray  # float32, shape (labels,)
    model_version: str


class MicroBatcher:
    """Collects sequences for one model version and sends them to the backend in batches."""

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
        self._queue: list[_Item] = []  # sorted by length, then arrival
        self._arrivals: deque[_Item] = deque()  # arrival order; taken items are skipped lazily
        self._queued_tokens = 0
        self._inflight = 0
        self._inflight_tokens = 0
        # Throughput: moving averages of the busy wall time between completions and of the
        # real tokens completed, per batch; their ratio is the seconds one more token adds.
        self._busy_s: float | None = None
        self._busy_tokens = 0.0
        self._busy_mark = 0.0  # when the current busy interval began (a dispatch to an idle backend, or the last completion)
        self._typical_tokens = 0.0  # moving average of tokens per queued sequence
        # The highest estimate admitted is its share of the budget, lowered by late answers and
        # recovering towards it: its value was _lowered_s when it was last lowered, at _lowered_at.
        self._highest_s = settings.queue_budget_ms / 1000 * _HIGHEST_ADMITTED
        self._lowered_s = self._highest_s
        self._lowered_at = 0.0
        self._wake = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._label = f"{spec.name}@{spec.version}"
        self._depth = QUEUE_DEPTH.labels(self._label)
        self._refused = {
            r: REFUSED.labels(self._label, r) for r in ("queue_full", "queue_time", "queue_age", "deadline")
        }

    @property
    def _queued(self) -> int:
        return len(self._queue)

    @property
    def cost_per_token_s(self) -> float | None:
        """Seconds of backend throughput one real token takes; None before any measurement."""
        if self._busy_s is None:
            return None
        return self._busy_s / self._busy_tokens

    def estimated_wait_s(self, tokens: int = 0) -> float | None:
        """Seconds until the work queued and in flight (and ``tokens`` more) is done.

        None before any measurement. What is in flight counts whole: an estimate that errs
        towards refusing keeps accepted requests within the budget.
        """
        cost = self.cost_per_token_s
        if cost is None:
            return None
        return (self._queued_tokens + self._inflight_tokens + tokens) * cost

    def _measure(self, now: float, tokens: int) -> None:
        """A batch of ``tokens`` real tokens completed at ``now``.

        A failed batch is not measured: the time it held the backend counts towards the next
        completion, which errs towards refusing.
        """
        interval, self._busy_mark = now - self._busy_mark, now
        if self._busy_s is None:
            self._busy_s, self._busy_tokens = interval, float(tokens)
        else:
            self._busy_s += _COST_SMOOTHING * (interval - self._busy_s)
            self._busy_tokens += _COST_SMOOTHING * (tokens - self._busy_tokens)

    def admit(self, sequences: int, tokens: int | None, deadline: float) -> None:
        """Refuse a request up front when it does not fit the queue, the time budget or its deadline.

        The budget bounds the estimated time until a typical sequence queued now is answered
        (to :meth:`admitted_s`): the work ahead (queued and in flight) plus one sequence of
        the typical length. A request's own work beyond that (many texts, long texts) counts
        against its deadline only, so a large call on an idle gateway is never refused for
        being large.

        ``tokens`` is the request's own work; None before tokenization, when ``sequences``
        typical sequences are assumed (so a request that will be refused anyway is refused
        before it costs a tokenization). All or nothing: a request is never half queued.
        """
        settings, name = self._settings, self._spec.name
        if self._queued + sequences > settings.queue_max_texts:
            self._refused["queue_full"].inc()
            more = f"; {sequences} more do not fit" if sequences > 1 else ""
            raise Overloaded(
                f"model {name} has {self._queued} sequences queued (limit {settings.queue_max_texts}){more}",
                settings.retry_after_ms,
            )
        wait = self.estimated_wait_s(round(self._typical_tokens))
        if wait is None or not (self._queued_tokens or self._inflight):
            return  # no estimate yet, or an idle backend: nothing to wait for, whatever one batch cost
        admitted = self.admitted_s()
        # A text queued now is answered no sooner than the oldest queued one, and that one's
        # time in the queue so far is the delay the queue really has (as in CoDel), where the
        # throughput estimate lags: when the backend slows at once (its CPU taken by a surge
        # of calls), the queue admitted at the old pace shows first as an old head.
        oldest = self._oldest()
        age = 0.0 if oldest is None else time.monotonic() - oldest.enqueued
        estimate, wait = wait, max(wait, age)
        if settings.queue_budget_ms and wait > admitted:
            self._refused["queue_age" if age > estimate else "queue_time"].inc()
            raise Overloaded(
                f"model {name} would answer a new text in about {wait * 1000:.0f} ms; the "
                f"queue-time budget of {settings.queue_budget_ms:.0f} ms admits {admitted * 1000:.0f} ms now",
                max(settings.retry_after_ms, round((wait - admitted) * 1000)),
            )
        remaining = deadline - time.monotonic()
        own = round(sequences * self._typical_tokens) if tokens is None else tokens
        needed = self.estimated_wait_s(own) or 0.0
        if needed > remaining:
            self._refused["deadline"].inc()
            raise Overloaded(
                f"model {name} would need about {needed * 1000:.0f} ms for this request; its deadline is "
                f"{max(remaining, 0) * 1000:.0f} ms away",
                max(settings.retry_after_ms, round(wait * 1000)),
            )

    def admitted_s(self) -> float:
        """The highest estimate admitted now: its share of the budget, or less for a while after late answers."""
        recovered = math.exp(-(time.monotonic() - self._lowered_at) / _RECOVERY_S)
        return self._highest_s - (self._highest_s - self._lowered_s) * recovered

    def observe(self, took_s: float) -> None:
        """Feedback from one answered text: ``took_s`` from its admission to its answer.

        The caller measures it (the request pipeline, for single texts), so the time the
        event loop takes to resume a waiting request counts too, as its client sees it.
        """
        if took_s > self._settings.queue_budget_ms / 1000 * _LATE_SHARE:
            self._lowered_s = max(self._highest_s * _LOWEST_ADMITTED, self.admitted_s() * _LATE_DECREASE)
            self._lowered_at = time.monotonic()

    def _width(self, length: int) -> int:
        """Padded width of a batch whose longest sequence has ``length`` tokens."""
        if self._bounds is None:
            return length
        return self._bounds[min(bisect.bisect_left(self._bounds, length), len(self._bounds) - 1)]

    def _capacity(self, width: int) -> int:
        return max(1, min(self._settings.batch_max_texts, self._settings.batch_token_budget // width))

    def enqueue(self, ids: np.ndarray, deadline: float) -> asyncio.Future[SequenceOutput]:
        """Queue one sequence; the future resolves to its logits or to a :class:`GatewayError`.

        Raises :class:`Overloaded` at once when the queue is full (callers check :meth:`admit`
        first, for all their sequences). Callers with many sequences (ClassifyBatch) wait on the
        futures directly, without a task per sequence.
        """
        if self._queued >= self._settings.queue_max_texts:
            self._refused["queue_full"].inc()
            raise Overloaded(
                f"model {self._spec.name} has {self._queued} sequences queued (limit "
                f"{self._settings.queue_max_texts})",
                self._settings.retry_after_ms,
            )
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"batcher-{self._label}")
        loop = asyncio.get_running_loop()
        item = _Item(ids, loop.create_future(), time.monotonic(), deadline)
        item.future.add_done_callback(functools.partial(self._settle, item))
        bisect.insort_right(self._queue, item, key=_length)
        self._arrivals.append(item)
        self._queued_tokens += item.length
        typical = self._typical_tokens or item.length  # the first sequence starts the average
        self._typical_tokens = typical + _COST_SMOOTHING * (item.length - typical)
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
        if not item.taken and not item.settled:
            item.settled = True
            self._queued_tokens -= item.length

    def _oldest(self) -> _Item | None:
        while self._arrivals and self._arrivals[0].taken:
            self._arrivals.popleft()
        return self._arrivals[0] if self._arrivals else None

    def _pick(self, now: float) -> tuple[bool, float]:
        """Whether to send a batch now and, if not, how long to wait before looking again."""
        oldest = self._oldest()
        if oldest is None:
            return False, float("inf")
        full = self._queued >= self._settings.batch_max_texts
        if full or self._queued_tokens >= self._settings.batch_token_budget or self._inflight == 0:
            return True, 0.0
        wait = oldest.enqueued + self._settings.batch_wait_ms / 1000 - now
        return wait <= 0, wait

    def _take(self) -> list[_Item]:
        """The oldest sequence and its nearest lengths, removed from the queue."""
        anchor = self._oldest()
        assert anchor is not None
        queue = self._queue
        lo = bisect.bisect_left(queue, anchor.length, key=_length)
        while queue[lo] is not anchor:
            lo += 1
        hi = lo  # the batch is queue[lo : hi + 1]
        width = self._width(anchor.length)
        rows = 1
        while rows < self._capacity(width):
            left = width - queue[lo - 1].length if lo > 0 else None
            right = None
            if hi + 1 < len(queue):
                wider = self._width(queue[hi + 1].length)
                if rows < self._capacity(wider):
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
            if not item.settled:
                item.settled = True
                self._queued_tokens -= item.length
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
                for item in self._queue:
                    item.taken = True
                    if not item.future.done():
                        item.future.set_exception(InternalError())
                self._queue.clear()
                self._arrivals.clear()
                self._queued_tokens = 0
                self._depth.set(0)

    async def _step(self) -> None:
        """One scheduling decision: send a batch, or wait for more sequences or a free slot."""
        self._wake.clear()
        if self._queued and self._inflight < self._settings.batch_max_inflight:
            send, wait = self._pick(time.monotonic())
            if send:
                items = self._take()
                if items:
                    if self._inflight == 0:  # the backend was idle: its busy time starts now
                        self._busy_mark = time.monotonic()
                    self._inflight += 1
                    self._inflight_tokens += sum(i.length for i in items)
                    task = asyncio.create_task(self._dispatch(items))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
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

    async def _dispatch(self, items: list[_Item]) -> None:
        try:
            now = time.monotonic()
            for item in items:
                STAGE_LATENCY.labels("queue").observe(now - item.enqueued)
            inputs = self._pad(items)
            real = int(sum(len(i.ids) for i in items))
            padded = int(inputs["input_ids"].size)
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
            self._measure(done, real)
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
            self._inflight -= 1
            self._inflight_tokens -= sum(i.length for i in items)
            self._wake.set()

    async def close(self) -> None:
        for task in (self._worker, *self._tasks):
            if task is not None:
                task.cancel()


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
