"""``analyze`` against a plain ClassifyBatch loop on the same rows, one run on one machine.

Starts ``make serve``'s program on free loopback ports, writes a CSV of ``--rows`` GoEmotions
texts, then alternates (``--rounds`` times): a plain loop of ClassifyBatch calls over the rows
(the client package, the same batch size and calls in flight, nothing written), and
``emotionaware-client analyze`` on the file (a process: reading, progress, writing the
results, start-up included). Prints rows/s of each and the CLI's cost against the loop.

    python -m bench.files [--rows 20000] [--rounds 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from emotionaware_client import EmotionClient, TrafficClass

from bench.reliability import Serve
from bench.run import machine
from emotionaware.datasets import DEFAULT_DATA_DIR, load_goemotions
from gateway.settings import DEFAULT_MODEL_REPOSITORY

BATCH, CONCURRENCY = 64, 4


def plain_loop(target: str, texts: Sequence[str]) -> float:
    """Seconds for ClassifyBatch calls of BATCH texts over ``texts``, CONCURRENCY in flight."""
    chunks = [list(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
    with EmotionClient(target, timeout=120) as client, ThreadPoolExecutor(CONCURRENCY) as pool:
        started = time.perf_counter()
        list(pool.map(lambda c: client.classify_batch(c, "goemotions", return_all_scores=True,
                                                      traffic_class=TrafficClass.BULK, concurrency=1), chunks))  # fmt: skip
        return time.perf_counter() - started


def cli_analyze(target: str, source: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "client.cli", "--target", target, "analyze", str(source), "-o", str(out),
         "--model", "goemotions", "--batch", str(BATCH), "--concurrency", str(CONCURRENCY), "--restart",
         "--quiet"],
        check=True, capture_output=True, timeout=3600,
    )  # fmt: skip
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--max-cost", type=float, default=0.10, help="exit 1 when the CLI is slower than this"
    )
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    pool = [e.text for e in load_goemotions(args.data_dir).train]
    texts = [pool[i % len(pool)] for i in range(args.rows)]
    serve = Serve(args.model_repository, Path("build/logs/files"))
    loop_s, cli_s = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "rows.csv"
            with source.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["id", "text"])
                writer.writerows([i, t] for i, t in enumerate(texts))
            plain_loop(serve.target, texts[:2000])  # warm-up
            for _ in range(args.rounds):
                loop_s.append(plain_loop(serve.target, texts))
                cli_s.append(cli_analyze(serve.target, source, Path(tmp) / "rows.emotions.jsonl"))
    finally:
        serve.stop()
    loop_rate, cli_rate = args.rows / min(loop_s), args.rows / min(cli_s)
    cost = 1 - cli_rate / loop_rate
    m = machine()
    lines = [
        f"# analyze against a plain ClassifyBatch loop, {time.strftime('%Y-%m-%d %H:%M')}", "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs. {args.rows:,} GoEmotions train texts; calls of {BATCH} "
        f"texts, {CONCURRENCY} in flight, bulk; best of {args.rounds} alternating rounds.", "",
        "| run | seconds (each round) | rows/s |", "|---|---|---:|",
        f"| plain ClassifyBatch loop | {', '.join(f'{s:.1f}' for s in loop_s)} | {loop_rate:,.0f} |",
        f"| emotionaware-client analyze (CSV in, JSONL out) | {', '.join(f'{s:.1f}' for s in cli_s)} "
        f"| {cli_rate:,.0f} |", "",
        f"The CLI costs {cost:+.1%} against the loop (goal: at most {args.max_cost:.0%}).",
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0 if cost <= args.max_cost else 1


if __name__ == "__main__":
    sys.exit(main())
