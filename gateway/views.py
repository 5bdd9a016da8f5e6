"""Views: a model's labels projected onto a coarser label set through a declared mapping.

Which views a model offers follows from its label list: GoEmotions' 28 labels map onto the
Ekman and sentiment views; a model with the 7 Ekman labels offers the sentiment view.
Projection rules (also stated in the proto): for sigmoid scores a coarse label's score is the
highest member score and it is predicted when any member is; for softmax scores it is the sum
of member probabilities and the top coarse label is predicted.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.taxonomy import (
    EKMAN_LABELS,
    EKMAN_MAPPING,
    EKMAN_SENTIMENT_MAPPING,
    GOEMOTIONS_LABELS,
    SENTIMENT_MAPPING,
    group_indices,
)
from gateway.types import View


@dataclass(frozen=True)
class ViewMap:
    """Coarse labels and, for each, the indices of its members among the model's labels."""

    labels: tuple[str, ...]
    members: tuple[tuple[int, ...], ...]

    @property
    def is_identity(self) -> bool:
        return all(m == (i,) for i, m in enumerate(self.members))


def _mapping(labels: Sequence[str], mapping: Mapping[str, Sequence[str]]) -> ViewMap:
    groups = group_indices(labels, mapping)
    return ViewMap(tuple(groups), tuple(groups.values()))


def _identity(labels: Sequence[str]) -> ViewMap:
    return ViewMap(tuple(labels), tuple((i,) for i in range(len(labels))))


@functools.lru_cache(maxsize=64)  # per label set, not per request (the profile showed it)
def views_for(labels: tuple[str, ...]) -> dict[View, ViewMap]:
    """Every view a model with these labels offers (NATIVE always). Callers must not mutate it."""
    views = {View.NATIVE: _identity(labels)}
    if set(labels) == set(GOEMOTIONS_LABELS):
        views[View.GOEMOTIONS] = _identity(labels)
        views[View.EKMAN] = _mapping(labels, EKMAN_MAPPING)
        views[View.SENTIMENT] = _mapping(labels, SENTIMENT_MAPPING)
    elif set(labels) == set(EKMAN_LABELS):
        views[View.EKMAN] = _identity(labels)
        views[View.SENTIMENT] = _mapping(labels, EKMAN_SENTIMENT_MAPPING)
    return views


def project(
    view: ViewMap, scores: np.ndarray, predicted: np.ndarray, problem_type: ProblemType
) -> tuple[np.ndarray, np.ndarray]:
    """Coarse scores and decisions from fine ones (1-D arrays over the model's labels)."""
    if problem_type is ProblemType.MULTI_LABEL:
        coarse = np.array([scores[list(m)].max() for m in view.members])
        decided = np.array([bool(predicted[list(m)].any()) for m in view.members])
    else:
        coarse = np.array([scores[list(m)].sum() for m in view.members])
        decided = np.zeros(len(view.members), dtype=bool)
        decided[int(np.argmax(coarse))] = True
    return coarse, decided
