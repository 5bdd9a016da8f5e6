"""Async load generator for the gateway, over the generated stubs (grpc.aio).

Three shapes of load, each for a fixed duration after a short warm-up:
  unary   ``concurrency`` workers, each sending one ``Classify`` at a time (one text per call);
  batch   workers sending ``ClassifyBatch`` calls of ``batch_size`` texts;
  stream  ``concurrency`` streams, each sending conversation messages with up to ``window``
          unanswered at a time; latency is per message (sent -> its answer received).
Texts cycle through the given list. Every error is counted by status code, none is hidden.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc


class PartialFailure(Exception):
    """A ClassifyBatch call in which some items failed."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} items failed")
        self.count = count


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


@dataclass(frozen=True)
class LoadResult:
    name: str
    concurrency: int
    texts: int
    seconds: float
    latencies_ms: tuple[float, ...] = field(repr=False)
    errors: dict[str, int]

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict:
        return {
            "name": self.name,
            "concurrency": self.concurrency,
            "texts": self.texts,
            "seconds": round(self.seconds, 2),
            "texts_per_s": round(self.texts_per_s, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "errors": self.errors,
        }


def _channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20),
                                                      ("grpc.max_send_message_length", 64 << 20)])  # fmt: skip


async def _timed_workers(name, concurrency, duration_s, warmup_s, call) -> LoadResult:
    """Run ``call()`` (returns texts done) in ``concurrency`` loops; measure after the warm-up."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    done = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s

    async def worker() -> None:
        nonlocal done
        while (now := time.perf_counter()) < stop_at:
            try:
                texts = await call()
            except grpc.aio.AioRpcError as err:
                if now >= measure_from:
                    errors[err.code().name] += 1
                continue
            except PartialFailure as failure:
                if now >= measure_from:
                    errors["ITEM_ERRORS"] += failure.count
                continue
            if now >= measure_from:
                latencies.append((time.perf_counter() - now) * 1e3)
                done += texts

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = max(time.perf_counter(), stop_at) - measure_from
    return LoadResult(name, concurrency, done, elapsed, tuple(latencies), dict(errors))


async def unary(target: str, texts: Sequence[str], concurrency: int, duration_s: float, warmup_s: float = 2.0,
                model: str = "") -> LoadResult:  # fmt: skip
    cycle = itertools.cycle(texts)
    async with _channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)

        async def call() -> int:
            await stub.Classify(pb.ClassifyRequest(text=next(cycle), model=model), timeout=30)
            return 1

        return await _timed_workers("unary", concurrency, duration_s, warmup_s, call)


async def batch(target: str, texts: Sequence[str], concurrency: int, duration_s: float, batch_size: int = 64,
                warmup_s: float = 2.0) -> LoadResult:  # fmt: skip
    cycle = itertools.cycle(texts)
    async with _channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)

        async def call() -> int:
            chunk = [next(cycle) for _ in range(batch_size)]
            reply = await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=chunk), timeout=60)
            failed = sum(1 for item in reply.items if item.HasField("error"))
            if failed:
                raise PartialFailure(failed)
            return batch_size

        return await _timed_workers(f"batch{batch_size}", concurrency, duration_s, warmup_s, call)


async def stream(target: str, dialogues: Sequence[Sequence[tuple[str, str]]], concurrency: int, duration_s: float,
                 window: int = 8, warmup_s: float = 2.0) -> LoadResult:  # fmt: skip
    """``dialogues``: lists of (speaker, text); each stream replays them as conversations."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    done = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s

    async def one_stream(worker: int) -> None:
        nonlocal done
        sent_at: asyncio.Queue[float] = asyncio.Queue()
        slots = asyncio.Semaphore(window)

        async def requests():
            for round_ in itertools.count():
                for d, dialogue in enumerate(dialogues):
                    for speaker, text in dialogue:
                        if time.perf_counter() >= stop_at:
                            return
                        await slots.acquire()
                        sent_at.put_nowait(time.perf_counter())
                        yield pb.ClassifyStreamRequest(
                            conversation_id=f"{worker}-{round_}-{d}", speaker=speaker, text=text
                        )

        async with _channel(target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            async for reply in stub.ClassifyStream(requests(), timeout=duration_s + warmup_s + 60):
                sent = sent_at.get_nowait()
                slots.release()
                if sent < measure_from:
                    continue
                if reply.HasField("error"):
                    errors[_CODE_NAMES.get(reply.error.code, str(reply.error.code))] += 1
                else:
                    latencies.append((time.perf_counter() - sent) * 1e3)
                    done += 1

    await asyncio.gather(*(one_stream(w) for w in range(concurrency)))
    elapsed = max(time.perf_counter(), stop_at) - measure_from
    return LoadResult("stream", concurrency, done, elapsed, tuple(latencies), dict(errors))


async def paced(target: str, texts: Sequence[str], rate: float, duration_s: float, max_in_flight: int = 256,
                on_tick=None, tick_s: float = 10.0) -> LoadResult:  # fmt: skip
    """Open-loop load: ``rate`` unary calls per second for ``duration_s`` (at most ``max_in_flight``
    outstanding; calls that would exceed it count as ``NOT_SENT`` errors). ``on_tick(elapsed,
    latencies, errors)`` is called every ``tick_s`` seconds with the latencies so far (ms, in
    completion order) and the errors so far by code, e.g. to sample the gateway's memory and the
    latest window's percentiles and errors."""
    cycle = itertools.cycle(texts)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    in_flight: set[asyncio.Task] = set()
    async with _channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)

        async def one(text: str) -> None:
            sent = time.perf_counter()
            try:
                await stub.Classify(pb.ClassifyRequest(text=text), timeout=30)
                latencies.append((time.perf_counter() - sent) * 1e3)
            except grpc.aio.AioRpcError as err:
                errors[err.code().name] += 1

        start = time.perf_counter()
        next_tick, sent = tick_s, 0
        while (elapsed := time.perf_counter() - start) < duration_s:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                if len(in_flight) >= max_in_flight:
                    errors["NOT_SENT"] += 1
                else:
                    task = asyncio.create_task(one(next(cycle)))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                sent += 1
            if on_tick is not None and elapsed >= next_tick:
                on_tick(elapsed, latencies, errors)
                next_tick += tick_s
            await asyncio.sleep(0.002)
        await asyncio.gather(*in_flight)
    return LoadResult("paced", 0, len(latencies), time.perf_counter() - start, tuple(latencies), dict(errors))
