"""What gets exported: our compact artifacts, or any Hugging Face sequence-classification checkpoint.

Both kinds become an :class:`ExportSource`: a PyTorch module returning logits, its label list,
problem type, thresholds, token limit and fast tokenizer, and a function that writes the fp32
ONNX graph with the tensor names the Triton configs use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from emotionaware.artifact import MANIFEST, SERVING, THRESHOLDS, WEIGHTS, ProblemType, load_thresholds

log = logging.getLogger(__name__)

# Checkpoints may declare a model_max_length far beyond their position table (or none at all).
MAX_TOKENS_CAP = 512


@dataclass(frozen=True)
class ExportSource:
    """A classifier ready to export, whatever it was built from."""

    name: str
    kind: str  # "artifact" or "hf-checkpoint"
    model: torch.nn.Module  # forward(input_ids, attention_mask[, token_type_ids]) -> logits
    labels: tuple[str, ...]
    problem_type: ProblemType
    thresholds: tuple[float, ...]
    max_length: int
    tokenizer_json: Path
    pad_token_id: int
    input_names: tuple[str, ...]  # token_type_ids only where the architecture uses them
    num_heads: int
    hidden_size: int
    onnx_model_type: str  # model type for ONNX Runtime's transformer optimizer
    write_onnx: Callable[[Path], None]
    digest: str  # changes whenever the exported behaviour could change
    dataset: str = ""  # labelled data for the export's quality checks ("" = none known)
    context_turns: int = 0  # conversation models: earlier turns read as a second segment
    long_text_mode: str = "truncate"  # the gateway's default for texts over max_length
    description: dict = field(default_factory=dict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_files(root: Path, names: list[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(names):
        path = root / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + sha256_file(path).encode())
    return digest.hexdigest()


def artifact_digest(artifact_dir: Path) -> str:
    """One checksum over the files that determine an artifact's exported behaviour."""
    return digest_files(artifact_dir, [WEIGHTS, MANIFEST, THRESHOLDS, SERVING])


def from_artifact(artifact_dir: Path) -> ExportSource:
    """One of our committed compact artifacts, rebuilt with its base encoder."""
    from export.onnx_export import export_module
    from train.model import base_model_path, load_artifact, load_tokenizer

    model, manifest = load_artifact(artifact_dir)
    tokenizer = load_tokenizer(manifest.base)
    config = model.encoder.config
    inputs = ("input_ids", "attention_mask")
    metrics_path = artifact_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return ExportSource(
        name=manifest.name,
        kind="artifact",
        model=model,
        labels=manifest.labels,
        problem_type=manifest.problem_type,
        thresholds=load_thresholds(artifact_dir, manifest.labels),
        max_length=manifest.max_length,
        tokenizer_json=base_model_path(manifest.base) / "tokenizer.json",
        pad_token_id=tokenizer.pad_token_id,
        input_names=inputs,
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        onnx_model_type=config.model_type,
        write_onnx=lambda path: export_module(model, inputs, path),
        digest=artifact_digest(artifact_dir),
        dataset=manifest.dataset,
        context_turns=manifest.context_turns,
        long_text_mode=manifest.long_text_mode,
        description={
            "base": manifest.base.__dict__,
            "dataset": manifest.dataset,
            "test_metrics": {
                k: metrics["test"][k]
                for k in ("macro_f1", "micro_f1", "weighted_f1")
                if k in metrics.get("test", {})
            },
        },
    )


class _LogitsOnly(torch.nn.Module):
    """Adapts a Hugging Face classifier to return the logits tensor alone."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits


def from_hf_checkpoint(checkpoint: Path, name: str) -> ExportSource:
    """Any ``AutoModelForSequenceClassification`` folder with a tokenizer (no code changes).

    Labels come from ``id2label``; ``problem_type: multi_label_classification`` selects
    sigmoid scores, anything else softmax. A ``thresholds.json`` next to the weights
    (label -> threshold) is used for multi-label decisions; otherwise 0.5.
    """
    from optimum.exporters.onnx import main_export
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    checkpoint = Path(checkpoint).resolve()
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint, use_fast=True)
    if not tokenizer.is_fast:
        raise SystemExit(f"{checkpoint}: the gateway needs a fast tokenizer (tokenizer.json)")
    config = model.config
    labels = tuple(config.id2label[i] for i in range(config.num_labels))
    multi = config.problem_type == "multi_label_classification"
    problem_type = ProblemType.MULTI_LABEL if multi else ProblemType.SINGLE_LABEL
    thresholds = load_thresholds(checkpoint, labels) if multi else tuple(0.0 for _ in labels)
    max_positions = getattr(config, "max_position_embeddings", MAX_TOKENS_CAP)
    max_length = min(tokenizer.model_max_length or MAX_TOKENS_CAP, max_positions, MAX_TOKENS_CAP)
    uses_token_types = (
        "token_type_ids" in tokenizer.model_input_names and getattr(config, "type_vocab_size", 0) > 1
    )
    inputs = (
        ("input_ids", "attention_mask", "token_type_ids")
        if uses_token_types
        else ("input_ids", "attention_mask")
    )

    staging = Path(tempfile.mkdtemp(prefix="emotionaware-tokenizer-"))
    tokenizer.save_pretrained(staging)  # writes tokenizer.json even when the folder has only vocab files

    def write_onnx(path: Path) -> None:
        with tempfile.TemporaryDirectory() as out:
            # optimum knows every Hugging Face architecture's inputs and dynamic axes.
            main_export(
                str(checkpoint),
                output=out,
                task="text-classification",
                opset=17,
                do_validation=False,
                local_files_only=True,
            )
            shutil.copyfile(Path(out) / "model.onnx", path)

    return ExportSource(
        name=name,
        kind="hf-checkpoint",
        model=_LogitsOnly(model),
        labels=labels,
        problem_type=problem_type,
        thresholds=thresholds,
        max_length=max_length,
        tokenizer_json=staging / "tokenizer.json",
        pad_token_id=tokenizer.pad_token_id or 0,
        input_names=inputs,
        num_heads=getattr(config, "num_attention_heads", 0),
        hidden_size=getattr(config, "hidden_size", 0),
        onnx_model_type=config.model_type,
        write_onnx=write_onnx,
        digest=digest_files(checkpoint, [p.name for p in checkpoint.iterdir() if p.is_file()]),
        description={
            "checkpoint": str(checkpoint),
            "architecture": config.architectures or [config.model_type],
        },
    )
