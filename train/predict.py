"""Batch inference with the PyTorch model (evaluation and parity references)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from train.minibatches import inference_batches


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    token_ids: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = 64,
    input_names: Sequence[str] = ("input_ids", "attention_mask"),
) -> np.ndarray:
    """Logits for every tokenised example, in input order.

    ``input_names`` are the positional inputs of ``model.forward`` (one unpadded segment, so
    ``token_type_ids`` are zeros).
    """
    model.eval()
    out = None
    for batch in inference_batches(token_ids, batch_size, pad_id):
        feed = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in input_names:
            feed["token_type_ids"] = torch.zeros_like(batch.input_ids)
        logits = model(*(feed[n] for n in input_names)).float().numpy()
        if out is None:
            out = np.zeros((len(token_ids), logits.shape[1]), dtype=np.float32)
        out[batch.index] = logits
    return out
