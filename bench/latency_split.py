"""Where one unary call's time goes, from the client's stub to ONNX Runtime: ``make latency-split``.

    python -m bench.latency_split [--calls 1000] [--out FILE]

One caller, one ``Classify`` at a time (c1: nothing queues, so every millisecond is a stage's
own), on GoEmotions dev texts, against the ``make serve`` program (defaults, admission on):

- as the client saw it (a plain synchronous stub, the cheapest client there is);
- inside the gateway: the handler (``emotionaware_request_seconds``) and its stages
  (``emotionaware_stage_seconds``: tokenize, queue, infer, postprocess);
- inside Triton: the request, its queue, and the python backend's execute
  (``nv_inference_*_duration_us``);
- ONNX Runtime alone, in this process, on the served graph with the backend's thread count.

The differences between the nested measures are the costs around the model: the client and
gRPC between client and gateway, the gateway's own work, the call from the gateway to Triton,
and the python backend around ONNX Runtime. The same caller then runs against a gateway with
the embedded backend (ONNX Runtime in the gateway process, no Triton), the control. Means per
call in milliseconds, all from one run on this machine; a Markdown table to stdout and ``--out``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families

from bench.run import dev_texts, results_page
from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.settings import DEFAULT_MODEL_REPOSITORY

MODEL = "goemotions"
WARMUP = 100
# Triton's cumulative durations, microseconds, per model (counters: the parser names their
# samples with a _total suffix).
_TRITON = {
    "request": "nv_inference_request_duration_us_total",
    "queue": "nv_inference_queue_duration_us_total",
    "input": "nv_inference_compute_input_duration_us_total",
    "execute": "nv_inference_compute_infer_duration_us_total",
    "output": "nv_inference_compute_output_duration_us_total",
}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus endpoint on this host: (name, labels) -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:
    """Sum over the samples of ``name`` whose labels include ``labels``: after minus before."""

    def total(m: dict) -> float:
        return sum(v for (n, ls), v in m.items() if n == name and labels.items() <= dict(ls).items())

    return total(after) - total(before)


@dataclass(frozen=True)
class Calls:
    """Client-side times of one c1 loop, in seconds."""

    times: list[float]

    @property
    def mean_ms(self) -> float:
        return 1e3 * statistics.fmean(self.times)

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.times)
        return 1e3 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def c1_loop(
    target: str, texts: Sequence[str], calls: int, between: Callable[[], None] | None = None
) -> Calls:
    """``calls`` Classify calls one after another over ``texts`` (after a warm-up), timed at the stub.

    ``between`` runs once after the warm-up (to read the servers' counters where the timed calls start).
    """
    with grpc.insecure_channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)

        def one(text: str) -> None:
            stub.Classify(pb.ClassifyRequest(text=text, model=MODEL), timeout=10)

        for i in range(WARMUP):
            one(texts[i % len(texts)])
        if between:
            between()
        times = []
        for i in range(calls):
            started = time.perf_counter()
            one(texts[i % len(texts)])
            times.append(time.perf_counter() - started)
    return Calls(times)


def ort_alone(repository: Path, texts: Sequence[str], calls: int) -> Calls:
    """ONNX Runtime on the served graph in this process, one text per run, with the options of
    the python backend's small-batch session."""
    import numpy as np
    import onnxruntime as ort
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from gateway.backends.onnxruntime import served_graph
    from gateway.specs import load_model_spec

    spec = load_model_spec(repository, MODEL)
    folder = repository / MODEL
    config = text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())
    threads = (
        config.parameters["intra_op_threads"].string_value if "intra_op_threads" in config.parameters else "0"
    )
    # The python backend's small-batch session: a lone text runs with threads that spin while
    # the run lasts (export/python_backend/model.py).
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    graph = folder / spec.version / served_graph(folder)
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    tokenizer = spec.tokenizer
    names = {i.name for i in session.get_inputs()}

    def feed(text: str) -> dict[str, np.ndarray]:
        ids = tokenizer.encode(text).input_ids.astype(np.int64)[None, :]
        out = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in names:
            out["token_type_ids"] = np.zeros_like(ids)
        return out

    feeds = [feed(t) for t in texts]
    for i in range(WARMUP):
        session.run(None, feeds[i % len(feeds)])
    times = []
    for i in range(calls):
        started = time.perf_counter()
        session.run(None, feeds[i % len(feeds)])
        times.append(time.perf_counter() - started)
    return Calls(times)


@dataclass(frozen=True)
class Split:
    client: Calls
    gateway: dict[str, float]  # ms per call: request, tokenize, queue, infer, postprocess
    triton: dict[str, float]  # ms per call: request, queue, input, execute, output (empty: embedded)
    model: Calls


def served_split(repository: Path, texts: Sequence[str], calls: int, log_dir: Path) -> Split:
    from bench.reliability import Serve

    serve = Serve(repository, log_dir)
    marks: dict[str, dict] = {}
    try:

        def mark() -> None:
            marks["gateway"], marks["triton"] = scrape(serve.metrics_port), scrape(serve.ports.metrics)

        client = c1_loop(serve.target, texts, calls, mark)
        gateway_after, triton_after = scrape(serve.metrics_port), scrape(serve.ports.metrics)
    finally:
        serve.stop()
    gateway = _gateway_split(marks["gateway"], gateway_after, calls)
    count = _delta(marks["triton"], triton_after, "nv_inference_request_success_total", model=MODEL) or calls
    triton = {
        stage: _delta(marks["triton"], triton_after, name, model=MODEL) / 1e3 / count
        for stage, name in _TRITON.items()
    }
    return Split(client, gateway, triton, ort_alone(repository, texts, calls))


def _gateway_split(before: dict, after: dict, calls: int) -> dict[str, float]:
    out = {
        "request": 1e3 * _delta(before, after, "emotionaware_request_seconds_sum", method="Classify") / calls
    }
    for stage in ("tokenize", "queue", "infer", "postprocess"):
        out[stage] = 1e3 * _delta(before, after, "emotionaware_stage_seconds_sum", stage=stage) / calls
    return out


def embedded_split(repository: Path, texts: Sequence[str], calls: int, log_dir: Path) -> Split:
    """The same loop against a gateway that runs ONNX Runtime itself (``--backend=embedded``)."""
    import subprocess

    from launcher.serve import wait_gateway
    from launcher.tritonserver import free_port

    port, metrics = free_port(), free_port()
    target = f"127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "gateway", f"--listen={target}", f"--model-repository={repository}",
        "--backend=embedded", f"--metrics-port={metrics}", "--log-level=WARNING", "--http-listen=",
    ]  # fmt: skip
    with (log_dir / "gateway-embedded.log").open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_gateway(target, proc, timeout_s=120)
            marks: dict[str, dict] = {}
            client = c1_loop(target, texts, calls, lambda: marks.setdefault("gateway", scrape(metrics)))
            after = scrape(metrics)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return Split(
        client, _gateway_split(marks["gateway"], after, calls), {}, ort_alone(repository, texts, calls)
    )


def table(served: Split, embedded: Split) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    def rows(split: Split, name: str) -> list[str]:
        g, t = split.gateway, split.triton
        model = split.model.mean_ms
        lines = [
            f"| {name} | client, Classify as the stub saw it (p50 {split.client.quantile_ms(0.5):.2f}, "
            f"p99 {split.client.quantile_ms(0.99):.2f}) | {ms(split.client.mean_ms)} | |",
            f"| {name} | client and gRPC around the gateway's handler | {ms(split.client.mean_ms - g['request'])} "
            f"| client minus handler |",
            f"| {name} | gateway handler (interceptor, pipeline, conversion) | {ms(g['request'])} | |",
            f"| {name} | of which tokenize | {ms(g['tokenize'])} | |",
            f"| {name} | of which waiting for a batch | {ms(g['queue'])} | |",
            f"| {name} | of which inference call (batch sent to answer) | {ms(g['infer'])} | |",
            f"| {name} | of which post-processing | {ms(g['postprocess'])} | |",
            f"| {name} | gateway's own work | {ms(g['request'] - g['tokenize'] - g['queue'] - g['infer'] - g['postprocess'])} "
            f"| handler minus its stages |",
        ]
        if t:
            lines += [
                f"| {name} | gRPC from the gateway to Triton and back | {ms(g['infer'] - t['request'])} "
                f"| inference call minus Triton's request |",
                f"| {name} | Triton request (queue {t['queue']:.2f}, inputs {t['input']:.2f}, outputs "
                f"{t['output']:.2f}) | {ms(t['request'])} | |",
                f"| {name} | python backend's execute | {ms(t['execute'])} | |",
                f"| {name} | python backend around ONNX Runtime | {ms(t['execute'] - model)} "
                f"| execute minus ONNX Runtime alone |",
            ]
        else:
            lines.append(
                f"| {name} | around ONNX Runtime in the gateway | {ms(g['infer'] - model)} "
                f"| inference call minus ONNX Runtime alone |"
            )
        lines.append(f"| {name} | ONNX Runtime alone, this process, one text per run | {ms(model)} | |")
        lines.append(
            f"| {name} | **not the model** | **{ms(split.client.mean_ms - model)}** "
            f"| **{100 * (1 - model / split.client.mean_ms):.0f}% of the call** |"
        )
        return lines

    return "\n".join(
        [
            "| backend | where | ms per call (mean) | how |",
            "|---|---|---:|---|",
            *rows(served, "Triton (make serve)"),
            *rows(embedded, "embedded"),
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    from emotionaware.datasets import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(prog="bench.latency_split", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    texts = dev_texts(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        served = served_split(args.model_repository, texts, args.calls, Path(tmp) / "serve")
        embedded = embedded_split(args.model_repository, texts, args.calls, Path(tmp) / "embedded")
    results_page(
        "latency split",
        f"`make latency-split`: {args.calls} unary `Classify` calls on `{MODEL}`, one at a time (c1), "
        "GoEmotions dev texts; `make serve` defaults; means per call from the servers' own counters "
        "over the same calls.",
        table(served, embedded),
        out=args.out,
    )


if __name__ == "__main__":
    main()
