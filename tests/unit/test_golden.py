"""The golden comparison itself: it fails on a moved score or a flipped set, and excuses a
set that differs only where a score sits within the tolerance of its boundary."""

from __future__ import annotations

import pytest

from launcher.golden import TOLERANCE, Golden, GoldenText, Served, compare

LABELS = ("joy", "anger", "fear")
THRESHOLDS = (0.5, 0.3, 0.4)
TEXTS = [GoldenText("a", "one"), GoldenText("b", "two", (("x", "earlier"),), "y")]


def served(scores, predicted, thresholds=THRESHOLDS):
    return Served(tuple(scores), tuple(thresholds), frozenset(predicted))


def golden(rows, score_type="sigmoid"):
    return Golden("m", "w", LABELS, score_type, "cpu", tuple(t.id for t in TEXTS),
                  tuple(t.digest for t in TEXTS), tuple(rows))  # fmt: skip


REFERENCE = [served((0.9, 0.1, 0.2), {"joy"}), served((0.2, 0.31, 0.4 + TOLERANCE / 2), {"anger", "fear"})]


def test_the_same_answers_pass():
    result = compare(golden(REFERENCE), TEXTS, REFERENCE)
    assert result.ok and result.max_diff == 0 and not result.at_boundary


def test_a_moved_score_fails_and_names_its_text():
    moved = [REFERENCE[0], served((0.2, 0.31 + 3 * TOLERANCE, 0.4 + TOLERANCE / 2), {"anger", "fear"})]
    result = compare(golden(REFERENCE), TEXTS, moved)
    assert not result.ok and result.worst == "b" and result.max_diff == pytest.approx(3 * TOLERANCE)


def test_a_flipped_set_away_from_its_boundary_fails():
    flipped = [served((0.9, 0.1, 0.2), {"joy", "fear"}), REFERENCE[1]]
    result = compare(golden(REFERENCE), TEXTS, flipped)
    assert not result.ok and result.flipped == ("a",)


def test_a_set_that_differs_at_the_boundary_is_reported_not_failed():
    edge = [REFERENCE[0], served((0.2, 0.31, 0.4 - TOLERANCE / 2), {"anger"})]
    result = compare(golden(REFERENCE), TEXTS, edge)
    assert result.ok and result.at_boundary == ("b",) and not result.flipped


def test_single_label_sets_may_differ_only_on_a_tie():
    reference = [
        served((0.5, 0.3, 0.2), {"joy"}, (0, 0, 0)),
        served((0.4, 0.4 + TOLERANCE, 0.2), {"anger"}, (0, 0, 0)),
    ]
    other = [
        served((0.5, 0.3, 0.2), {"anger"}, (0, 0, 0)),
        served((0.4 + TOLERANCE, 0.4, 0.2), {"joy"}, (0, 0, 0)),
    ]
    result = compare(golden(reference, "softmax"), TEXTS, other)
    assert result.flipped == ("a",) and result.at_boundary == ("b",)


def test_changed_texts_are_refused_not_compared():
    changed = [TEXTS[0], GoldenText("b", "two, edited")]
    with pytest.raises(ValueError, match="golden texts changed"):
        compare(golden(REFERENCE), changed, REFERENCE)
