"""Logits -> scores, decisions, views, chunk aggregation and label selection.

Decisions are made on the model's own labels (per-label dev-tuned thresholds, or the request's
override) and then projected onto the requested view (see gateway.views), so a view never
contradicts the model's own predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.scores import aggregate_windows, to_scores
from gateway.specs import ModelSpec
from gateway.types import ClassifyOptions, LabelScore, Scored
from gateway.views import project


def scores_of(spec: ModelSpec, logits: np.ndarray) -> np.ndarray:
    """Sigmoid or softmax scores (float64) of one sequence's logits."""
    return to_scores(logits.astype(np.float64), spec.problem_type)


def aggregate(spec: ModelSpec, chunk_scores: Sequence[np.ndarray], weights: Sequence[int]) -> np.ndarray:
    """One score vector from several windows: max for sigmoid, token-weighted mean for softmax."""
    return aggregate_windows(np.stack(chunk_scores), np.asarray(weights), spec.problem_type)


def decide(spec: ModelSpec, scores: np.ndarray, options: ClassifyOptions) -> Scored:
    """Thresholds, the predicted set, the view, and the labels the response lists."""
    if spec.problem_type is ProblemType.MULTI_LABEL:
        thresholds = (
            np.full(scores.shape, options.threshold) if options.threshold is not None else spec.thresholds
        ).astype(np.float64)
        predicted = scores >= thresholds
    else:
        thresholds = np.zeros_like(scores)
        predicted = np.zeros(scores.shape, dtype=bool)
        predicted[int(np.argmax(scores))] = True
    view = spec.views[options.view]
    labels = view.labels
    if not view.is_identity:
        scores, predicted = project(view, scores, predicted, spec.problem_type)
        if options.threshold is not None and spec.problem_type is ProblemType.MULTI_LABEL:
            thresholds = np.full(scores.shape, options.threshold)
        else:
            # A coarse label with one member keeps its threshold; a group has none of its own.
            thresholds = np.array([thresholds[m[0]] if len(m) == 1 else 0.0 for m in view.members])
    order = np.argsort(-scores, kind="stable")
    chosen = order[predicted[order]]
    if options.top_k:
        chosen = chosen[: options.top_k]
    if options.return_all_scores:
        listed = order
    elif options.top_k:
        listed = order[: options.top_k]
    else:
        listed = chosen
    # Only the listed labels become objects: most calls list a few of 28.
    scores_out = tuple(
        LabelScore(labels[i], float(scores[i]), float(thresholds[i]), bool(predicted[i]))
        for i in listed.tolist()
    )
    return Scored(scores_out, tuple(labels[i] for i in chosen.tolist()))
