"""Served models, read from the Triton model repository.

For each served (model, version) the gateway reads the same version folder Triton serves:
``metadata.json`` (labels, problem type, thresholds, token limit, context turns, length
buckets) and ``tokenizer.json``. A request is pinned to one version, so tokenizer, labels and
graph always belong together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.tokenization import TextTokenizer
from gateway.types import LongTextMode, View
from gateway.views import ViewMap, views_for

# Inputs of a single-segment encoder without token types (what our artifacts export).
DEFAULT_INPUTS = ("input_ids", "attention_mask")


@dataclass(frozen=True)
class ModelSpec:
    """One version of one model: everything pre- and post-processing need."""

    name: str
    version: str
    labels: tuple[str, ...]
    problem_type: ProblemType
    thresholds: np.ndarray  # float32, shape (labels,)
    max_tokens: int
    tokenizer: TextTokenizer
    input_names: tuple[str, ...] = DEFAULT_INPUTS
    context_turns: int = 0
    length_buckets: tuple[int, ...] = ()
    dataset: str = ""
    # What a request that names no LongTextMode gets: chunk for models of long texts (poems).
    long_text_mode: LongTextMode = LongTextMode.TRUNCATE
    backend_name: str = ""  # model name in Triton; empty: same as name

    @property
    def views(self) -> dict[View, ViewMap]:
        return views_for(self.labels)

    @property
    def triton_name(self) -> str:
        return self.backend_name or self.name


def version_folders(model_dir: Path) -> list[str]:
    """Numeric version folders of a model, oldest first."""
    if not model_dir.is_dir():
        return []
    return [
        str(v) for v in sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    ]


def load_model_spec(repository: Path, name: str, version: str = "", backend_name: str = "") -> ModelSpec:
    """The spec of ``version`` (empty: the newest) of model folder ``backend_name or name``."""
    model_dir = Path(repository) / (backend_name or name)
    versions = version_folders(model_dir)
    if not versions:
        raise FileNotFoundError(f"{model_dir} has no numeric version folder; run `make export`")
    version = version or versions[-1]
    if version not in versions:
        raise FileNotFoundError(f"{model_dir} has no version {version}; it has {', '.join(versions)}")
    version_dir = model_dir / version
    meta = json.loads((version_dir / "metadata.json").read_text())
    labels = tuple(meta["labels"])
    return ModelSpec(
        name=name,
        version=version,
        labels=labels,
        problem_type=ProblemType(meta["problem_type"]),
        thresholds=np.array([meta["thresholds"][label] for label in labels], dtype=np.float32),
        max_tokens=int(meta["max_length"]),
        tokenizer=TextTokenizer(version_dir / "tokenizer.json", int(meta["max_length"])),
        input_names=tuple(meta.get("input_names", DEFAULT_INPUTS)),
        context_turns=int(meta.get("context_turns", 0)),
        length_buckets=tuple(meta.get("length_buckets", ())),
        dataset=str(meta.get("dataset", "")),
        long_text_mode=LongTextMode(meta.get("long_text_mode", LongTextMode.TRUNCATE.value)),
        backend_name=backend_name if backend_name and backend_name != name else "",
    )
