"""Logits -> scores (sigmoid or softmax), thresholds and the predicted label set."""

from __future__ import annotations

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.scores import to_scores
from gateway.models import ModelSpec
from gateway.types import LabelScore


def label_scores(spec: ModelSpec, logits: np.ndarray) -> tuple[tuple[LabelScore, ...], tuple[str, ...]]:
    """Every label's score and decision, highest score first, and the predicted labels."""
    scores = to_scores(logits.astype(np.float64), spec.problem_type)
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
