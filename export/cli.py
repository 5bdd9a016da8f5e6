"""``emotionaware-export``: artifact or checkpoint -> ONNX variants -> Triton model repositories.

    emotionaware-export                         # every shipped model (models/*), both flavours
    emotionaware-export goemotions --if-stale   # only when the artifact changed
    emotionaware-export --checkpoint DIR --name my-model   # any HF sequence classifier

Each export: fp32 ONNX, ONNX Runtime fusions, an int8 variant for CPUs and an fp16 variant for
GPUs, parity checks on real dev texts (the export fails when one fails), then the bundled CPU
repository and the GPU repository. The parity report is printed and saved with the model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from export.onnx_export import convert_fp16, optimize, quantize_int8
from export.parity import check_parity
from export.source import ExportSource, artifact_digest, digest_files, from_artifact, from_hf_checkpoint
from export.triton_repo import CpuOptions, GpuOptions, is_current, refresh_python_model, write_cpu, write_gpu
from train.data import DEFAULT_DATA_DIR

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_REPO = PROJECT_ROOT / "model_repository"
DEFAULT_GPU_REPO = PROJECT_ROOT / "model_repository_gpu"
log = logging.getLogger("export")
DEFAULT_CPU, DEFAULT_GPU = CpuOptions(), GpuOptions()


class ParityFailed(SystemExit):
    """An exported variant disagrees with its reference beyond the limits."""


@dataclass(frozen=True)
class ExportResult:
    cpu_version_dir: Path
    gpu_version_dir: Path | None
    report: dict


def shipped_models(models_dir: Path = MODELS_DIR) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if (p / "artifact.json").exists())


def export_source(
    source: ExportSource,
    repo: Path = DEFAULT_REPO,
    gpu_repo: Path | None = DEFAULT_GPU_REPO,
    data_dir: Path = DEFAULT_DATA_DIR,
    parity_texts: int = 512,
    cpu: CpuOptions = DEFAULT_CPU,
    gpu: GpuOptions = DEFAULT_GPU,
) -> ExportResult:
    """Build every ONNX variant, check parity, write the repositories; raise ParityFailed on failure."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"export-{source.name}-") as tmp:
        graphs = {name: Path(tmp) / f"{name}.onnx" for name in ("fp32-plain", "fp32", "int8", "fp16")}
        source.write_onnx(graphs["fp32-plain"])
        fused = optimize(
            graphs["fp32-plain"], graphs["fp32"], source.onnx_model_type, source.num_heads, source.hidden_size
        )
        quantize_int8(graphs["fp32"], graphs["int8"])
        convert_fp16(graphs["fp32"], graphs["fp16"])
        parity = check_parity(
            source, {v: graphs[v] for v in ("fp32", "int8", "fp16")}, data_dir, parity_texts
        )
        print(f"{source.name}: {parity.report.table()}", file=sys.stderr)
        report = parity.report.to_dict() | {"fused_ops": fused}
        served = choose_cpu_graph(source.name, cpu.served_graph, parity.report.checks)
        report["cpu_served_graph"] = served
        cpu = replace(cpu, served_graph=served)
        cpu_dir = write_cpu(repo, source, graphs, report, cpu, parity.thresholds[served])
        gpu_dir = None
        if gpu_repo is not None:
            gpu_dir = write_gpu(gpu_repo, source, graphs, report, gpu, parity.thresholds["fp32"])
    log.info(
        "exported %s in %.0f s -> %s%s",
        source.name,
        time.monotonic() - started,
        cpu_dir,
        f" and {gpu_dir}" if gpu_dir else "",
    )
    return ExportResult(cpu_dir, gpu_dir, report)


def choose_cpu_graph(name: str, requested: str, checks: list) -> str:
    """The graph the CPU flavour serves, or ParityFailed.

    fp32 and fp16 checks always gate the export. The int8 checks (agreement with fp32 and the
    headline-metric drop) decide whether int8 is served: with ``auto`` a failing int8 graph is
    replaced by fp32 (and the report says so); asking for ``int8`` explicitly makes them gate too.
    """
    failed = [c for c in checks if not c.passed]
    int8_failed = [c for c in failed if c.name.startswith("int8 ")]
    hard = [c for c in failed if c not in int8_failed] + (int8_failed if requested == "int8" else [])
    if hard:
        raise ParityFailed(f"export of {name} failed parity: {', '.join(c.name for c in hard)}")
    if requested != "auto":
        return requested
    if int8_failed:
        print(
            f"{name}: the CPU flavour serves fp32: the int8 graph failed {', '.join(c.name for c in int8_failed)}",
            file=sys.stderr,
        )
        return "fp32"
    return "int8"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="emotionaware-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="artifact names under models/ (default: all of them)")
    parser.add_argument(
        "--checkpoint", type=Path, help="a Hugging Face sequence-classification folder to export"
    )
    parser.add_argument("--name", help="model name for --checkpoint (default: the folder name)")
    parser.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="bundled CPU repository")
    parser.add_argument("--gpu-repo", type=Path, default=DEFAULT_GPU_REPO, help="GPU repository")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU repository")
    parser.add_argument("--gpu-accelerator", choices=("tensorrt", "cuda"), default="tensorrt")
    parser.add_argument(
        "--cpu-graph",
        choices=("auto", "int8", "fp32"),
        default="auto",
        help="graph the bundled CPU flavour serves; auto: int8 when it passes its checks, else fp32 "
        "(default: %(default)s)",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="datasets folder")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="artifact folders")
    parser.add_argument("--parity-texts", type=int, default=512, help="dev texts for the parity checks")
    parser.add_argument(
        "--threads",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="ONNX Runtime intra-op threads of the bundled model instance",
    )
    parser.add_argument(
        "--if-stale",
        action="store_true",
        help="skip models whose newest exported version came from the same source",
    )
    args = parser.parse_args(argv)
    # Only this tool's own progress at INFO; ONNX Runtime's tooling logs every fused node there.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    cpu = CpuOptions(intra_op_threads=args.threads, served_graph=args.cpu_graph)
    gpu = GpuOptions(accelerator=args.gpu_accelerator)
    gpu_repo = None if args.no_gpu else args.gpu_repo

    jobs: list[tuple[str, str, object]] = []  # (name, digest, source factory)
    if args.checkpoint:
        name = args.name or args.checkpoint.resolve().name
        digest = digest_files(args.checkpoint, [p.name for p in args.checkpoint.iterdir() if p.is_file()])
        jobs.append((name, digest, lambda: from_hf_checkpoint(args.checkpoint, name)))
    for name in args.models or ([] if args.checkpoint else shipped_models(args.models_dir)):
        artifact = args.models_dir / name
        jobs.append((name, artifact_digest(artifact), lambda artifact=artifact: from_artifact(artifact)))

    for name, digest, make_source in jobs:
        # Checked before anything is loaded, so an up-to-date `make serve` starts at once.
        if args.if_stale and is_current(args.repo, name, digest):
            log.info("%s in %s is up to date with its source", name, args.repo)
            if refresh_python_model(args.repo, name, digest):
                log.info("%s: model.py refreshed from this release", name)
            continue
        source = make_source()
        result = export_source(source, args.repo, gpu_repo, args.data_dir, args.parity_texts, cpu, gpu)
        print(
            json.dumps(
                {
                    "model": source.name,
                    "cpu": str(result.cpu_version_dir),
                    "gpu": str(result.gpu_version_dir) if result.gpu_version_dir else None,
                }
            )
        )
