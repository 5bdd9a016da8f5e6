"""Typed domain objects passed between the gateway's stages (no protobuf past the servicer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotionaware.artifact import ProblemType


@dataclass(frozen=True)
class ClassifyInput:
    """One text to classify, already validated at the API boundary."""

    text: str
    model: str  # empty: the default model


@dataclass(frozen=True)
class TokenizedText:
    """Token ids ready for the model, with what truncation did to them."""

    input_ids: np.ndarray  # int64, shape (tokens,)
    token_count: int  # tokens of the full text, special tokens included
    truncated: bool

    def model_inputs(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The tensors a model takes, each int64 (1, tokens); one unpadded segment."""
        ids = self.input_ids.reshape(1, -1)
        make = {"input_ids": lambda: ids, "attention_mask": lambda: np.ones_like(ids),
                "token_type_ids": lambda: np.zeros_like(ids)}  # fmt: skip
        return {name: make[name]() for name in names}


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float
    threshold: float
    predicted: bool


@dataclass(frozen=True)
class ModelOutput:
    """Raw logits and the version of the model that produced them."""

    logits: np.ndarray  # float32, shape (labels,)
    model_version: str


@dataclass(frozen=True)
class ClassifyResult:
    """A classified text: every label's score (highest first) and the predicted set."""

    scores: tuple[LabelScore, ...]
    predicted: tuple[str, ...]
    problem_type: ProblemType
    token_count: int
    truncated: bool
    max_tokens: int
    model: str
    model_version: str
