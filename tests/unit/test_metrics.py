import numpy as np
import pytest

from train.metrics import multilabel_report, tune_thresholds


def test_threshold_tuning_finds_the_separating_cut():
    probs = np.array([[0.9, 0.1], [0.7, 0.2], [0.3, 0.8], [0.2, 0.6]])
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    thresholds = tune_thresholds(probs, targets)
    assert 0.3 < thresholds[0] <= 0.7
    assert 0.2 < thresholds[1] <= 0.6
    report = multilabel_report(probs, targets, thresholds, ["x", "y"])
    assert report["macro_f1"] == pytest.approx(1.0)


def test_label_without_positives_keeps_default_threshold():
    probs = np.array([[0.9, 0.1], [0.1, 0.2]])
    targets = np.array([[1, 0], [0, 0]])
    assert tune_thresholds(probs, targets)[1] == 0.5


def test_a_label_whose_positives_all_score_under_the_floor_keeps_the_default():
    # Label 1's positives score 0.001 to 0.01: the best cut is under the 0.02 floor, and at the
    # floor nothing fires, so dev supports no threshold at all.
    probs = np.array([[0.9, 0.010], [0.8, 0.001], [0.1, 0.005], [0.2, 0.0001]])
    targets = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])
    thresholds = tune_thresholds(probs, targets, floor=0.02)
    assert thresholds[1] == 0.5 and 0.2 < thresholds[0] <= 0.8
    # A positive over the floor is evidence: its cut is used.
    probs[0, 1] = 0.3
    assert 0.02 <= tune_thresholds(probs, targets, floor=0.02)[1] <= 0.3


def test_views_are_reported_by_projection():
    labels = ["joy", "love", "anger"]
    probs = np.array([[0.9, 0.1, 0.1], [0.1, 0.1, 0.9]])
    targets = np.array([[0, 1, 0], [0, 0, 1]])  # fine labels wrong in row 0, coarse right
    report = multilabel_report(
        probs, targets, np.full(3, 0.5), labels, {"coarse": {"pos": ("joy", "love"), "neg": ("anger",)}}
    )
    assert report["views"]["coarse"]["macro_f1"] == pytest.approx(1.0)
    assert report["macro_f1"] < 1.0


def test_view_rules_report_the_served_view_and_one_with_its_own_dev_thresholds():
    from train.metrics import multilabel_report, view_decision_rules

    rng = np.random.default_rng(3)
    labels = ("a", "b", "c")
    views = {"coarse": {"ab": ["a", "b"], "c": ["c"]}}
    targets = (rng.random((400, 3)) < 0.3).astype(int)
    scores = np.clip(0.35 * targets + rng.random((400, 3)) * 0.7, 0, 1)
    dev, test = (scores[:200], targets[:200]), (scores[200:], targets[200:])
    thresholds = np.array([0.6, 0.5, 0.4])
    rules = view_decision_rules(dev, test, thresholds, labels, views)["coarse"]
    # The served rule is the one multilabel_report's views use.
    served_test = multilabel_report(test[0], test[1], thresholds, labels, views)["views"]["coarse"][
        "macro_f1"
    ]
    assert rules["served"]["test"] == pytest.approx(served_test)
    assert set(rules["own_thresholds"]["thresholds"]) == {"ab", "c"}
    # Here (as on GoEmotions) the own thresholds do better on dev, where they were tuned.
    assert rules["own_thresholds"]["dev"] >= rules["served"]["dev"] - 1e-9
