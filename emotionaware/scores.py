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
