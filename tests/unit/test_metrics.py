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


def test_counted_macro_f1_is_scikit_learns_macro_f1():
    from train.metrics import counted_macro_f1, macro_f1

    rng = np.random.default_rng(5)
    targets = (rng.random((300, 6)) < 0.2).astype(int)
    targets[:, 5] = 0  # a label never present: 0 when predicted, 0 when not (zero_division=0)
    scores = rng.random((300, 6))
    for t in (0.05, 0.5, 0.99, 1.01):
        assert counted_macro_f1(targets, scores >= t) == pytest.approx(macro_f1(targets, scores >= t))


def test_threshold_rules_are_scored_in_sample_cross_fitted_and_on_test():
    from train.metrics import THRESHOLD_RULES, fit_threshold_rule, macro_f1, threshold_rules

    rng = np.random.default_rng(7)
    targets = (rng.random((600, 4)) < np.array([0.4, 0.2, 0.05, 0.02])).astype(int)
    scores = np.clip(0.3 * targets + rng.random((600, 4)) * 0.75, 0, 1)
    dev, test = (scores[:300], targets[:300]), (scores[300:], targets[300:])
    rules = threshold_rules(dev, test)
    assert set(rules) == set(THRESHOLD_RULES)
    served = rules["per_label"]
    # In-sample is the served dev figure: thresholds chosen and scored on the same examples.
    assert served["dev_in_sample"] == pytest.approx(
        macro_f1(dev[1], dev[0] >= fit_threshold_rule("per_label", *dev))
    )
    # Scored on examples that did not choose them, per-label thresholds lose their optimism.
    assert served["dev_cross_fitted"] < served["dev_in_sample"]
    shared = fit_threshold_rule("shared", *dev)
    assert len(set(shared.tolist())) == 1
    # Shrinkage lands between each label's own threshold and the shared one.
    own, shrunk = fit_threshold_rule("per_label", *dev), fit_threshold_rule("shrink_25", *dev)
    assert np.all((shrunk >= np.minimum(own, shared) - 1e-12) & (shrunk <= np.maximum(own, shared) + 1e-12))
    assert served["lead"] == 0.0 and served["same_thresholds"]
    assert threshold_rules(dev, test) == rules  # seeded folds: a function of the scores only


def test_the_card_changes_threshold_rule_only_for_a_clear_lead_with_other_thresholds():
    from train.card import threshold_rules_section

    def rule(lead: float, se: float, same: bool) -> dict:
        return {"dev_in_sample": 0.56, "dev_cross_fitted": 0.53 + lead, "lead": lead, "lead_se": se,
                "same_thresholds": same, "test": 0.51}  # fmt: skip

    served = rule(0.0, 0.0, True)
    clear = "\n".join(threshold_rules_section({"per_label": served, "shared": rule(0.004, 0.001, False)}))
    assert (
        "Not served yet, although ahead on cross-fitted dev macro-F1: one threshold for every label." in clear
    )
    # Within noise, or a lead that fits the served thresholds on all of dev: the served rule stays.
    for other in (rule(0.0015, 0.0009, False), rule(0.002, 0.0007, True)):
        text = "\n".join(threshold_rules_section({"per_label": served, "shrink_25": other}))
        assert "Not served yet" not in text and "No rule clears that bar" in text
