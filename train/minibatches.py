"""Tokenised examples and length-aware batching for training and offline inference."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from emotionaware.padding import pad_rows


@dataclass(frozen=True)
class Batch:
    """A padded batch; ``index`` maps rows back to positions in the source list."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    index: list[int]


def pad(token_ids: Sequence[Sequence[int]], index: list[int], pad_id: int) -> Batch:
    ids, mask = pad_rows([token_ids[i] for i in index], pad_id)
    return Batch(torch.from_numpy(ids), torch.from_numpy(mask), index)


def training_batches(
    token_ids: Sequence[Sequence[int]],
    batch_size: int,
    pool_batches: int,
    rng: random.Random,
    pad_id: int,
) -> Iterator[Batch]:
    """Shuffled batches of similar length: shuffle, sort within pools, shuffle the batches.

    Sorting inside pools of ``pool_batches`` batches cuts padding (and CPU time) several-fold
    on short texts while keeping batch composition random from epoch to epoch.
    """
    order = list(range(len(token_ids)))
    rng.shuffle(order)
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: len(token_ids[i]))
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    for index in batches:
        yield pad(token_ids, index, pad_id)


def inference_batches(token_ids: Sequence[Sequence[int]], batch_size: int, pad_id: int) -> Iterator[Batch]:
    """Length-sorted batches covering every example once (order restored via ``index``)."""
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
    for start in range(0, len(order), batch_size):
        yield pad(token_ids, order[start : start + batch_size], pad_id)
