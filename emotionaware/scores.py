"""Logits -> scores, one definition for training, export checks and the gateway."""

from __future__ import annotations

import numpy as np

from emotionaware.artifact import ProblemType


def to_scores(logits: np.ndarray, problem_type: ProblemType) -> np.ndarray:
    """Sigmoid per label for multi-label models, softmax across labels (last axis) otherwise.

    Works on one text's logits (labels,) or a batch (texts, labels); the softmax subtracts
    the row maximum first, so large logits do not overflow.
    """
    if problem_type is ProblemType.MULTI_LABEL:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def aggregate_windows(scores: np.ndarray, weights: np.ndarray, problem_type: ProblemType) -> np.ndarray:
    """One score vector for a text classified in several windows (rows of ``scores``).

    Sigmoid scores take each label's maximum (an emotion expressed anywhere is present);
    softmax scores take the mean weighted by each window's content tokens, which stays a
    probability distribution. Training, evaluation and the gateway all aggregate here.
    """
    if problem_type is ProblemType.MULTI_LABEL:
        return scores.max(axis=0)
    w = np.asarray(weights, dtype=np.float64)
    return (scores * w[:, None]).sum(axis=0) / w.sum()


NEUTRAL = "neutral"


def intensity(scores: np.ndarray, labels: tuple[str, ...] | list[str]) -> float | None:
    """How strongly a text expresses any emotion: 1 - P(neutral), in [0, 1].

    For a single-label (softmax) model it is the probability mass on the emotion labels; for a
    multi-label (sigmoid) model, the model's probability that the text is not neutral. None for
    a model without a ``neutral`` label (every label is an emotion: poems). Chosen on GoEmotions
    dev over the highest emotion score: it rises with the number of emotions the annotators
    agreed on in every decile (bench/intensity.py writes the table).
    """
    if NEUTRAL not in labels:
        return None
    return float(1.0 - scores[labels.index(NEUTRAL)])


def aggregate_intensity(values: list[float], weights: list[int], problem_type: ProblemType) -> float:
    """A text's intensity from its parts' (windows or sentences), as their scores aggregate:
    the highest for sigmoid scores (MAX), the token-weighted mean for softmax scores (MEAN,
    which equals 1 - the aggregated neutral probability)."""
    if problem_type is ProblemType.MULTI_LABEL:
        return max(values)
    return float(np.dot(values, weights) / np.sum(weights))
