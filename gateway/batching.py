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
and a request is refused at once (RESOURCE_EXHAUSTED with a retry hint) when the work
queued ahead of it would take longer than ``queue_budget_ms`` to clear, or when that wait
plus its own work would pass its deadline. The wait is estimated from the backend's measured
cost per token (a moving average over completed batches), so under overload accepted
requests wait about the budget instead of as long as the queue is, and refusals take no time.
Until the first batch has completed there is no estimate and only the count applies.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gateway.backend import Backend
from gateway.errors import DeadlineExceeded, GatewayError, InternalError, Overloaded
from gateway.metrics import BATCH_TEXTS, BATCH_TOKENS, PADDING_EFFICIENCY, QUEUE_DEPTH, STAGE_LATENCY
from gateway.models import ModelSpec
from gateway.settings import Settings

log = logging.getLogger(__name__)

# Used when a model's metadata has no length buckets (e.g. exported by an older release).
_FALLBACK_BUCKETS = (16, 32, 64, 128, 256, 512)
# Most padded tokens one more sequence may add to a batch (its own padding plus the widening
# of the rows already in). On CPU a run costs about as much as 20 to 40 tokens on top of its
# tokens, so a sequence that would add more padding than that is cheaper in another batch.
# Chosen by `make perf` on GoEmotions test texts (see bench/results).
_PAD_ALLOWANCE = 8
# Weight of the newest batch in the moving average of the backend's cost per token.
_COST_SMOOTHING = 0.2


def _length(item: _Item) -> int:
    return item.length


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(eq=False)  # identity: items are removed from the queue by identity, never compared by value
class _Item:
    ids: np.ndarray
    future: asyncio.Future
    enqueued: float
    deadline: float
    length: int = field(init=False)
    taken: bool = field(default=False, init=False)

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
            sorted({b for b in buckets if b < limit} | {limit}) if settings.pad_to_buckets else None
        )
        self._queue: list[_Item] = []  # sorted by length, then arrival
        self._arrivals: deque[_Item] = deque()  # arrival order; taken items are skipped lazily
        self._queued_tokens = 0
        self._inflight = 0
        self._inflight_tokens = 0
        self._cost_per_token: float | None = None  # seconds of backend time per real token
        self._wake = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._label = f"{spec.name}@{spec.version}"
        self._depth = QUEUE_DEPTH.labels(self._label)

    @property
    def _queued(self) -> int:
        return len(self._queue)

    def estimated_wait_s(self, tokens: int = 0) -> float | None:
        """Seconds until the queued work (and ``tokens`` more) has run; None before any measurement."""
        if self._cost_per_token is None:
            return None
        # Half of what is in flight is left on average; parallel batches share the backend.
        ahead = self._queued_tokens + self._inflight_tokens / 2 + tokens
        return ahead * self._cost_per_token / self._settings.batch_max_inflight

    def admit(self, sequences: int, tokens: int, deadline: float) -> None:
        """Refuse a request up front when it does not fit the queue, the time budget or its deadline.

        ``tokens`` is the request's own work (0 when not yet known, as for a batch call before
        tokenization). All or nothing: a request is never half queued.
        """
        settings, name = self._settings, self._spec.name
        if self._queued + sequences > settings.queue_max_texts:
            more = f"; {sequences} more do not fit" if sequences > 1 else ""
            raise Overloaded(
                f"model {name} has {self._queued} sequences queued (limit {settings.queue_max_texts}){more}",
                settings.retry_after_ms,
            )
        wait = self.estimated_wait_s()
        if wait is None:
            return
        budget = settings.queue_budget_ms / 1000
        if budget and wait > budget:
            raise Overloaded(
                f"model {name} has about {wait * 1000:.0f} ms of work queued; the queue-time budget is "
                f"{settings.queue_budget_ms:.0f} ms",
                max(settings.retry_after_ms, round((wait - budget) * 1000)),
            )
        remaining = deadline - time.monotonic()
        needed = self.estimated_wait_s(tokens) or 0.0
        if needed > remaining:
            raise Overloaded(
                f"model {name} would need about {needed * 1000:.0f} ms for this request; its deadline is "
                f"{max(remaining, 0) * 1000:.0f} ms away",
                max(settings.retry_after_ms, round(wait * 1000)),
            )

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
            raise Overloaded(
                f"model {self._spec.name} has {self._queued} sequences queued (limit "
                f"{self._settings.queue_max_texts})",
                self._settings.retry_after_ms,
            )
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name=f"batcher-{self._label}")
        loop = asyncio.get_running_loop()
        item = _Item(ids, loop.create_future(), time.monotonic(), deadline)
        # A caller that stopped waiting (deadline, a failed sibling window) never reads its
        # future's exception; reading it here keeps asyncio from logging it as lost.
        item.future.add_done_callback(_retrieve)
        bisect.insort_right(self._queue, item, key=_length)
        self._arrivals.append(item)
        self._queued_tokens += item.length
        self._depth.set(self._queued)
        self._wake.set()
        return item.future

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
        ids = np.full((len(items), width), self._spec.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(items), width), dtype=np.int64)
        for row, item in enumerate(items):
            ids[row, : len(item.ids)] = item.ids
            mask[row, : len(item.ids)] = 1
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
            took = time.monotonic() - now
            STAGE_LATENCY.labels("infer").observe(took)
            cost = took / real
            previous = self._cost_per_token
            self._cost_per_token = (
                cost if previous is None else previous + _COST_SMOOTHING * (cost - previous)
            )
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
