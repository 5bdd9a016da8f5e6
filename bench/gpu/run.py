"""GPU benchmark: the raw model ceiling against the same model served by Triton and the gateway.

Runs on the lent GPU machine in one call (``bench/gpu/run.sh``), or on CPU in a small version
(``--small``, what the test tier runs). In one run, on the GoEmotions test texts:

1. Raw ceiling: the committed goemotions classifier in PyTorch (bf16 and fp16, SDPA attention),
   pre-tokenized, length-sorted batches, model time only. Its outputs are first checked against
   fp32 logits computed where the bundle was made.
2. Triton: the same PyTorch model in Triton's python backend (ragged dynamic batching), driven
   by perf_analyzer with real token sequences at a concurrency sweep.
3. The gateway: 1..N gateway processes in front of that Triton, each driven by its own load
   generator process: unary single-text calls and ClassifyBatch of 64 texts.

Writes ``<date>-gpu-<device>.{md,json}``: texts/s, p50/p99 and each row's ratio to the raw
ceiling of the served precision (the target: the gateway at >= 50% of it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from bench import gateway_load
from emotionaware.paths import MODELS_DIR, ROOT

ARTIFACT = MODELS_DIR / "goemotions"
MODEL = "goemotions"


# -- 1. raw ceiling -------------------------------------------------------------------------


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def parity(model, encoded: list[np.ndarray], reference: list[list[float]], device: str) -> dict:
    """Largest |logit| difference and argmax agreement against the bundle's fp32 logits."""
    import torch

    from bench.gpu.torch_model import pad

    ids, mask = pad(encoded[: len(reference)])
    with torch.inference_mode():
        logits = model(ids.to(device), mask.to(device)).float().cpu().numpy()
    return compare(logits, reference)


def compare(logits: np.ndarray, reference: list[list[float]]) -> dict:
    """Largest |logit| difference and argmax agreement of ``logits`` against the fp32 reference."""
    expected = np.asarray(reference, dtype=np.float32)
    return {
        "texts": len(expected),
        "max_abs_logit_diff": round(float(np.abs(logits - expected).max()), 4),
        "argmax_agreement": round(float((logits.argmax(1) == expected.argmax(1)).mean()), 4),
    }


def raw_ceiling(model, encoded: list[np.ndarray], device: str, batch: int, seconds: float) -> dict:
    """Texts/s of the model alone over length-sorted batches (inputs already on the device)."""
    import torch

    from bench.gpu.torch_model import pad

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    batches = []
    for start in range(0, len(order), batch):
        ids, mask = pad([encoded[i] for i in order[start : start + batch]])
        batches.append((ids.to(device), mask.to(device)))
    with torch.inference_mode():
        for ids, mask in batches[:3]:  # warm-up: kernels, allocator
            model(ids, mask)
        _sync(device)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for ids, mask in batches:
                model(ids, mask)
                done += len(ids)
        _sync(device)
        elapsed = time.perf_counter() - started
        one = []
        for row in encoded[:200]:
            ids, mask = pad([row])
            ids, mask = ids.to(device), mask.to(device)
            t = time.perf_counter()
            model(ids, mask)
            _sync(device)
            one.append(1e3 * (time.perf_counter() - t))
    return {"texts_per_s": done / elapsed, "batch": batch, "texts": done, "seconds": round(elapsed, 2),
            "batch1_p50_ms": round(statistics.median(one), 2)}  # fmt: skip


# -- 2. Triton -------------------------------------------------------------------------------


def write_repository(
    bundle: Path, dest: Path, dtype: str, device: str, instances: int, max_batch: int
) -> Path:
    """A model repository with the PyTorch python-backend model and the gateway's metadata."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(bundle / "repo", dest)
    version = dest / MODEL / "1"
    shutil.copy(Path(__file__).with_name("triton_model.py"), version / "model.py")
    config = mc.ModelConfig(name=MODEL, backend="python", max_batch_size=max_batch)
    for name in ("input_ids", "attention_mask"):
        config.input.add(name=name, data_type=mc.TYPE_INT64, dims=[-1], allow_ragged_batch=True)
    config.output.add(name="logits", data_type=mc.TYPE_FP32, dims=[28], label_filename="labels.txt")
    # The python backend places the model itself; one instance per stub process, so several
    # overlap one batch's CPU work (padding, copies) with another's GPU work.
    config.instance_group.add(count=instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    config.dynamic_batching.max_queue_delay_microseconds = 200
    params = {"project_root": str(ROOT), "artifact_dir": str(ARTIFACT), "bundle_model_dir": str(bundle / "model"),
              "dtype": dtype, "device": device}  # fmt: skip
    for key, value in params.items():
        config.parameters[key].string_value = value
    (dest / MODEL / "config.pbtxt").write_text(text_format.MessageToString(config))
    return dest


def served_parity(url: str, encoded: list[np.ndarray], reference: list[list[float]]) -> dict:
    """The served model's logits for the reference texts (one request each) against fp32."""
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(url)
    got = []
    for row in encoded[: len(reference)]:
        inputs = []
        for name, array in (("input_ids", row[None]), ("attention_mask", np.ones_like(row)[None])):
            tensor = triton_grpc.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array.astype(np.int64))
            inputs.append(tensor)
        result = client.infer(MODEL, inputs, outputs=[triton_grpc.InferRequestedOutput("logits")])
        got.append(result.as_numpy("logits")[0])
    return compare(np.stack(got), reference)


# -- 3. the gateway --------------------------------------------------------------------------


def _load_worker(kind: str, target: str, texts: list[str], concurrency: int, seconds: float):
    if kind == "unary":
        return asyncio.run(gateway_load.unary(target, texts, concurrency, seconds, warmup_s=1.0))
    return asyncio.run(gateway_load.batch(target, texts, concurrency, seconds, batch_size=64, warmup_s=1.0))


def drive(
    kind: str, targets: list[str], texts: list[str], concurrency: int, seconds: float, per_target: int
) -> dict:
    """``per_target`` load-generator processes per gateway, all at once; merged latencies."""
    jobs = [t for t in targets for _ in range(per_target)]
    with ProcessPoolExecutor(len(jobs), mp_context=get_context("spawn")) as pool:
        offset = len(texts) // len(jobs)
        futures = [pool.submit(_load_worker, kind, t, texts[i * offset :] + texts[: i * offset], concurrency, seconds)
                   for i, t in enumerate(jobs)]  # fmt: skip
        results = [f.result() for f in futures]
    latencies = np.concatenate([np.asarray(r.latencies_ms) for r in results])
    if latencies.size == 0:  # no call started and finished in the window (a very slow host)
        latencies = np.asarray([np.nan])
    errors: dict[str, int] = {}
    for r in results:
        for code, n in r.errors.items():
            errors[code] = errors.get(code, 0) + n
    return {"texts_per_s": sum(r.texts_per_s for r in results), "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "errors": errors,
            "load_processes": len(jobs), "concurrency_per_process": concurrency}  # fmt: skip


def gateway_flags(max_batch: int) -> list[str]:
    # GPU batches are cheap per text: larger batches, more of them in flight, no length buckets.
    return ["--models=goemotions", f"--batch-max-texts={max_batch}", f"--batch-token-budget={max_batch * 128}",
            "--batch-max-inflight=4", "--queue-max-texts=16384", "--batch-wait-ms=1"]  # fmt: skip


# -- the run ---------------------------------------------------------------------------------


def machine(device: str) -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU run)"
    return {"gpu": gpu, "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "host": platform.node()}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "build" / "gpu-bundle")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when present")
    parser.add_argument("--dtypes", default="bf16,fp16", help="raw-ceiling precisions; the first is served")
    parser.add_argument("--texts", type=int, default=0, help="GoEmotions test texts (0: all)")
    parser.add_argument("--seconds", type=float, default=6.0, help="measurement per level")
    parser.add_argument("--ceiling-batch", type=int, default=1024)
    parser.add_argument(
        "--max-batch", type=int, default=512, help="largest batch the gateway and Triton form"
    )
    parser.add_argument("--instances", type=int, default=2, help="Triton model instances (stub processes)")
    parser.add_argument("--pa-concurrency", default="16,64,256")
    parser.add_argument("--gateways", default="1,4,8", help="gateway process counts to try")
    parser.add_argument("--unary-concurrency", type=int, default=128, help="per load-generator process")
    parser.add_argument(
        "--batch-concurrency", type=int, default=4, help="ClassifyBatch(64) calls per process"
    )
    parser.add_argument("--loaders-per-gateway", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "gpu-run")
    return parser


def raw_ceilings(report: dict, encoded: list, reference: list, device: str, args: argparse.Namespace) -> None:
    """PyTorch's own throughput and parity at each precision (the first one is served)."""
    import torch

    from bench.gpu.torch_model import build

    for dtype in args.dtypes.split(","):
        print(f"raw ceiling {dtype} ...", file=sys.stderr, flush=True)
        model = build(ARTIFACT, args.bundle / "model", dtype, device)
        report["parity"][dtype] = parity(model, encoded, reference, device)
        report["ceilings"][dtype] = raw_ceiling(model, encoded, device, args.ceiling_batch, args.seconds)
        del model
        if device == "cuda":
            torch.cuda.empty_cache()


def perf_analyzer_rows(report: dict, triton, tokenizer, texts: list[str], device: str,
                       args: argparse.Namespace) -> None:  # fmt: skip
    """perf_analyzer straight to Triton, when the bundle carries it (or on CPU, the local one)."""
    from bench.triton_perf import OUT_DIR, input_data_from_texts, run_level

    pa = args.bundle / "pa" / "bin" / "perf_analyzer"
    if not (pa.exists() or device == "cpu"):
        return
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    data = input_data_from_texts(OUT_DIR / "gpu-input-data.json", tokenizer, texts)
    env = dict(os.environ)
    if pa.exists():
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(pa.parents[1] / "lib"), env.get("LD_LIBRARY_PATH")) if p
        )
    for level in (int(c) for c in args.pa_concurrency.split(",")):
        print(f"perf_analyzer c{level} ...", file=sys.stderr, flush=True)
        try:
            r = run_level(triton, MODEL, level, OUT_DIR / "gpu-input-data.json", int(args.seconds * 1000),
                          binary=pa if pa.exists() else None, env=env if pa.exists() else None)  # fmt: skip
        except SystemExit as exc:  # one device call: keep the gateway rows if perf_analyzer fails
            report["perf_analyzer_error"] = str(exc)[-2000:]
            print(f"perf_analyzer failed; going on without it: {str(exc)[-300:]}", file=sys.stderr)
            break
        report["rows"].append({"path": "perf_analyzer -> Triton", "load": f"c{level}",
                               "texts_per_s": r.infer_per_s, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                               "errors": {}, "note": f"{r.inferences / max(r.executions, 1):.1f} texts/exec"})  # fmt: skip
    report["input_data"] = data


def gateway_fleet_rows(report: dict, triton, repo: Path, texts: list[str], args: argparse.Namespace) -> None:
    """1, 4, 8 gateway processes in front of the one Triton, unary and ClassifyBatch(64)."""
    from bench.run import start_gateway

    for count in (int(n) for n in args.gateways.split(",")):
        print(f"{count} gateway process(es) ...", file=sys.stderr, flush=True)
        fleet = [start_gateway(triton.grpc_url, repo, args.work / f"gateway-{count}-{i}.log",
                               *gateway_flags(args.max_batch)) for i in range(count)]  # fmt: skip
        try:
            targets = [target for _, target in fleet]
            for kind, concurrency in (("unary", args.unary_concurrency), ("batch", args.batch_concurrency)):
                r = drive(kind, targets, texts, concurrency, args.seconds, args.loaders_per_gateway)
                label = "gateway unary" if kind == "unary" else "gateway ClassifyBatch(64)"
                report["rows"].append({"path": f"{label}, {count} process(es)",
                                       "load": f"{r['load_processes']} x c{concurrency}"} | r)  # fmt: skip
        finally:
            for proc, _ in fleet:
                proc.terminate()
            for proc, _ in fleet:
                proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    import torch

    from emotionaware.tokenization import TextTokenizer
    from launcher.tritonserver import TritonServer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    started = time.monotonic()
    texts = json.loads((args.bundle / "texts.json").read_text())
    texts = texts[: args.texts] if args.texts else texts
    tokenizer = TextTokenizer(args.bundle / "model" / "tokenizer.json", 128)
    encoded = [tokenizer.encode(t).input_ids for t in texts]
    reference = json.loads((args.bundle / "model" / "reference.json").read_text())["logits"]
    report: dict = {"machine": machine(device), "date": time.strftime("%Y-%m-%d %H:%M"), "texts": len(texts),
                    "median_tokens": int(np.median([len(e) for e in encoded])), "ceilings": {}, "parity": {},
                    "rows": []}  # fmt: skip
    raw_ceilings(report, encoded, reference, device, args)
    served = args.dtypes.split(",")[0]
    ceiling = report["ceilings"][served]["texts_per_s"]

    repo = write_repository(args.bundle, args.work / "repo", served, device, args.instances, args.max_batch)
    args.work.mkdir(parents=True, exist_ok=True)
    with TritonServer(repo, log_path=args.work / "triton.log") as triton:
        triton.wait_ready(timeout_s=300)
        report["parity"][f"{served} served by Triton"] = served_parity(triton.grpc_url, encoded, reference)
        perf_analyzer_rows(report, triton, tokenizer, texts, device, args)
        gateway_fleet_rows(report, triton, repo, texts, args)
    for row in report["rows"]:
        row["x_ceiling"] = row["texts_per_s"] / ceiling
    report["wall_s"] = round(time.monotonic() - started)
    write(report, served, args.out)


def write(report: dict, served: str, out: Path) -> None:
    m = report["machine"]
    cpu_run = m["gpu"].startswith("none")
    name = (
        "cpu" if cpu_run else "-".join("".join(c if c.isalnum() else " " for c in m["gpu"].lower()).split())
    )
    stem = out / f"{time.strftime('%Y-%m-%d')}-gpu-{name}"
    lines = [f"# GPU performance, {report['date']}", "",
             f"Machine: {m['gpu']}, {m['cpus']} CPUs, Python {m['python']}, torch {m['torch']}. "
             f"{report['texts']} GoEmotions test texts (median {report['median_tokens']} tokens), model `goemotions`. "
             f"One run of `bench/gpu/run.sh` ({report['wall_s']} s); ratios are to the raw ceiling at {served}, "
             "measured in the same run.", "",
             "| raw model (PyTorch, SDPA, sorted batches, model time only) | batch | texts/s | batch-1 p50 ms "
             "| max abs logit diff vs fp32 | argmax agreement |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for dtype, c in report["ceilings"].items():
        p = report["parity"][dtype]
        lines.append(f"| {dtype} | {c['batch']} | {c['texts_per_s']:.0f} | {c['batch1_p50_ms']:.2f} "
                     f"| {p['max_abs_logit_diff']} | {p['argmax_agreement']} |")  # fmt: skip
    for name, p in report["parity"].items():
        if name.endswith("served by Triton"):
            lines += ["", f"Served model check ({name}, {p['texts']} texts, one request each): max abs logit "
                      f"difference {p['max_abs_logit_diff']} against fp32, argmax agreement {p['argmax_agreement']}."]  # fmt: skip
    lines += ["", "| path | load | texts/s | p50 ms | p99 ms | errors | x ceiling | note |",
              "|---|---|---:|---:|---:|---|---:|---|"]  # fmt: skip
    for r in report["rows"]:
        errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        lines.append(f"| {r['path']} | {r['load']} | {r['texts_per_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
                     f"| {errors} | {r['x_ceiling']:.2f} | {r.get('note', '')} |")  # fmt: skip
    gateway_rows = [r for r in report["rows"] if r["path"].startswith("gateway")]
    if gateway_rows:
        best = max(gateway_rows, key=lambda r: r["texts_per_s"])
        verdict = (
            "met" if best["x_ceiling"] >= 0.5 else f"missed by {100 * (0.5 - best['x_ceiling']) / 0.5:.0f}%"
        )
        lines += ["", f"Target (served through the gateway >= 0.5x the raw ceiling): best {best['x_ceiling']:.2f}x "
                  f"({best['path']}, {best['texts_per_s']:.0f} texts/s, p99 {best['p99_ms']:.1f} ms): {verdict}."]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(lines))
    print(f"\nwritten: {stem}.md, .json", file=sys.stderr)


if __name__ == "__main__":
    main()
