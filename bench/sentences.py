"""What Analyze costs beside Classify, same texts, same server, one run: ``make analyze-cost``.

    python -m bench.sentences [--texts 300] [--concurrency 8] [--out FILE]

Texts are customer-message-sized: three GoEmotions dev comments joined into one text (fixed
seed). Each text is sent, closed loop at ``--concurrency`` calls in flight, against the
``make serve`` program (Triton and the gateway, its defaults):

- ``Classify`` of the whole text (one label set, one sequence);
- ``Analyze`` of the same text (its sentences, each classified, and the document aggregate);
- ``Classify`` of each sentence Analyze found, one call per sentence: what a client without
  Analyze would do to get the same per-sentence answers.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.reliability import Serve
from bench.run import results_page
from emotionaware.datasets import load_goemotions
from emotionaware.paths import DEFAULT_DATA_DIR
from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.settings import DEFAULT_MODEL_REPOSITORY

MODEL = "goemotions"


@dataclass(frozen=True)
class Row:
    name: str
    calls: int
    texts: int
    sentences: int
    seconds: float
    latencies_ms: list[float]

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def messages(data_dir: Path, count: int) -> list[str]:
    """``count`` texts of three dev comments each, fixed seed."""
    dev = [e.text for e in load_goemotions(data_dir).dev]
    rng = random.Random(33)
    return [" ".join(rng.sample(dev, 3)) for _ in range(count)]


async def closed_loop(
    calls: Sequence[Callable[[], Awaitable[object]]], concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(reversed(calls))

    async def worker() -> None:
        while queue:
            call = queue.pop()
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def measure(target: str, texts: Sequence[str], concurrency: int) -> list[Row]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)

        def classify(text: str) -> Callable[[], Awaitable[object]]:
            return lambda: stub.Classify(pb.ClassifyRequest(text=text, model=MODEL), timeout=60)

        def analyze(text: str) -> Callable[[], Awaitable[object]]:
            return lambda: stub.Analyze(pb.AnalyzeRequest(text=text, model=MODEL), timeout=60)

        # Warm: Triton's first batches and the gateway's sentencizer.
        await closed_loop([analyze(t) for t in texts[:32]] + [classify(t) for t in texts[:32]], concurrency)
        split = [await stub.Analyze(pb.AnalyzeRequest(text=t, model=MODEL), timeout=60) for t in texts]
        sentences = [s.text for r in split for s in r.sentences]
        rows = []
        for name, calls, count in (
            ("Classify, whole text", [classify(t) for t in texts], len(texts)),
            ("Analyze, whole text", [analyze(t) for t in texts], len(texts)),
            ("Classify, each sentence (one call each)", [classify(s) for s in sentences], 0),
        ):
            seconds, latencies = await closed_loop(calls, concurrency)
            rows.append(Row(name, len(calls), count, len(sentences), seconds, latencies))
        return rows


def table(rows: Sequence[Row]) -> str:
    base = rows[0].texts / rows[0].seconds
    lines = [
        "| calls | count | texts/s | sentences/s | texts/s vs Classify | p50 / p99 ms per call |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        texts_s = r.texts / r.seconds if r.texts else None
        shown = f"{texts_s:.0f}" if texts_s else "-"
        ratio = f"{texts_s / base:.2f}x" if texts_s else "-"
        per_sentence = f"{r.sentences / r.seconds:.0f}" if r.name != "Classify, whole text" else "-"
        lines.append(
            f"| {r.name} | {r.calls} | {shown} | {per_sentence} | {ratio} | {r.p(50):.1f} / {r.p(99):.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--target", default="", help="a running gateway (default: start make serve's program)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    texts = messages(args.data_dir, args.texts)
    if args.target:
        rows = asyncio.run(measure(args.target, texts, args.concurrency))
    else:
        with tempfile.TemporaryDirectory() as logs:
            serve = Serve(args.model_repository, Path(logs))
            try:
                rows = asyncio.run(measure(serve.target, texts, args.concurrency))
            finally:
                serve.stop()
    sentences = rows[1].sentences
    results_page(
        "Analyze beside Classify",
        f"{len(texts)} texts of three GoEmotions dev comments each ({sentences} sentences, "
        f"{sentences / len(texts):.2f} per text), model {MODEL}, {args.concurrency} calls in flight, "
        "closed loop, against the `make serve` program (Triton, CPU). Command: `make analyze-cost`.",
        table(rows),
        out=args.out,
    )
    return rows


if __name__ == "__main__":
    main()
