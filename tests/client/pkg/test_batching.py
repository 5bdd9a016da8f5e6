"""Batch splitting, ordering, per-item errors and bounded concurrency, with a fake stub."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import grpc
import pytest
from emotionaware_client import (
    AsyncEmotionClient,
    ClassifyResult,
    EmotionClient,
    InvalidArgumentError,
    ItemError,
    NotFoundError,
    RetryPolicy,
)
from emotionaware_client._batching import DEFAULT_MAX_BATCH_TEXTS, plan
from emotionaware_client._proto import emotion_pb2 as pb

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("count,limit", [(1, 256), (256, 256), (257, 256), (1000, 256), (1000, 7), (5, 1)])
def test_plan_covers_in_order_within_limit(count, limit):
    slices = plan(count, limit)
    assert slices[0][0] == 0 and slices[-1][1] == count
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    assert all(0 < stop - start <= limit for start, stop in slices)
    assert len(slices) == -(-count // limit)


def test_plan_spreads_evenly_and_handles_nothing():
    assert [b - a for a, b in plan(1000, 256)] == [250, 250, 250, 250]
    assert plan(0, 256) == []
    with pytest.raises(ValueError):
        plan(3, 0)


class RpcFailure(grpc.RpcError, grpc.Call):
    def __init__(self, code: grpc.StatusCode, details: str = "", trailers=()):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


class FakeStub:
    """GetModel and ClassifyBatch of a server with ``limit`` texts per batch; "bad" texts fail alone."""

    def __init__(self, limit: int | None = 8, delay_s: float = 0.0, get_model_error=None, fail_calls=()):
        self.limit, self.delay_s = limit, delay_s
        self.get_model_error = get_model_error
        self.fail_calls = list(fail_calls)  # errors raised by the first ClassifyBatch calls
        self.sizes: list[int] = []
        self.get_model_calls = 0
        self.open = self.peak = 0
        self.lock = threading.Lock()

    def GetModel(self, request, timeout=None, metadata=None):
        self.get_model_calls += 1
        if self.get_model_error is not None:
            raise self.get_model_error
        return pb.GetModelResponse(model=pb.ModelInfo(name="goemotions", max_batch_texts=self.limit or 0))

    def _answer(self, request):
        if len(request.texts) > (self.limit or DEFAULT_MAX_BATCH_TEXTS):
            raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "texts: too many")
        items = []
        for text in request.texts:
            if text == "bad":
                items.append(pb.BatchItem(error=pb.Error(code=3, message="texts[i]: empty")))
            else:
                items.append(pb.BatchItem(result=pb.ClassifyResponse(predicted=[text], model="goemotions")))
        return pb.ClassifyBatchResponse(items=items)

    def ClassifyBatch(self, request, timeout=None, metadata=None):
        with self.lock:
            self.sizes.append(len(request.texts))
            self.open += 1
            self.peak = max(self.peak, self.open)
            failure = self.fail_calls.pop(0) if self.fail_calls else None
        try:
            time.sleep(self.delay_s)
            if failure is not None:
                raise failure
            return self._answer(request)
        finally:
            with self.lock:
                self.open -= 1


class AsyncFakeStub(FakeStub):
    async def _async(self, fn, request, **kwargs):
        return fn(request, **kwargs)

    def GetModel(self, request, timeout=None, metadata=None):
        return self._async(super().GetModel, request)

    def ClassifyBatch(self, request, timeout=None, metadata=None):
        async def run():
            with self.lock:
                self.sizes.append(len(request.texts))
                self.open += 1
                self.peak = max(self.peak, self.open)
                failure = self.fail_calls.pop(0) if self.fail_calls else None
            try:
                await asyncio.sleep(self.delay_s)
                if failure is not None:
                    raise failure
                return self._answer(request)
            finally:
                self.open -= 1

        return run()


def client_with(stub, **kwargs) -> EmotionClient:
    client = EmotionClient("127.0.0.1:1", **kwargs)
    client._stub = stub
    return client


def texts(n: int) -> list[str]:
    return [f"t{i}" for i in range(n)]


def test_any_length_is_split_in_order_with_limit_cached():
    stub = FakeStub(limit=8)
    with client_with(stub) as client:
        items = client.classify_batch(texts(100))
        again = client.classify_batch(texts(9))
    assert [i.predicted[0] for i in items if isinstance(i, ClassifyResult)] == texts(100)
    assert len(again) == 9
    assert max(stub.sizes) <= 8 and sum(stub.sizes) == 109
    assert stub.get_model_calls == 1  # cached


def test_bad_items_stay_in_their_slot():
    stub = FakeStub(limit=4)
    batch = ["a", "bad", "c", "d", "e", "bad", "g"]
    with client_with(stub) as client:
        items = client.classify_batch(batch)
    assert len(items) == 7
    errors = [i for i in items if isinstance(i, ItemError)]
    assert [e.index for e in errors] == [1, 5]
    assert all(e.code is grpc.StatusCode.INVALID_ARGUMENT for e in errors)
    assert isinstance(errors[0].exception(), InvalidArgumentError)
    assert [i.predicted[0] for i in items if isinstance(i, ClassifyResult)] == ["a", "c", "d", "e", "g"]


def test_concurrency_is_bounded():
    stub = FakeStub(limit=2, delay_s=0.05)
    with client_with(stub) as client:
        client.classify_batch(texts(40), concurrency=3)
    assert stub.peak == 3


def test_falls_back_to_256_when_get_model_fails_but_raises_not_found():
    stub = FakeStub(limit=None, get_model_error=RpcFailure(grpc.StatusCode.UNIMPLEMENTED, "no"))
    with client_with(stub) as client:
        assert len(client.classify_batch(texts(600))) == 600
    assert stub.sizes == [200, 200, 200]
    stub = FakeStub(get_model_error=RpcFailure(grpc.StatusCode.NOT_FOUND, "model 'x' is not served"))
    with client_with(stub) as client, pytest.raises(NotFoundError, match="not served"):
        client.classify_batch(texts(3), model="x")


def test_failed_call_raises_or_becomes_item_errors():
    failure = RpcFailure(grpc.StatusCode.INTERNAL, "boom")
    with (
        client_with(FakeStub(limit=5, fail_calls=[failure])) as client,
        pytest.raises(Exception, match="boom"),
    ):
        client.classify_batch(texts(20), concurrency=1)
    with client_with(FakeStub(limit=5, fail_calls=[failure])) as client:
        items = client.classify_batch(texts(20), concurrency=1, on_call_error="items")
    assert [i.index for i in items if isinstance(i, ItemError)] == [0, 1, 2, 3, 4]
    assert all(isinstance(i, ClassifyResult) for i in items[5:])


def test_chunk_calls_are_retried():
    busy = RpcFailure(grpc.StatusCode.UNAVAILABLE, "restarting")
    stub = FakeStub(limit=5, fail_calls=[busy, busy])
    policy = RetryPolicy(initial_backoff_s=0.001)
    with client_with(stub, retries=policy) as client:
        items = client.classify_batch(texts(10), concurrency=1)
    assert all(isinstance(i, ClassifyResult) for i in items) and len(stub.sizes) == 4


def test_a_lone_string_is_refused():
    with client_with(FakeStub()) as client, pytest.raises(TypeError):
        client.classify_batch("one text")  # type: ignore[arg-type]
    with client_with(FakeStub()) as client:
        assert client.classify_batch([]) == []


async def test_async_batch_split_order_and_concurrency():
    stub = AsyncFakeStub(limit=3, delay_s=0.02)
    client = AsyncEmotionClient("127.0.0.1:1")
    client._stub = stub
    try:
        items = await client.classify_batch([*texts(10), "bad", *texts(10)], concurrency=2)
    finally:
        await client.close()
    assert len(items) == 21 and isinstance(items[10], ItemError) and items[10].index == 10
    assert [i.predicted[0] for i in items if isinstance(i, ClassifyResult)] == texts(10) * 2
    assert stub.peak == 2 and max(stub.sizes) <= 3
