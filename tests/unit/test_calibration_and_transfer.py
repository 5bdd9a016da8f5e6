"""Calibration error, the dev-fitted temperature, the MELD transfer rules and the weight average."""

import numpy as np
import pytest
import torch

from emotionaware.artifact import ProblemType
from emotionaware.taxonomy import EKMAN_LABELS, GOEMOTIONS_LABELS
from gateway.types import View
from gateway.views import project, views_for
from train.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    logits_of,
    sigmoid,
    top_label,
)
from train.transfer import ekman_scores, with_margin

pytestmark = pytest.mark.unit


def test_ece_is_zero_for_calibrated_bins_and_the_gap_otherwise():
    # Scores of 0.25 where a quarter are hits, 0.75 where three quarters are: calibrated.
    scores = np.array([0.25] * 4 + [0.75] * 4)
    hits = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(scores, hits) == pytest.approx(0.0)
    # Always 0.9 but right half the time: off by 0.4.
    assert expected_calibration_error(np.full(10, 0.9), np.arange(10) % 2) == pytest.approx(0.4)
    # A score of exactly 1.0 falls in the last bin, not past it.
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1, 1])) == pytest.approx(0.0)


def test_the_fitted_temperature_undoes_overconfident_logits():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2.5, size=(4000, 5))
    targets = (rng.random(z.shape) < sigmoid(z)).astype(float)  # the truth: sigmoid(z)
    overconfident = sigmoid(2 * z)  # a model whose logits are twice too large
    assert fit_temperature(overconfident, targets) == pytest.approx(2.0, abs=0.1)
    report = calibration_report(overconfident, targets, overconfident, targets)
    assert report["with_temperature"]["top_label"] < report["served"]["top_label"]
    assert report["with_temperature"]["bce"] < report["served"]["bce"]
    np.testing.assert_allclose(logits_of(sigmoid(z)), z, atol=1e-6)


def test_top_label_is_each_texts_highest_score():
    scores = np.array([[0.1, 0.8, 0.3], [0.6, 0.2, 0.1]])
    targets = np.array([[0, 1, 0], [0, 0, 1]])
    best, hit = top_label(scores, targets)
    assert best.tolist() == [0.8, 0.6] and hit.tolist() == [1, 0]


def test_ekman_scores_are_the_served_ekman_view():
    rng = np.random.default_rng(1)
    scores = rng.random((20, len(GOEMOTIONS_LABELS)))
    view = views_for(GOEMOTIONS_LABELS)[View.EKMAN]
    assert set(view.labels) == set(EKMAN_LABELS)
    served = np.stack([project(view, row, row > 0.5, ProblemType.MULTI_LABEL)[0] for row in scores])
    in_meld_order = served[:, [view.labels.index(label) for label in EKMAN_LABELS]]  # MELD's label indices
    np.testing.assert_allclose(ekman_scores(scores, GOEMOTIONS_LABELS), in_meld_order)


def test_the_neutral_margin_prefers_an_emotion_unless_neutral_wins_by_more():
    neutral, joy = EKMAN_LABELS.index("neutral"), EKMAN_LABELS.index("joy")
    coarse = np.zeros((2, len(EKMAN_LABELS)))
    coarse[0, [neutral, joy]] = 0.6, 0.5  # neutral ahead by 0.1
    coarse[1, [neutral, joy]] = 0.9, 0.3  # neutral ahead by 0.6
    assert with_margin(coarse, 0.0).tolist() == [neutral, neutral]  # no margin: the top label
    assert with_margin(coarse, 0.2).tolist() == [joy, neutral]
    assert with_margin(coarse, -0.2).tolist() == [neutral, neutral]


def test_the_weight_average_moves_trained_weights_only():
    from train.fitting import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[0].weight.requires_grad_(False)  # frozen, like the word embeddings
    average = WeightAverage(model, decay=0.75)
    before = [p.detach().clone() for p in average.model().parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    average.update()
    after = list(average.model().parameters())
    assert torch.equal(after[0], before[0])  # frozen: never averaged (it never moves anyway)
    for old, new in zip(before[1:], after[1:], strict=True):
        torch.testing.assert_close(new, old + 0.25)  # 0.75 * old + 0.25 * (old + 1)
    with pytest.raises(SystemExit, match="ema_decay"):
        WeightAverage(model, decay=1.0)
