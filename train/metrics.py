"""Evaluation metrics (scikit-learn) and dev-only threshold tuning for multi-label models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_recall_fscore_support,
)

from emotionaware.taxonomy import group_indices


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, floor: float = 0.02) -> np.ndarray:
    """Per-label threshold maximising that label's F1 on the given (dev) split.

    Only thresholds within ``[floor, 1 - floor]`` are candidates, so a rare label cannot end
    up firing on everything. A label with no positives keeps 0.5, and so does a label that no
    candidate gives a non-zero dev F1 (every dev positive scores under the floor): dev has no
    evidence for any operating point, and clipping the best cut below the floor up to the floor
    would make a label that fires on noise and is never right on dev.
    """
    thresholds = np.full(probs.shape[1], 0.5)
    for j in range(probs.shape[1]):
        if targets[:, j].sum() == 0:
            continue
        precision, recall, cuts = precision_recall_curve(targets[:, j], probs[:, j])
        f1 = 2 * precision[:-1] * recall[:-1] / np.clip(precision[:-1] + recall[:-1], 1e-12, None)
        f1[(cuts < floor) | (cuts > 1 - floor)] = 0.0  # the last point of the curve has no threshold
        if not f1.max() > 0:
            continue
        best = int(np.argmax(f1))
        # Midway to the next lower dev score: the same dev decisions, but no dev example sits
        # exactly on the threshold, so float rounding between stacks cannot flip it.
        lower = cuts[best - 1] if best > 0 else 0.0
        thresholds[j] = float(np.clip((cuts[best] + lower) / 2, floor, 1 - floor))
    return thresholds


def per_label(labels: Sequence[str], p, r, f, support) -> dict:
    """Precision, recall, F1 and support of each label (arrays from precision_recall_fscore_support)."""
    return {
        label: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }


def project(matrix: np.ndarray, groups: Mapping[str, Sequence[int]]) -> np.ndarray:
    """Project a (n, fine) 0/1 or score matrix onto coarse labels by taking the max."""
    return np.stack([matrix[:, list(idx)].max(axis=1) for idx in groups.values()], axis=1)


def multilabel_report(
    probs: np.ndarray,
    targets: np.ndarray,
    thresholds: np.ndarray,
    labels: Sequence[str],
    views: Mapping[str, Mapping[str, Sequence[str]]] = {},
) -> dict:
    """Headline and per-label metrics at the given thresholds, plus each view's metrics."""
    preds = (probs >= thresholds).astype(int)
    p, r, f, support = precision_recall_fscore_support(targets, preds, average=None, zero_division=0)
    report = {
        "examples": len(targets),
        "macro_f1": float(f1_score(targets, preds, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(targets, preds, average="micro", zero_division=0)),
        "weighted_f1": float(f1_score(targets, preds, average="weighted", zero_division=0)),
        "exact_match": float((preds == targets).all(axis=1).mean()),
        "macro_f1_at_0.5": float(
            f1_score(targets, (probs >= 0.5).astype(int), average="macro", zero_division=0)
        ),
        "per_label": per_label(labels, p, r, f, support),
        "views": {},
    }
    for name, mapping in views.items():
        groups = group_indices(labels, mapping)
        vp, vt = project(preds, groups), project(targets, groups)
        report["views"][name] = {
            "macro_f1": float(f1_score(vt, vp, average="macro", zero_division=0)),
            "micro_f1": float(f1_score(vt, vp, average="micro", zero_division=0)),
        }
    return report


def singlelabel_report(probs: np.ndarray, targets: np.ndarray, labels: Sequence[str]) -> dict:
    """Metrics of a softmax model: the top label is the prediction (no thresholds)."""
    preds = probs.argmax(axis=1)
    classes = list(range(len(labels)))
    p, r, f, support = precision_recall_fscore_support(
        targets, preds, labels=classes, average=None, zero_division=0
    )
    return {
        "examples": len(targets),
        "weighted_f1": float(f1_score(targets, preds, labels=classes, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(targets, preds, labels=classes, average="macro", zero_division=0)),
        "accuracy": float((preds == targets).mean()),
        "per_label": per_label(labels, p, r, f, support),
        "confusion_matrix": confusion_matrix(targets, preds, labels=classes).tolist(),
    }


def macro_f1(targets: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 of 0/1 decisions (the multi-label headline)."""
    return float(f1_score(targets, predicted.astype(int), average="macro", zero_division=0))


def weighted_f1(targets: np.ndarray, predicted: np.ndarray) -> float:
    """Support-weighted F1 (the single-label headline)."""
    return float(f1_score(targets, predicted.astype(int), average="weighted", zero_division=0))


def view_decision_rules(
    dev: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    thresholds: np.ndarray,
    labels: Sequence[str],
    views: Mapping[str, Mapping[str, Sequence[str]]],
) -> dict:
    """Each view's macro-F1 under two decision rules, on dev and test ((scores, targets) each).

    ``served``: a coarse label is predicted when any member label is (the gateway's rule, so a
    view never contradicts the fine labels). ``own_thresholds``: a coarse label is predicted
    when its score (the highest member score) reaches a threshold of its own, tuned on dev.
    """
    out = {}
    for name, mapping in views.items():
        groups = group_indices(labels, mapping)
        coarse_dev, coarse_test = project(dev[0], groups), project(test[0], groups)
        truth_dev, truth_test = project(dev[1], groups), project(test[1], groups)
        own = tune_thresholds(coarse_dev, truth_dev)

        def macro(truth: np.ndarray, preds: np.ndarray) -> float:
            return float(f1_score(truth, preds, average="macro", zero_division=0))

        out[name] = {
            "served": {
                "dev": macro(truth_dev, project((dev[0] >= thresholds).astype(int), groups)),
                "test": macro(truth_test, project((test[0] >= thresholds).astype(int), groups)),
            },
            "own_thresholds": {
                "dev": macro(truth_dev, (coarse_dev >= own).astype(int)),
                "test": macro(truth_test, (coarse_test >= own).astype(int)),
                "thresholds": {label: round(float(t), 4) for label, t in zip(groups, own, strict=True)},
            },
        }
    return out
