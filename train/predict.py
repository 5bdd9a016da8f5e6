"""Batch inference with the PyTorch model (evaluation and parity references)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from emotionaware.artifact import ProblemType
from train.batching import inference_batches


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module, token_ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64
) -> np.ndarray:
    """Logits for every tokenised example, in input order."""
    model.eval()
    out = None
    for batch in inference_batches(token_ids, batch_size, pad_id):
        logits = model(batch.input_ids, batch.attention_mask).float().numpy()
        if out is None:
            out = np.zeros((len(token_ids), logits.shape[1]), dtype=np.float32)
        out[batch.index] = logits
    return out


def to_scores(logits: np.ndarray, problem_type: ProblemType) -> np.ndarray:
    """Sigmoid per label for multi-label models, softmax across labels otherwise."""
    if problem_type is ProblemType.MULTI_LABEL:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
