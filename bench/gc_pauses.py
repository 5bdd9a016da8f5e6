"""Garbage-collection pauses of the gateway under load, with Python's default young threshold
and with the gateway's (``--gc-young-threshold``), one run each on the same host:

    python -m bench.gc_pauses [--seconds 15] [--callers 256] [--out FILE]

Each run starts the supervised ``make serve`` program (bench.reliability.Serve), drives a
closed loop of unary calls (refused calls resent at once, as bench.admission does) and reads
``emotionaware_gc_pause_seconds`` from the gateway's metrics. The two full collections that
freeze start-up's objects (once serving, once the sentencizer has loaded) are counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.admission import _unary, closed_loop, corpus, measured
from bench.reliability import Serve
from bench.run import machine
from bench.soak import gateway_metrics
from emotionaware.datasets import DEFAULT_DATA_DIR
from gateway.settings import DEFAULT_MODEL_REPOSITORY, Settings

# Full collections the gateway makes itself to freeze start-up's objects.
FREEZES = 2


@dataclass
class Pauses:
    threshold: int
    rate: float  # texts/s answered
    count: dict[str, int]  # collections by generation
    seconds: dict[str, float]  # their pauses in all
    over: dict[str, int]  # pauses over 25 ms
    longest_bucket: dict[str, str]  # the smallest bucket bound that holds every pause


def _read(metrics_port: int) -> tuple[dict, dict, dict, dict]:
    count, total, over, longest = {}, {}, {}, {}
    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in gateway_metrics(metrics_port):
        if family.name != "emotionaware_gc_pause_seconds":
            continue
        for s in family.samples:
            g = s.labels["generation"]
            if s.name.endswith("_count"):
                count[g] = int(s.value)
            elif s.name.endswith("_sum"):
                total[g] = s.value
            elif s.name.endswith("_bucket"):
                buckets.setdefault(g, []).append((float(s.labels["le"]), s.value))
    for g, bs in buckets.items():
        bs.sort()
        over[g] = int(count.get(g, 0) - dict(bs).get(0.025, 0))
        longest[g] = next((f"{le * 1000:g} ms" for le, n in bs if n >= count.get(g, 0)), "-")
    return count, total, over, longest


def run(threshold: int, seconds: float, callers: int, log_dir: Path) -> Pauses:
    os.environ["EMOTIONAWARE_GC_YOUNG_THRESHOLD"] = str(threshold)
    c = corpus(DEFAULT_DATA_DIR)
    serve = Serve(DEFAULT_MODEL_REPOSITORY, log_dir)
    try:
        asyncio.run(closed_loop(serve.target, _unary(c), 32, 3))  # warm-up (and the sentencizer)
        outcome = measured(serve, lambda: closed_loop(serve.target, _unary(c), callers, seconds))
        count, total, over, longest = _read(serve.metrics_port)
    finally:
        serve.stop()
        os.environ.pop("EMOTIONAWARE_GC_YOUNG_THRESHOLD", None)
    return Pauses(threshold, outcome.rate, count, total, over, longest)


def lines(runs: Sequence[Pauses], seconds: float, callers: int) -> list[str]:
    m = machine()
    out = [
        f"# gc pauses, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs. `python -m bench.gc_pauses --seconds {seconds:g} --callers {callers}`: "
        f"a closed loop of {callers} unary callers for {seconds:g} s after a warm-up, per young threshold; "
        f"collections since the gateway started (the {FREEZES} full collections that freeze start-up's objects included).",
        "",
        "| young threshold | texts/s | generation | collections | pause in all, ms | mean, ms | over 25 ms | all within |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        name = f"{r.threshold} (Python's default)" if r.threshold == 700 else f"{r.threshold}"
        for g in ("0", "1", "2"):
            n, total = r.count.get(g, 0), r.seconds.get(g, 0.0)
            mean = f"{total / n * 1000:.1f}" if n else "-"
            out.append(
                f"| {name} | {r.rate:.0f} | {g} | {n} | {total * 1000:.0f} | {mean} | {r.over.get(g, 0)} | {r.longest_bucket.get(g, '-')} |"
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--callers", type=int, default=256)
    parser.add_argument("--log-dir", type=Path, default=Path("build/logs/gc-pauses"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    runs = [
        run(threshold, args.seconds, args.callers, args.log_dir / str(threshold))
        for threshold in (700, Settings().gc_young_threshold)
    ]
    text = "\n".join(lines(runs, args.seconds, args.callers)) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
