"""The micro-batcher with a recording backend (no network)."""

from __future__ import annotations

import asyncio
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import REGISTRY

from emotionaware.artifact import ProblemType
from gateway.backends.base import BatchOutput
from gateway.batching import _PAD_ALLOWANCE, MicroBatcher
from gateway.errors import BackendUnavailable, Overloaded
from gateway.settings import Settings
from gateway.specs import ModelSpec
from gateway.types import TrafficClass

INTERACTIVE, BULK = TrafficClass.INTERACTIVE, TrafficClass.BULK


class RecordingBackend:
    def __init__(
        self, delay_s: float = 0.0, error: Exception | None = None, pads_to_buckets: bool = False
    ) -> None:
        self.delay_s, self.error, self.batches = delay_s, error, []
        self.pads_to_buckets = pads_to_buckets

    async def infer(self, model, version, inputs, timeout_s):
        self.batches.append({k: v.copy() for k, v in inputs.items()})
        await asyncio.sleep(self.delay_s)
        if self.error:
            raise self.error
        # logit 0 = the row's real length, so each caller can check it got its own row
        logits = inputs["attention_mask"].sum(axis=1, keepdims=True).astype(np.float32)
        return BatchOutput(logits, version)

    async def is_ready(self, models):
        return True

    async def close(self):
        pass


def make_spec(buckets=(16, 32, 64, 128)) -> ModelSpec:
    tokenizer = SimpleNamespace(pad_id=0)
    return ModelSpec("m", "1", ("a",), ProblemType.MULTI_LABEL, np.zeros(1, np.float32), 128, tokenizer,
                     length_buckets=buckets)  # fmt: skip


def ids(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.int64)


def refused_so_far(reason: str, traffic_class: str = "interactive") -> float:
    """The gateway's count of admission refusals of model m@1 for ``reason`` (a process-wide counter)."""
    labels = {"model": "m@1", "traffic_class": traffic_class, "reason": reason}
    return REGISTRY.get_sample_value("emotionaware_refused_total", labels) or 0.0


async def submit(batcher, ids, deadline):
    """Queue one sequence and wait for it (enqueue refuses synchronously; here it raises on await)."""
    return await batcher.enqueue(ids, deadline)


async def run_all(batcher, lengths):
    deadline = time.monotonic() + 5
    return await asyncio.gather(*(submit(batcher, ids(n), deadline) for n in lengths))


async def test_concurrent_sequences_share_batches_by_length():
    backend = RecordingBackend(delay_s=0.05)
    batcher = MicroBatcher(backend, make_spec(), Settings(batch_wait_ms=20))
    lengths = [5, 100, 7, 12, 90, 3, 16]
    outputs = await run_all(batcher, lengths)
    assert [int(o.logits[0]) for o in outputs] == lengths  # every caller got its own row
    shapes = sorted(b["input_ids"].shape for b in backend.batches)
    # Each batch grows from its oldest sequence to the nearest lengths while one more adds at
    # most _PAD_ALLOWANCE (8) padded tokens: 3/5/7 together, 12 with 16; 90 next to 100 would
    # add 10, so each runs alone. Each batch is padded to its longest.
    assert _PAD_ALLOWANCE == 8
    assert shapes == [(1, 90), (1, 100), (2, 16), (3, 7)]
    await batcher.close()


async def test_the_oldest_sequence_is_always_in_the_next_batch():
    """Nearest-length batching must not starve an odd length while common ones keep coming."""
    backend = RecordingBackend(delay_s=0.02)
    batcher = MicroBatcher(
        backend, make_spec(), Settings(batch_wait_ms=1, batch_max_texts=4, batch_max_inflight=1)
    )
    deadline = time.monotonic() + 5
    first = asyncio.ensure_future(submit(batcher, ids(10), deadline))
    await asyncio.sleep(0)  # 10 tokens goes out alone; 120 tokens waits behind it
    odd = asyncio.ensure_future(submit(batcher, ids(120), deadline))
    common = [asyncio.ensure_future(submit(batcher, ids(10), deadline)) for _ in range(12)]
    await asyncio.gather(first, odd, *common)
    widths = [b["input_ids"].shape[1] for b in backend.batches]
    assert widths[:2] == [10, 120], widths
    await batcher.close()


async def test_under_load_batches_hold_nearly_one_length():
    """With many sequences waiting, batches are full and little of them is padding."""
    rng = np.random.default_rng(7)
    lengths = [int(n) for n in rng.integers(5, 60, size=256)]
    backend = RecordingBackend(delay_s=0.01)
    batcher = MicroBatcher(backend, make_spec(), Settings(batch_max_texts=32, batch_max_inflight=1))
    outputs = await run_all(batcher, lengths)
    assert [int(o.logits[0]) for o in outputs] == lengths
    real = sum(int(b["attention_mask"].sum()) for b in backend.batches)
    padded = sum(b["attention_mask"].size for b in backend.batches)
    assert real / padded > 0.9, real / padded
    assert len(backend.batches) <= 16, len(backend.batches)  # 256 / 32 = 8 full batches at best
    await batcher.close()


async def test_padding_is_to_the_longest_or_to_the_bucket():
    backend = RecordingBackend(pads_to_buckets=True)
    batcher = MicroBatcher(backend, make_spec(), Settings())
    await run_all(batcher, [20])
    assert backend.batches[0]["input_ids"].shape == (1, 32)  # the model's bucket, as Triton's ORT needs
    assert backend.batches[0]["attention_mask"].sum() == 20
    await batcher.close()


async def test_token_budget_caps_a_batch():
    backend = RecordingBackend(delay_s=0.05)
    settings = Settings(batch_token_budget=256, batch_max_texts=64, batch_wait_ms=20)
    batcher = MicroBatcher(backend, make_spec(), settings)
    await run_all(batcher, [60] * 9)  # bucket 64: at most 256 // 64 = 4 per batch
    assert max(b["input_ids"].shape[0] for b in backend.batches) == 4
    await batcher.close()


async def test_full_queue_is_refused_with_a_retry_hint():
    backend = RecordingBackend(delay_s=0.2)
    settings = Settings(
        queue_max_texts=3, max_batch_texts=3, batch_max_inflight=1, batch_max_texts=1, retry_after_ms=250
    )
    batcher = MicroBatcher(backend, make_spec(), settings)
    before = refused_so_far("queue_full")
    results = await asyncio.gather(*(submit(batcher, ids(4), time.monotonic() + 5) for _ in range(6)),
                                   return_exceptions=True)  # fmt: skip
    refused = [r for r in results if isinstance(r, Overloaded)]
    assert len(refused) == 3 and refused[0].retry_after_ms == 250
    assert refused_so_far("queue_full") - before == 3  # operators see why calls are refused
    assert "has 3 sequences queued (limit 3)" in refused[0].message
    await batcher.close()


async def test_a_failed_batch_fails_each_of_its_callers():
    backend = RecordingBackend(error=BackendUnavailable("down"))
    batcher = MicroBatcher(backend, make_spec(), Settings())
    with pytest.raises(BackendUnavailable):
        await run_all(batcher, [4, 5])
    await batcher.close()


async def test_idle_backend_gets_a_lone_sequence_without_waiting():
    backend = RecordingBackend()
    batcher = MicroBatcher(backend, make_spec(), Settings(batch_wait_ms=500))
    started = time.monotonic()
    await run_all(batcher, [4])
    assert time.monotonic() - started < 0.2
    await batcher.close()


async def test_a_scheduling_fault_fails_the_queue_instead_of_hanging_it(monkeypatch):
    from gateway.errors import InternalError

    backend = RecordingBackend()
    batcher = MicroBatcher(backend, make_spec(), Settings())

    def broken(now):
        raise ValueError("boom")

    monkeypatch.setattr(batcher, "_pick", broken)
    with pytest.raises(InternalError):
        await asyncio.wait_for(submit(batcher, ids(4), time.monotonic() + 5), timeout=2)
    await batcher.close()


async def test_similar_lengths_from_other_buckets_fill_a_batch():
    backend = RecordingBackend(delay_s=0.05)
    batcher = MicroBatcher(backend, make_spec(), Settings(batch_wait_ms=20))
    await run_all(batcher, [18, 20, 22, 23, 25, 60])  # buckets 20, 20, 24, 24, 28, 64
    widths = sorted(tuple(b["attention_mask"].sum(axis=1)) for b in backend.batches)
    assert widths == [(18, 20, 22, 23, 25), (60,)]
    await batcher.close()


async def test_a_call_that_can_make_the_budget_is_admitted_at_once():
    backend = RecordingBackend(delay_s=0.1)
    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=500)
    batcher = MicroBatcher(backend, make_spec(), settings)
    batcher.release(await batcher.admit(INTERACTIVE, 1, 10, time.monotonic() - 1))  # no estimate yet: no wait
    await run_all(batcher, [10])  # one measured batch: 0.1 s for 10 tokens
    queued = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(3)]  # ~0.3 s ahead
    started = time.monotonic()
    ticket = await batcher.admit(INTERACTIVE, 1, 10, time.monotonic() + 5)  # 0.3 + 0.1 + slack < 0.5
    assert time.monotonic() - started < 0.01 and ticket.estimated_s == pytest.approx(0.4, abs=0.05)
    batcher.release(ticket)
    await asyncio.gather(*queued)
    await batcher.close()


async def test_a_call_that_cannot_make_the_budget_waits_then_is_refused_when_it_no_longer_could():
    backend = RecordingBackend(delay_s=0.1)
    settings = Settings(
        batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=300, refuse_after_ms=0, retry_after_ms=50
    )
    batcher = MicroBatcher(backend, make_spec(), settings)
    await run_all(batcher, [10])
    queued = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(5)]  # ~0.5 s of work
    started, before = time.monotonic(), refused_so_far("queue_time")
    with pytest.raises(Overloaded) as refused:
        await batcher.admit(INTERACTIVE, 1, 10, time.monotonic() + 5)
    # Held until the budget minus its own answer time (0.1 s + slack) had passed.
    assert 0.15 <= time.monotonic() - started <= 0.25
    assert refused_so_far("queue_time") - before == 1
    assert (
        "this call has waited" in refused.value.message
        and "of the 300 ms queue-time budget" in refused.value.message
    )
    await asyncio.gather(*queued)
    await batcher.close()


async def test_a_refusal_comes_no_sooner_than_refuse_after_so_callers_that_retry_at_once_do_not_spin():
    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=300, refuse_after_ms=400)
    batcher = MicroBatcher(RecordingBackend(delay_s=0.1), make_spec(), settings)
    await run_all(batcher, [10])
    queued = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(8)]
    started = time.monotonic()
    with pytest.raises(Overloaded):
        await batcher.admit(INTERACTIVE, 1, 10, time.monotonic() + 5)
    assert 0.38 <= time.monotonic() - started <= 0.5
    with pytest.raises(Overloaded):  # never past its own deadline, though
        await batcher.admit(INTERACTIVE, 1, 10, time.monotonic() + 0.15)
    assert time.monotonic() - started <= 0.7
    await asyncio.gather(*queued)
    await batcher.close()


async def test_a_held_call_is_admitted_as_soon_as_room_appears():
    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=400)
    batcher = MicroBatcher(RecordingBackend(delay_s=0.1), make_spec(), settings)
    await run_all(batcher, [10])
    running = batcher.enqueue(ids(10), time.monotonic() + 5)
    await asyncio.sleep(0.01)
    gave_up = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(6)]  # ~0.7 s ahead
    started = time.monotonic()
    call = asyncio.create_task(batcher.admit(INTERACTIVE, 1, 10, time.monotonic() + 5))
    await asyncio.sleep(0.02)
    assert not call.done()  # waiting for room
    for future in gave_up[1:]:  # their callers gave up: the work ahead shrinks
        future.cancel()
    ticket = await call  # admitted at the next completion, well within the budget
    assert time.monotonic() - started < 0.15
    batcher.release(ticket)
    await asyncio.gather(running, gave_up[0])
    await batcher.close()


async def test_stream_messages_wait_for_room_until_their_deadline():
    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=300)
    batcher = MicroBatcher(RecordingBackend(delay_s=0.05), make_spec(), settings)
    await run_all(batcher, [10])
    queued = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(12)]  # ~0.6 s of work
    started = time.monotonic()
    ticket = await batcher.admit(INTERACTIVE, 1, 10, time.monotonic() + 5, flow=True)
    # Admitted once what is ahead fits the budget (slowed down, not refused), long before its
    # 5 s deadline. About 0.3 s on an idle host; a fresh-clone CI run on the shared 2-CPU host
    # measured 0.62 s, so the upper bound only separates "admitted" from "waited out its deadline".
    assert 0.2 <= time.monotonic() - started <= 1.5
    batcher.release(ticket)
    before = refused_so_far("deadline")
    more = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(12)]
    with pytest.raises(Overloaded, match="its deadline is"):
        await batcher.admit(INTERACTIVE, 1, 10, time.monotonic() + 0.1, flow=True)
    assert refused_so_far("deadline") - before == 1
    await asyncio.gather(*queued, *more)
    await batcher.close()


async def test_a_bulk_call_is_admitted_by_its_deadline_not_the_budget():
    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=300)
    batcher = MicroBatcher(RecordingBackend(delay_s=0.1), make_spec(), settings)
    await run_all(batcher, [10])
    queued = batcher.enqueue(ids(10), time.monotonic() + 5)
    ticket = await batcher.admit(BULK, 64, None, time.monotonic() + 10)  # 6.4 s of its own work: in time
    batcher.release(ticket)
    before = refused_so_far("deadline", "bulk")
    with pytest.raises(Overloaded, match="its deadline is"):
        await batcher.admit(BULK, 64, None, time.monotonic() + 2)
    assert refused_so_far("deadline", "bulk") - before == 1
    await queued
    await batcher.close()


async def test_a_full_bulk_lane_holds_the_next_call_until_room_appears():
    settings = Settings(batch_max_texts=4, batch_max_inflight=1, bulk_queue_max_texts=4, max_batch_texts=4)
    batcher = MicroBatcher(RecordingBackend(delay_s=0.1), make_spec(), settings)
    deadline = time.monotonic() + 5
    blocker = batcher.enqueue(ids(10), deadline)  # holds the backend's only slot for 0.1 s
    await asyncio.sleep(0.01)
    first = await batcher.admit(BULK, 4, 40, deadline)
    futures = [batcher.enqueue(ids(10), deadline, first) for _ in range(4)]
    batcher.release(first)
    started = time.monotonic()
    second = asyncio.create_task(batcher.admit(BULK, 4, 40, deadline))
    await asyncio.sleep(0.02)
    assert not second.done()  # the lane is full: the call waits instead of being refused
    batcher.release(await second)  # admitted once the first four were sent (bulk batches are short)
    assert 0.05 <= time.monotonic() - started <= 0.6
    await asyncio.gather(blocker, *futures)
    await batcher.close()


class ConcurrencyBackend(RecordingBackend):
    """Counts the batches of each kind in flight at once (bulk rows have length 30 here)."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(delay_s)
        self.bulk_now = self.bulk_most = 0

    async def infer(self, model, version, inputs, timeout_s):
        bulk = inputs["attention_mask"].sum(axis=1)[0] == 30
        self.bulk_now += bulk
        self.bulk_most = max(self.bulk_most, self.bulk_now)
        try:
            return await super().infer(model, version, inputs, timeout_s)
        finally:
            self.bulk_now -= bulk


async def test_interactive_batches_go_first_and_bulk_keeps_a_slot_free():
    backend = ConcurrencyBackend(delay_s=0.05)
    settings = Settings(batch_max_texts=2, batch_max_inflight=2, batch_wait_ms=0)
    batcher = MicroBatcher(backend, make_spec(), settings)
    deadline = time.monotonic() + 10
    bulk = await batcher.admit(BULK, 8, 240, deadline)
    bulk_futures = [batcher.enqueue(ids(30), deadline, bulk) for _ in range(8)]
    await asyncio.sleep(0.01)  # one bulk batch sent; the other slot stays free for interactive work
    interactive = [batcher.enqueue(ids(10), deadline) for _ in range(4)]
    await asyncio.gather(*bulk_futures, *interactive)
    assert backend.bulk_most == 1  # never two bulk batches at once
    order = [int(b["attention_mask"].sum(axis=1)[0]) for b in backend.batches]
    assert order[:3] == [30, 10, 10]  # the waiting interactive texts went before the rest of the bulk
    await batcher.close()


async def test_before_tokenizing_a_typical_text_is_counted():
    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=250, refuse_after_ms=0)
    batcher = MicroBatcher(RecordingBackend(delay_s=0.1), make_spec(), settings)
    await run_all(batcher, [10])  # 0.01 s per token; the typical text has 10 tokens
    queued = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(2)]  # 0.2 s ahead
    with pytest.raises(Overloaded) as refused:
        await batcher.admit(INTERACTIVE, 1, None, time.monotonic() + 5)  # + 0.1 s for a typical text
    about = int(re.search(r"would answer a new text in about (\d+) ms", refused.value.message)[1])
    assert 150 <= about <= 360
    await asyncio.gather(*queued)
    await batcher.close()


async def test_an_abandoned_future_does_not_log_a_lost_exception():
    backend = RecordingBackend(delay_s=0.05, error=BackendUnavailable("down"))
    batcher = MicroBatcher(backend, make_spec(), Settings())
    abandoned = batcher.enqueue(ids(4), time.monotonic() + 5)
    await asyncio.sleep(0.2)
    assert abandoned.done()  # failed, and its caller never looks
    # asyncio logs "Future exception was never retrieved" when a future is freed with this flag
    # set; the batcher still references the future here, so the flag itself is what is checked.
    assert not abandoned._log_traceback
    await batcher.close()


class SerialBackend(RecordingBackend):
    """One batch at a time, like one Triton instance: a second batch in flight waits its turn."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(delay_s)
        self._lock = asyncio.Lock()

    async def infer(self, model, version, inputs, timeout_s):
        async with self._lock:
            return await super().infer(model, version, inputs, timeout_s)


async def test_the_cost_estimate_is_the_backends_throughput_whatever_runs_in_parallel():
    # Two batches in flight on a backend that runs one at a time: each batch's own latency
    # includes waiting for the other, but one batch still holds the backend for its delay.
    settings = Settings(batch_max_texts=1, batch_max_inflight=2, batch_wait_ms=0)
    batcher = MicroBatcher(SerialBackend(delay_s=0.05), make_spec(), settings)
    await run_all(batcher, [10] * 12)
    assert batcher.cost.batch_s(10) == pytest.approx(0.05, rel=0.2)
    await batcher.close()


async def test_an_idle_backend_admits_whatever_one_batch_cost():
    # A cold first batch (model loading) must not lock admission: with nothing queued or in
    # flight there is nothing to wait for, and the next batch measures again.
    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=100, refuse_after_ms=0)
    batcher = MicroBatcher(RecordingBackend(delay_s=0.3), make_spec(), settings)
    await run_all(batcher, [10])  # 0.3 s for one text: three times the budget
    batcher.release(await batcher.admit(INTERACTIVE, 1, None, time.monotonic() + 5))
    queued = batcher.enqueue(ids(10), time.monotonic() + 5)
    with pytest.raises(Overloaded):
        await batcher.admit(INTERACTIVE, 1, None, time.monotonic() + 5)  # now it waits behind 0.3 s
    await queued
    await batcher.close()


async def test_work_whose_caller_gave_up_leaves_the_estimate():
    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=0)
    batcher = MicroBatcher(RecordingBackend(delay_s=0.1), make_spec(), settings)
    await run_all(batcher, [10])
    running = batcher.enqueue(ids(10), time.monotonic() + 5)
    await asyncio.sleep(0.01)  # dispatched: in flight
    abandoned = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(5)]
    assert batcher.estimated_wait_s() == pytest.approx(0.6, rel=0.1)
    for future in abandoned:
        future.cancel()
    await asyncio.sleep(0)  # done callbacks run
    assert batcher.estimated_wait_s() == pytest.approx(0.09, abs=0.02)  # what is left of the batch in flight
    await running
    await batcher.close()


async def test_a_batch_that_overruns_its_estimate_stops_admission_before_the_cost_model_follows(monkeypatch):
    import gateway.batching as batching

    settings = Settings(batch_max_texts=1, batch_max_inflight=1, queue_budget_ms=500, refuse_after_ms=0)
    backend = RecordingBackend(delay_s=0.01)
    batcher = MicroBatcher(backend, make_spec(), settings)
    await run_all(batcher, [10])  # 1 ms per token: 5 queued texts are estimated at ~60 ms
    backend.delay_s = 1.0  # the backend stalls
    queued = [batcher.enqueue(ids(10), time.monotonic() + 5) for _ in range(5)]
    await asyncio.sleep(0.01)  # the first is in flight
    batcher.release(await batcher.admit(INTERACTIVE, 1, None, time.monotonic() + 5))
    # The batch in flight has run 0.6 s although it was estimated at 10 ms: it counts as
    # taking that long again, although no batch has completed at the new pace.
    stalled = time.monotonic()
    # Only the batcher's clock moves on (the event loop's, which shares time.monotonic, does not).
    monkeypatch.setattr(batching, "time", SimpleNamespace(monotonic=lambda: stalled + 0.6))
    before = refused_so_far("queue_time")
    with pytest.raises(Overloaded, match=r"would answer a new text in about 6\d\d ms"):
        await batcher.admit(INTERACTIVE, 1, None, stalled + 5)
    assert refused_so_far("queue_time") - before == 1
    monkeypatch.undo()
    for future in queued:
        future.cancel()
    await batcher.close()
