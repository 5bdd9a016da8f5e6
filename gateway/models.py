"""The models the gateway serves, loaded from the Triton model repository.

For each served model the gateway reads, from the newest version folder, the same files
that Triton serves: ``metadata.json`` (labels, problem type, thresholds, token limit) and
``tokenizer.json``. Requests are then pinned to that version so tokenizer, labels and graph
always belong together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionaware.artifact import ProblemType
from gateway.errors import ModelNotFound
from gateway.tokenization import TextTokenizer

# Inputs of a single-segment encoder without token types (what our artifacts export).
DEFAULT_INPUTS = ("input_ids", "attention_mask")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    labels: tuple[str, ...]
    problem_type: ProblemType
    thresholds: np.ndarray  # float32, shape (labels,)
    max_tokens: int
    tokenizer: TextTokenizer
    input_names: tuple[str, ...] = DEFAULT_INPUTS


def latest_version(model_dir: Path) -> Path:
    versions = sorted((int(p.name), p) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not versions:
        raise FileNotFoundError(f"{model_dir} has no numeric version folder; run `make export`")
    return versions[-1][1]


def load_model_spec(repository: Path, name: str) -> ModelSpec:
    version_dir = latest_version(Path(repository) / name)
    meta = json.loads((version_dir / "metadata.json").read_text())
    labels = tuple(meta["labels"])
    thresholds = np.array([meta["thresholds"][label] for label in labels], dtype=np.float32)
    return ModelSpec(
        name=name,
        version=version_dir.name,
        labels=labels,
        problem_type=ProblemType(meta["problem_type"]),
        thresholds=thresholds,
        max_tokens=int(meta["max_length"]),
        tokenizer=TextTokenizer(version_dir / "tokenizer.json", int(meta["max_length"])),
        input_names=tuple(meta.get("input_names", DEFAULT_INPUTS)),
    )


class ModelRegistry:
    """Name -> spec for every served model, with the default used for empty names."""

    def __init__(self, specs: dict[str, ModelSpec], default: str) -> None:
        if default not in specs:
            raise ValueError(f"default model {default!r} is not loaded")
        self._specs = dict(specs)
        self.default = default

    @classmethod
    def load(cls, repository: Path, names: tuple[str, ...], default: str) -> ModelRegistry:
        """Load ``names`` from the repository, or every model in it when ``names`` is empty."""
        if not names:
            names = tuple(sorted(p.parent.name for p in Path(repository).glob("*/config.pbtxt")))
        return cls({name: load_model_spec(repository, name) for name in names}, default)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def resolve(self, name: str) -> ModelSpec:
        spec = self._specs.get(name or self.default)
        if spec is None:
            raise ModelNotFound(f"model {name!r} is not served; available: {', '.join(sorted(self._specs))}")
        return spec
