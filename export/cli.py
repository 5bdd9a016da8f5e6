"""``emotionaware-export``: artifact or checkpoint -> ONNX variants -> Triton model repositories.

    emotionaware-export                         # every shipped model (models/*), both flavours
    emotionaware-export goemotions --if-stale   # only when the artifact changed
    emotionaware-export --checkpoint DIR --name my-model   # any HF sequence classifier

Each export: fp32 ONNX, ONNX Runtime fusions and an fp16 variant for GPUs, parity checks on
real dev texts, and for committed artifacts a verification of the served graph against the
artifact's record (``serving.json``: dev metric and thresholds). The export fails when a check
fails, and writes nothing. Then the bundled CPU repository and the GPU repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from emotionaware.artifact import ServingRecord
from emotionaware.paths import DEFAULT_DATA_DIR, GPU_MODEL_REPOSITORY, MODEL_REPOSITORY, MODELS_DIR
from export.onnx_export import convert_fp16, optimize
from export.parity import ParityResult, check_parity
from export.source import ExportSource, artifact_digest, digest_files, from_artifact, from_hf_checkpoint
from export.triton_repo import CpuOptions, GpuOptions, is_current, refresh_python_model, write_cpu, write_gpu

DEFAULT_REPO = MODEL_REPOSITORY
DEFAULT_GPU_REPO = GPU_MODEL_REPOSITORY
log = logging.getLogger("export")
DEFAULT_CPU, DEFAULT_GPU = CpuOptions(), GpuOptions()


class ParityFailed(SystemExit):
    """An exported variant disagrees with its reference beyond the limits."""


@dataclass(frozen=True)
class ExportResult:
    cpu_version_dir: Path
    gpu_version_dir: Path | None
    report: dict
    parity: ParityResult


def shipped_models(models_dir: Path = MODELS_DIR) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir() if (p / "artifact.json").exists())


# Graphs the bundled CPU flavour can serve. Only the fused fp32 graph: its scores do not depend
# on batch neighbours or on the CPU (bench/cpu_graphs.py measures the int8 candidates).
CPU_GRAPHS = ("fp32",)


def export_source(
    source: ExportSource,
    repo: Path = DEFAULT_REPO,
    gpu_repo: Path | None = DEFAULT_GPU_REPO,
    data_dir: Path = DEFAULT_DATA_DIR,
    parity_texts: int = 512,
    cpu: CpuOptions = DEFAULT_CPU,
    gpu: GpuOptions = DEFAULT_GPU,
    record: ServingRecord | None = None,
    measure_test: bool = False,
) -> ExportResult:
    """Build the ONNX graphs, check them, write the repositories; raise ParityFailed on failure.

    ``record``: what the artifact says its served graph scores (verified, never re-derived).
    """
    started = time.monotonic()
    served = record.cpu_graph if record else cpu.served_graph
    if served not in CPU_GRAPHS:
        raise ParityFailed(f"{source.name}: unknown CPU graph {served!r} (known: {', '.join(CPU_GRAPHS)})")
    with tempfile.TemporaryDirectory(prefix=f"export-{source.name}-") as tmp:
        # The fp16 graph serves GPUs only: without a GPU repository it is neither built nor checked.
        variants = ("fp32-plain", "fp32", "fp16") if gpu_repo is not None else ("fp32-plain", "fp32")
        graphs = {name: Path(tmp) / f"{name}.onnx" for name in variants}
        source.write_onnx(graphs["fp32-plain"])
        fused = optimize(
            graphs["fp32-plain"], graphs["fp32"], source.onnx_model_type, source.num_heads, source.hidden_size
        )
        if "fp16" in graphs:
            convert_fp16(graphs["fp32"], graphs["fp16"])
        parity = check_parity(
            source,
            {v: graphs[v] for v in ("fp32", "fp16") if v in graphs},
            served,
            data_dir,
            parity_texts,
            record,
            measure_test,
        )
        report = parity.report
        failed = [c.name for c in report.checks if not c.passed]
        if failed:
            print(f"{source.name}: {report.table()}", file=sys.stderr)
            raise ParityFailed(f"export of {source.name} failed: {'; '.join(failed)}")
        log.info("%s: serves %s on CPU: %s", source.name, served, record.reason if record else "requested")
        report_dict = report.to_dict() | {"fused_ops": fused, "cpu_served_graph": served}
        if parity.dev is not None:
            # dev is measured by this export; test comes from the record that make eval wrote
            # with the same graph and thresholds (the export never looks at test).
            test = parity.test if parity.test is not None else (record.test if record else None)
            report_dict["served_metrics"] = {"graph": served, "headline": parity.headline, "dev": parity.dev,
                                             "test": test}  # fmt: skip
        if record is not None:
            report_dict["serving_record"] = asdict(record)
        cpu = replace(cpu, served_graph=served)
        cpu_dir = write_cpu(repo, source, graphs, report_dict, cpu, source.thresholds)
        gpu_dir = None
        if gpu_repo is not None:
            gpu_dir = write_gpu(gpu_repo, source, graphs, report_dict, gpu, source.thresholds)
    log.info(
        "exported %s in %.0f s -> %s%s",
        source.name,
        time.monotonic() - started,
        cpu_dir,
        f" and {gpu_dir}" if gpu_dir else "",
    )
    return ExportResult(cpu_dir, gpu_dir, report_dict, parity)


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
        choices=CPU_GRAPHS,
        default="fp32",
        help="graph the bundled CPU flavour serves for --checkpoint (artifacts: their serving.json)",
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
        record = ServingRecord.load(args.models_dir / name) if source.kind == "artifact" else None
        result = export_source(
            source, args.repo, gpu_repo, args.data_dir, args.parity_texts, cpu, gpu, record
        )
        print(
            json.dumps(
                {
                    "model": source.name,
                    "cpu": str(result.cpu_version_dir),
                    "gpu": str(result.gpu_version_dir) if result.gpu_version_dir else None,
                }
            )
        )
