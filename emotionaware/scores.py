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
