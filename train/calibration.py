"""Calibration of sigmoid scores: expected calibration error and a dev-fitted temperature.

A score "means what it says" when, of all the (text, label) pairs scored about 0.7, about
70% carry the label. The expected calibration error (ECE) measures the gap: scores are put in
equal-width bins, and the gaps between each bin's mean score and its share of true labels are
averaged, weighted by the bins' sizes. Two views are reported:

- pooled: every (text, label) pair of the split. Most pairs are clear negatives scored near 0,
  so this ECE is small even for a model whose confident scores are off;
- top label: each text's highest-scoring label, right when the text carries it. This is the
  score a user reads first.

A single temperature T (scores ``sigmoid(logit / T)``) is fitted on dev by minimising the
binary cross-entropy; dividing logits by T > 0 keeps every label's ranking, so tuned
thresholds map onto it one to one and decisions do not change.
"""

from __future__ import annotations

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.scores import to_scores

BINS = 15
# Temperatures searched, coarse to fine: a grid is deterministic and needs no optimiser.
_GRID = np.round(np.arange(0.25, 4.0001, 0.01), 2)


def expected_calibration_error(scores: np.ndarray, hits: np.ndarray, bins: int = BINS) -> float:
    """ECE of scores in [0, 1] against 0/1 outcomes (any shapes, flattened), equal-width bins."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    h = np.asarray(hits, dtype=np.float64).ravel()
    index = np.minimum((s * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins)
    mean_score = np.bincount(index, weights=s, minlength=bins)
    mean_hit = np.bincount(index, weights=h, minlength=bins)
    used = count > 0
    gap = np.abs(mean_score[used] - mean_hit[used])  # sums; divided by each bin's size below
    return float(gap.sum() / len(s))


def top_label(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each text's highest score and whether its gold labels include that label."""
    best = scores.argmax(axis=1)
    rows = np.arange(len(scores))
    return scores[rows, best], targets[rows, best]


def logits_of(scores: np.ndarray) -> np.ndarray:
    """The logits behind sigmoid scores (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Sigmoid scores of logits, by the one definition training, export and the gateway share."""
    return to_scores(z, ProblemType.MULTI_LABEL)


def bce(scores: np.ndarray, targets: np.ndarray) -> float:
    p = np.clip(scores, 1e-12, 1 - 1e-12)
    return float(-(targets * np.log(p) + (1 - targets) * np.log1p(-p)).mean())


def fit_temperature(dev_scores: np.ndarray, dev_targets: np.ndarray) -> float:
    """The temperature, on a 0.01 grid from 0.25 to 4, with the lowest dev cross-entropy."""
    z = logits_of(dev_scores)
    losses = [bce(sigmoid(z / t), dev_targets) for t in _GRID]
    return float(_GRID[int(np.argmin(losses))])


def calibration_report(
    dev_scores: np.ndarray, dev_targets: np.ndarray, test_scores: np.ndarray, test_targets: np.ndarray
) -> dict:
    """Test ECE (pooled and top label) of the served scores and after a dev-fitted temperature."""
    temperature = fit_temperature(dev_scores, dev_targets)
    scaled = sigmoid(logits_of(test_scores) / temperature)

    def ece(scores: np.ndarray) -> dict:
        best, hit = top_label(scores, test_targets)
        return {
            "pooled": expected_calibration_error(scores, test_targets),
            "top_label": expected_calibration_error(best, hit),
            # Their difference says which way the top label errs (above 0: overconfident).
            "top_label_mean_score": float(best.mean()),
            "top_label_right": float(hit.mean()),
            "bce": bce(scores, test_targets),
        }

    return {
        "bins": BINS,
        "temperature": temperature,
        "served": ece(test_scores),
        "with_temperature": ece(scaled),
    }
