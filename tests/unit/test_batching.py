"""The micro-batcher with a recording backend (no network)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import numpy as np
import pytest

from emotionaware.artifact import ProblemType
from gateway.backend import BatchOutput
from gateway.batching import MicroBatcher
from gateway.errors import BackendUnavailable, Overloaded
from gateway.models import ModelSpec
from gateway.settings import Settings


class RecordingBackend:
    def __init__(self, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.delay_s, self.error, self.batches = delay_s, error, []

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


async def run_all(batcher, lengths):
    deadline = time.monotonic() + 5
    return await asyncio.gather(*(batcher.submit(ids(n), deadline) for n in lengths))


async def test_concurrent_sequences_share_batches_by_length_bucket():
    backend = RecordingBackend(delay_s=0.05)
    batcher = MicroBatcher(backend, make_spec(), Settings(batch_wait_ms=20))
    lengths = [5, 100, 7, 12, 90, 3, 16]
    outputs = await run_all(batcher, lengths)
    assert [int(o.logits[0]) for o in outputs] == lengths  # every caller got its own row
    shapes = sorted(b["input_ids"].shape for b in backend.batches)
    # Fine length buckets, topped up from neighbouring lengths while padding stays under 25%:
    # 3/5/7 tokens together; 12 with 16; 90 with 100. Each batch is padded to its longest.
    assert shapes == [(2, 16), (2, 100), (3, 7)]
    for b in backend.batches:
        assert b["attention_mask"].sum() >= 0.75 * b["attention_mask"].size or b["input_ids"].shape[0] == 3
    await batcher.close()


async def test_padding_is_to_the_longest_or_to_the_bucket():
    backend = RecordingBackend()
    batcher = MicroBatcher(backend, make_spec(), Settings(pad_to_buckets=True))
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
    results = await asyncio.gather(*(batcher.submit(ids(4), time.monotonic() + 5) for _ in range(6)),
                                   return_exceptions=True)  # fmt: skip
    refused = [r for r in results if isinstance(r, Overloaded)]
    assert len(refused) == 3 and refused[0].retry_after_ms == 250
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
        await asyncio.wait_for(batcher.submit(ids(4), time.monotonic() + 5), timeout=2)
    await batcher.close()


async def test_similar_lengths_from_other_buckets_fill_a_batch():
    backend = RecordingBackend(delay_s=0.05)
    batcher = MicroBatcher(backend, make_spec(), Settings(batch_wait_ms=20))
    await run_all(batcher, [18, 20, 22, 23, 25, 60])  # buckets 20, 20, 24, 24, 28, 64
    widths = sorted(tuple(b["attention_mask"].sum(axis=1)) for b in backend.batches)
    assert widths == [(18, 20, 22, 23, 25), (60,)]
    await batcher.close()
