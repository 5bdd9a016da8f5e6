"""perf_analyzer against the bundled Triton, fed with real GoEmotions test token sequences.

Starts Triton on free loopback ports over ``model_repository/``, writes perf_analyzer's
``--input-data`` file from the tokenized test split (real ids, real lengths), sweeps the
concurrency and prints one table: throughput, latency percentiles and how many requests
Triton's dynamic batcher folded into each model execution (from Triton's own statistics).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import tritonclient.grpc as triton_grpc

from emotionaware.datasets import DEFAULT_DATA_DIR, load_goemotions
from gateway.settings import DEFAULT_MODEL_REPOSITORY
from gateway.specs import load_model_spec
from launcher.tritonserver import TritonServer

OUT_DIR = Path("build/perf")


@dataclass(frozen=True)
class Row:
    concurrency: int
    infer_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    inferences: int
    executions: int


def perf_analyzer_env() -> dict[str, str]:
    """perf_analyzer links libcudart.so.12 even on CPU; the PyPI CUDA runtime wheel provides it."""
    lib = Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cuda_runtime" / "lib"
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(lib), env.get("LD_LIBRARY_PATH")) if p)
    return env


def write_input_data(path: Path, repo: Path, model: str, data_dir: Path, count: int) -> dict:
    texts = [e.text for e in load_goemotions(data_dir).test[:count]]
    return input_data_from_texts(path, load_model_spec(repo, model).tokenizer, texts)


def input_data_from_texts(path: Path, tokenizer, texts: list[str]) -> dict:
    """perf_analyzer's ``--input-data`` file: one entry per text, its real token ids and length."""
    entries, lengths = [], []
    for text in texts:
        ids = tokenizer.encode(text).input_ids.tolist()
        lengths.append(len(ids))
        entries.append(
            {
                "input_ids": {"content": ids, "shape": [len(ids)]},
                "attention_mask": {"content": [1] * len(ids), "shape": [len(ids)]},
            }
        )
    path.write_text(json.dumps({"data": entries}))
    lengths.sort()
    return {"texts": len(texts), "median_tokens": lengths[len(lengths) // 2], "max_tokens": lengths[-1]}


def run_level(
    server: TritonServer,
    model: str,
    concurrency: int,
    input_data: Path,
    interval_ms: int,
    binary: Path | None = None,
    env: dict[str, str] | None = None,
) -> Row:
    """One perf_analyzer run at ``concurrency``; ``binary``/``env`` default to this venv's install."""
    client = triton_grpc.InferenceServerClient(server.grpc_url)

    def counts() -> tuple[int, int]:
        stats = client.get_inference_statistics(model).model_stats[0]
        return stats.inference_count, stats.execution_count

    before = counts()
    csv_path = OUT_DIR / f"pa-c{concurrency}.csv"
    cmd = [
        str(binary or Path(sys.prefix) / "bin" / "perf_analyzer"),
        "-m",
        model,
        "-u",
        server.grpc_url,
        "-i",
        "grpc",
        "--input-data",
        str(input_data),
        "--concurrency-range",
        str(concurrency),
        "--measurement-interval",
        str(interval_ms),
        "--stability-percentage",
        "50",
        "--max-trials",
        "10",
        "--percentile",
        "99",
        "-f",
        str(csv_path),
    ]
    done = subprocess.run(cmd, env=env or perf_analyzer_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"perf_analyzer failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    after = counts()
    record = next(csv.DictReader(io.StringIO(csv_path.read_text())))
    return Row(
        concurrency,
        float(record["Inferences/Second"]),
        float(record["p50 latency"]) / 1e3,
        float(record["p95 latency"]) / 1e3,
        float(record["p99 latency"]) / 1e3,
        after[0] - before[0],
        after[1] - before[1],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--model", default="goemotions")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated levels")
    parser.add_argument("--texts", type=int, default=2000, help="test texts in the input data")
    parser.add_argument("--interval-ms", type=int, default=4000, help="perf_analyzer measurement window")
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    input_data = OUT_DIR / "input-data.json"
    lengths = write_input_data(input_data, args.model_repository, args.model, args.data_dir, args.texts)
    rows = []
    with TritonServer(args.model_repository, log_path=OUT_DIR / "triton.log") as server:
        server.wait_ready()
        for level in (int(c) for c in args.concurrency.split(",")):
            rows.append(run_level(server, args.model, level, input_data, args.interval_ms))
    header = (
        f"perf_analyzer -> Triton (python backend, ONNX Runtime), model {args.model}, "
        f"{lengths['texts']} GoEmotions test texts (median {lengths['median_tokens']} tokens), "
        f"{platform.machine()} {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}"
    )
    lines = [
        header,
        "",
        "| concurrency | infer/s | p50 ms | p95 ms | p99 ms | inferences | executions | infer/exec |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r.inferences / r.executions if r.executions else float("nan")
        lines.append(
            f"| {r.concurrency} | {r.infer_per_s:.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.inferences} | {r.executions} | {ratio:.1f} |"
        )
    table = "\n".join(lines)
    (OUT_DIR / "triton_perf.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
