"""Logits -> scores (sigmoid or softmax), thresholds and the predicted label set."""

from __future__ import annotations

import numpy as np

from emotionaware.artifact import ProblemType
from gateway.models import ModelSpec
from gateway.types import LabelScore


def scores_from_logits(logits: np.ndarray, problem_type: ProblemType) -> np.ndarray:
    """Per-label sigmoid for multi-label models, softmax over labels for single-label ones."""
    logits = logits.astype(np.float64)
    if problem_type is ProblemType.MULTI_LABEL:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def label_scores(spec: ModelSpec, logits: np.ndarray) -> tuple[tuple[LabelScore, ...], tuple[str, ...]]:
    """Every label's score and decision, highest score first, and the predicted labels."""
    scores = scores_from_logits(logits, spec.problem_type)
    if spec.problem_type is ProblemType.MULTI_LABEL:
        thresholds = spec.thresholds
        predicted = scores >= thresholds
    else:
        thresholds = np.zeros_like(scores)
        predicted = np.zeros(scores.shape, dtype=bool)
        predicted[int(np.argmax(scores))] = True
    order = np.argsort(-scores, kind="stable")
    ranked = tuple(
        LabelScore(spec.labels[i], float(scores[i]), float(thresholds[i]), bool(predicted[i])) for i in order
    )
    return ranked, tuple(s.label for s in ranked if s.predicted)
