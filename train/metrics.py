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

# Thresholds are chosen within [floor, 1 - floor] (see tune_thresholds).
THRESHOLD_FLOOR = 0.02


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, floor: float = THRESHOLD_FLOOR) -> np.ndarray:
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


# Threshold rules compared on dev by cross-fitting: a rule's thresholds are fitted on four
# fifths of dev and decide the other fifth, so its dev figure is not scored on the examples
# that chose it. Shrinkage pulls a label's threshold toward one shared threshold by its
# number of dev positives (a label with k positives lands halfway).
STRICT_FLOOR = 0.05
SHRINK_POSITIVES = 25  # a label with this many dev positives lands halfway to the shared threshold
FLOORED_RULE = f"per_label_floor_{STRICT_FLOOR:g}"
SHRINK_RULE = f"shrink_{SHRINK_POSITIVES}"
# Each rule's name in the records, and what the model card calls it.
THRESHOLD_RULE_NAMES = {
    "per_label": f"per label, best dev F1, within [{THRESHOLD_FLOOR:g}, {1 - THRESHOLD_FLOOR:g}] (served)",
    FLOORED_RULE: f"per label, within [{STRICT_FLOOR:g}, {1 - STRICT_FLOOR:g}]",
    SHRINK_RULE: f"per label, pulled toward one shared threshold (halfway at {SHRINK_POSITIVES} dev positives)",
    "shared": "one threshold for every label",
}
THRESHOLD_RULES = tuple(THRESHOLD_RULE_NAMES)
CROSS_FIT_FOLDS = 5
CROSS_FIT_REPEATS = 10
SHARED_GRID = np.round(np.arange(0.02, 0.9, 0.01), 2)


def fit_threshold_rule(rule: str, probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The per-label thresholds one of THRESHOLD_RULES fits on (scores, targets)."""
    if rule == "per_label":
        return tune_thresholds(probs, targets)
    if rule == FLOORED_RULE:
        return tune_thresholds(probs, targets, floor=STRICT_FLOOR)
    shared = float(SHARED_GRID[int(np.argmax([counted_macro_f1(targets, probs >= t) for t in SHARED_GRID]))])
    if rule == "shared":
        return np.full(probs.shape[1], shared)
    if rule == SHRINK_RULE:
        positives = targets.sum(axis=0)
        return (positives * tune_thresholds(probs, targets) + SHRINK_POSITIVES * shared) / (
            positives + SHRINK_POSITIVES
        )
    raise ValueError(f"unknown threshold rule {rule!r}")


def counted_macro_f1(targets: np.ndarray, predicted: np.ndarray) -> float:
    """Macro-F1 from counts (as ``macro_f1``, zero for a label never predicted nor present), fast
    enough to scan a grid of thresholds."""
    truth = targets.astype(bool)
    tp = (predicted & truth).sum(axis=0)
    wrong = (predicted ^ truth).sum(axis=0)  # false positives plus false negatives
    denominator = 2 * tp + wrong
    return float(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)))


def threshold_rules(dev: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> dict:
    """Macro-F1 of each threshold rule: on dev in-sample, on dev cross-fitted, and on test.

    The cross-fitted dev figure is the one to choose a rule on (in-sample dev rewards a rule for
    fitting dev's own noise); test is reported and never chooses. ``lead`` is the mean paired
    difference from the served ``per_label`` rule over the same folds, with its standard error
    across repeats. Folds are seeded: the figures are a function of the scores only.
    """
    (dev_probs, dev_targets), (test_probs, test_targets) = dev, test
    cross = {rule: [] for rule in THRESHOLD_RULES}
    for repeat in range(CROSS_FIT_REPEATS):
        folds = np.random.default_rng(repeat).permutation(len(dev_probs)) % CROSS_FIT_FOLDS
        for rule in THRESHOLD_RULES:
            preds = np.zeros(dev_targets.shape, dtype=bool)
            for fold in range(CROSS_FIT_FOLDS):
                fit, held = folds != fold, folds == fold
                preds[held] = dev_probs[held] >= fit_threshold_rule(rule, dev_probs[fit], dev_targets[fit])
            cross[rule].append(counted_macro_f1(dev_targets, preds))
    served = fit_threshold_rule("per_label", dev_probs, dev_targets)
    out = {}
    for rule in THRESHOLD_RULES:
        thresholds = fit_threshold_rule(rule, dev_probs, dev_targets)
        lead = np.array(cross[rule]) - np.array(cross["per_label"])
        out[rule] = {
            "dev_in_sample": macro_f1(dev_targets, dev_probs >= thresholds),
            "dev_cross_fitted": float(np.mean(cross[rule])),
            "lead": float(lead.mean()),
            "lead_se": float(lead.std(ddof=1) / np.sqrt(len(lead))),
            # On the whole of dev the rule may fit the served thresholds: choosing it changes nothing.
            "same_thresholds": bool(np.allclose(thresholds, served)),
            "test": macro_f1(test_targets, test_probs >= thresholds),
        }
    return out
