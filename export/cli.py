"""``emotionaware-export``: artifact -> ONNX -> Triton model repository, with parity checks."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from export.onnx_export import check_parity, export_onnx
from export.triton_repo import ServingOptions, is_current, write_model
from train.cli import MODELS_DIR
from train.data import DEFAULT_DATA_DIR, load_goemotions
from train.model import base_model_path, load_artifact, load_tokenizer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPO = PROJECT_ROOT / "model_repository"
log = logging.getLogger("export")


def parity_texts(data_dir: Path, count: int) -> list[str]:
    """Dev texts of varied length: every k-th text of the length-sorted dev split."""
    dev = sorted((e.text for e in load_goemotions(data_dir).dev), key=len)
    step = max(1, len(dev) // count)
    return dev[::step][:count]


def export_model(
    name: str,
    repo: Path,
    data_dir: Path,
    parity_count: int,
    options: ServingOptions,
    models_dir: Path = MODELS_DIR,
    version: int = 1,
) -> Path:
    artifact_dir = models_dir / name
    model, manifest = load_artifact(artifact_dir)
    tokenizer = load_tokenizer(manifest.base)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path)
        texts = parity_texts(data_dir, parity_count)
        ids = tokenizer(texts, truncation=True, max_length=manifest.max_length)["input_ids"]
        report = check_parity(model, onnx_path, ids, tokenizer.pad_token_id)
        log.info(
            "parity fp32 ONNX vs PyTorch on %d dev texts: max |dlogit| = %.2e (limit %.0e)",
            report.texts,
            report.max_abs_logit_diff,
            report.tolerance,
        )
        if not report.ok:
            raise SystemExit(
                f"export of {name} failed parity: max |dlogit| {report.max_abs_logit_diff:.3e} "
                f"> {report.tolerance:.0e} on {report.texts} dev texts"
            )
        return write_model(
            repo,
            version,
            manifest,
            artifact_dir,
            onnx_path,
            base_model_path(manifest.base) / "tokenizer.json",
            tokenizer.pad_token_id,
            options,
            {"parity": asdict(report), "serving": asdict(options)},
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export fine-tuned models into a Triton model repository.")
    parser.add_argument("models", nargs="*", default=["goemotions"], help="model names (default: goemotions)")
    parser.add_argument(
        "--repo", type=Path, default=DEFAULT_REPO, help="model repository (default: %(default)s)"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="datasets folder")
    parser.add_argument(
        "--models-dir", type=Path, default=MODELS_DIR, help="artifact folders (default: %(default)s)"
    )
    parser.add_argument("--parity-texts", type=int, default=512, help="dev texts for the parity check")
    parser.add_argument(
        "--threads",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="ONNX Runtime intra-op threads per Triton model instance",
    )
    parser.add_argument(
        "--if-stale",
        action="store_true",
        help="export only models missing from the repository or exported from a different artifact",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    options = ServingOptions(intra_op_threads=args.threads)
    for name in args.models:
        if args.if_stale and is_current(args.repo, name, args.models_dir / name):
            log.info("%s in %s is up to date with its artifact", name, args.repo)
            continue
        model_dir = export_model(name, args.repo, args.data_dir, args.parity_texts, options, args.models_dir)
        print(f"exported {name} -> {model_dir}", file=sys.stderr)
