"""gateway.policies and gateway.summaries: rule evaluation, every validation error, summaries."""

from __future__ import annotations

import numpy as np
import pytest

from emotionaware.artifact import ProblemType
from emotionaware.sentences import Span
from emotionaware.taxonomy import EKMAN_LABELS, GOEMOTIONS_LABELS
from gateway.policies import negative_score, parse_policies
from gateway.specs import ModelSpec
from gateway.summaries import Reason, SummaryBook, Trend
from gateway.types import ClassifyResult, Scored

pytestmark = pytest.mark.unit

GO = ModelSpec("goemotions", "1", tuple(GOEMOTIONS_LABELS), ProblemType.MULTI_LABEL,
               np.full(28, 0.5, dtype=np.float32), 128, None)  # fmt: skip
CONV = ModelSpec("conversation", "1", tuple(EKMAN_LABELS), ProblemType.SINGLE_LABEL,
                 np.zeros(7, dtype=np.float32), 128, None, context_turns=8)  # fmt: skip
POEMS = ModelSpec(
    "poems", "1", ("love", "sad", "joy"), ProblemType.SINGLE_LABEL, np.zeros(3, dtype=np.float32), 128, None
)
SERVED = {"goemotions": GO, "conversation": CONV, "poems": POEMS}


def go_scores(**named: float) -> np.ndarray:
    scores = np.full(28, 0.01)
    for label, value in named.items():
        scores[GOEMOTIONS_LABELS.index(label)] = value
    return scores


def conv_scores(**named: float) -> np.ndarray:
    scores = np.array([named.get(label, 0.0) for label in EKMAN_LABELS])
    scores[EKMAN_LABELS.index("neutral")] += 1.0 - scores.sum()
    return scores


# -- label rules ---------------------------------------------------------------------------------


def test_a_label_rule_sums_its_labels_and_compares():
    policies = parse_policies(
        {"abuse": {"when": "anger + disgust >= 0.8", "scope": ["text", "sentence"]}}, SERVED
    )
    (rule,) = policies.label_rules
    assert rule.applies(GO) and rule.applies(CONV) and not rule.applies(POEMS)
    flags = policies.flags(GO, go_scores(anger=0.5, disgust=0.35), 0.9)
    assert [(f.rule, f.scope) for f in flags] == [("abuse", "text")] and flags[0].value == pytest.approx(0.85)
    assert policies.flags(GO, go_scores(anger=0.5, disgust=0.29), 0.9) == ()
    span = Span(4, 9, 4, 9, 4, 9)
    (sentence,) = policies.flags(GO, go_scores(anger=0.9), 0.9, "sentence", 2, span)
    assert (sentence.scope, sentence.sentence, sentence.span) == ("sentence", 2, span)


def test_views_intensity_scopes_and_models_select_what_a_rule_reads():
    policies = parse_policies(
        {
            "negative": {"when": "negative > 0.7", "view": "sentiment", "models": ["conversation"]},
            "calm": {"when": "intensity < 0.2", "scope": "sentence"},
        },
        SERVED,
    )
    negative, calm = policies.label_rules
    # The sentiment view of a softmax model sums its members: anger 0.4 + sadness 0.35.
    assert [f.rule for f in policies.flags(CONV, conv_scores(anger=0.4, sadness=0.35), 0.75)] == ["negative"]
    assert not negative.applies(GO)  # models = ["conversation"]
    assert policies.flags(GO, go_scores(neutral=0.95), 0.05) == ()  # calm is a sentence rule
    assert [f.rule for f in policies.flags(GO, go_scores(neutral=0.95), 0.05, "sentence", 0)] == ["calm"]
    assert not calm.applies(POEMS)  # no neutral label: no intensity


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "policies: must be a table of rules"),
        ({"x": 3}, "policies.x: must be a table"),
        (
            {"x": {"when": "anger >= 0.8", "colour": "red"}},
            "policies.x: unknown keys ['colour'] for a label rule",
        ),
        ({"x": {}}, "policies.x.when: must read like 'anger + disgust >= 0.8'"),
        ({"x": {"when": "anger => 0.8"}}, "policies.x.when: must read like"),
        ({"x": {"when": "anger >= lots"}}, "policies.x.when: must read like"),
        ({"x": {"when": "anger >= 1e999"}}, "policies.x.when: the bound must be a finite number"),
        ({"x": {"when": "anger + anger >= 0.8"}}, "policies.x.when: a label is named twice"),
        ({"x": {"when": "anger >= 0.8", "view": "plutchik"}}, "policies.x.view: 'plutchik' is not a view"),
        (
            {"x": {"when": "anger >= 0.8", "scope": "paragraph"}},
            "policies.x.scope: must be one or more of text, sentence",
        ),
        ({"x": {"when": "intensity + anger >= 0.8"}}, "policies.x.when: intensity is compared alone"),
        (
            {"x": {"when": "anger >= 0.8", "models": "goemotions"}},
            "policies.x.models: must be a non-empty list",
        ),
        ({"x": {"when": "anger >= 0.8", "models": ["gpt"]}}, "policies.x.models: gpt not served"),
        (
            {"x": {"when": "rage >= 0.8"}},
            "policies.x.when: no served model has the labels rage in view native",
        ),
        (
            {"x": {"when": "grief >= 0.8", "models": ["conversation"]}},
            "policies.x.when: model conversation has no grief in view native; labels: anger, disgust",
        ),
        (
            {"x": {"when": "anger >= 0.8", "view": "goemotions", "models": ["conversation"]}},
            "policies.x.when: model conversation has no anger in view goemotions; labels: none",
        ),
        (
            {"x": {"when": "negative_average >= 0.6", "scope": "text"}},
            "policies.x: unknown keys ['scope'] for a conversation rule",
        ),
        (
            {"x": {"when": "negative_average >= 0.6", "turns": 0}},
            "policies.x.turns: must be a whole number from 1 to 1000",
        ),
        (
            {"x": {"when": "negative_average >= 0.6", "turns": 2.5}},
            "policies.x.turns: must be a whole number",
        ),
        ({"x": {"when": "negative_average >= 0.6", "speaker": 7}}, "policies.x.speaker: must be a string"),
        (
            {"x": {"when": "negative_average + anger >= 0.6"}},
            "policies.x.when: a conversation rule compares negative_average",
        ),
        (
            {"x": {"when": "negative_average >= 0.6", "models": ["poems"]}},
            "policies.x.models: model poems has no sentiment view",
        ),
    ],
)
def test_every_validation_error_names_the_rule_and_the_key(raw, message):
    with pytest.raises(ValueError) as caught:
        parse_policies(raw, SERVED)
    assert str(caught.value).startswith(message), caught.value


# -- summaries and conversation rules ------------------------------------------------------------


def result(spec: ModelSpec, native: np.ndarray) -> ClassifyResult:
    return ClassifyResult(Scored((), ()), spec.problem_type, 5, False, 128, spec.name, "1", native=native)


def test_negative_score_is_the_sentiment_views():
    assert negative_score(CONV, conv_scores(anger=0.3, fear=0.2)) == pytest.approx(0.5)  # a sum (softmax)
    assert negative_score(GO, go_scores(anger=0.3, grief=0.6)) == pytest.approx(0.6)  # a max (sigmoid)
    assert negative_score(POEMS, np.array([0.2, 0.5, 0.3])) is None


def test_a_conversation_rule_flags_the_turn_its_condition_has_held_for_n_turns_once():
    policies = parse_policies(
        {"escalate": {"when": "negative_average >= 0.6", "turns": 3, "speaker": "customer"}}, SERVED
    )
    book = SummaryBook(window=2)
    # The customer's negative scores; the agent's turns in between never count for the rule.
    script = [0.2, 0.9, 0.8, 0.7, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9]
    fired = []
    for i, negative in enumerate(script):
        turn, flags = book.record("c1", "customer", result(CONV, conv_scores(anger=negative)), CONV, policies)
        fired += [(f.turn, f.speaker, round(f.value, 3)) for f in flags]
        assert turn == 2 * i
        book.record("c1", "agent", result(CONV, conv_scores(anger=0.95)), CONV, policies)
    # Moving averages (last 2): 0.2, 0.55, 0.85, 0.75, 0.8 -> >= 0.6 from the 3rd turn: held 3
    # turns at the 5th (conversation turn 8); it breaks at 0.5 and 0.1, then holds again from
    # the 9th and has held 3 turns at the 11th (conversation turn 20).
    assert fired == [(8, "customer", 0.8), (20, "customer", 0.9)]


def test_a_summary_counts_labels_speakers_trend_and_the_last_change_of_direction():
    book = SummaryBook(window=3)
    for speaker, anger in [("ann", 0.1), ("bob", 0.6), ("ann", 0.5), ("ann", 0.9), ("ann", 0.0)]:
        book.record("c", speaker, result(CONV, conv_scores(anger=anger)), CONV, parse_policies(None, SERVED))
    book.record("c", "ann", None, None, parse_policies(None, SERVED))  # a failed turn still counts as a turn
    summary = book.summary("c", Reason.REQUESTED)
    assert (summary.turns, summary.answered, summary.model, summary.window) == (6, 5, "conversation", 3)
    shares = {s.label: s for s in summary.labels}
    assert shares["anger"].mean_score == pytest.approx(0.42) and shares["anger"].predicted_turns == 3
    assert sum(s.mean_score for s in summary.labels) == pytest.approx(1.0)
    ann, bob = summary.speakers
    assert (ann.speaker, ann.turns, bob.turns) == ("ann", 4, 1)
    # ann's averages: 0.1, 0.3, 0.5, then 0.467: rising until turn 4 (0-based), where it fell.
    assert ann.negative_average == pytest.approx((0.5 + 0.9 + 0.0) / 3)
    assert ann.trend is Trend.FALLING and ann.last_change_turn == 4
    assert bob.trend is Trend.FLAT and bob.last_change_turn is None
    book.drop("c")
    assert book.summary("c", Reason.ENDED).turns == 0


def test_the_documented_examples_are_valid_rules():
    import re
    import tomllib
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    section = doc[doc.index("## Policies") : doc.index("## Errors")]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for block in blocks:
        policies = parse_policies(tomllib.loads(block)["policies"], SERVED)
        assert policies.label_rules or policies.conversation_rules


def test_a_summary_tracks_at_most_64_speakers():
    from gateway.summaries import MAX_SPEAKERS

    book = SummaryBook(window=3)
    none = parse_policies(None, SERVED)
    for i in range(MAX_SPEAKERS + 36):
        book.record("c", f"speaker-{i}", result(CONV, conv_scores(anger=0.5)), CONV, none)
    summary = book.summary("c", Reason.REQUESTED)
    assert len(summary.speakers) == MAX_SPEAKERS and summary.answered == MAX_SPEAKERS + 36
