"""Padding token-id rows into a batch: the one loop that training, export checks and serving share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_rows(
    rows: Sequence[Sequence[int] | np.ndarray], pad_id: int, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of token ids -> (input_ids, attention_mask), int64 of shape (rows, width).

    ``width`` defaults to the longest row; a larger one pads every row further (length
    buckets). Padding positions hold ``pad_id`` and a mask of 0.
    """
    width = max(len(r) for r in rows) if width is None else width
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for row, tokens in enumerate(rows):
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    return ids, mask
