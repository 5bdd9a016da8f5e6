"""Running summaries of a stream's conversations, and the conversation rules they feed.

For each conversation of one ClassifyStream the gateway keeps, from the turns answered so far
(in the order the messages arrived): the mean score and the predicted count of each of the
model's own labels, and per speaker the negative moving average, the mean ``negative`` score
(sentiment view) of the speaker's last ``window`` turns, with its direction and the turn at
which it last changed direction. Conversation rules (gateway.policies) are evaluated on the
moving average after each turn. Turns are numbered from 0 in their conversation; every message
added to the conversation's context counts, answered or not.
"""

from __future__ import annotations

import operator
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from emotionaware.artifact import ProblemType
from gateway.metrics import POLICY_MATCHES
from gateway.policies import OPERATORS, Policies, negative_score
from gateway.specs import ModelSpec
from gateway.types import ClassifyResult, Flag

# A moving average that moves less than this has not changed direction (float noise).
_STILL = 1e-6
# Speakers summarized per conversation: a conversation's memory stays bounded whatever the
# client names its speakers; later new speakers' turns count in the distribution only.
MAX_SPEAKERS = 64


class Reason(StrEnum):
    """Why a summary was sent (proto SummaryReason)."""

    REQUESTED = "requested"
    ENDED = "ended"
    EVICTED = "evicted"


class Trend(StrEnum):
    """The direction of a speaker's negative moving average at its last move."""

    FLAT = "flat"  # it has not moved yet
    RISING = "rising"
    FALLING = "falling"


@dataclass(frozen=True)
class LabelShare:
    label: str
    mean_score: float
    predicted_turns: int


@dataclass(frozen=True)
class SpeakerSummary:
    speaker: str
    turns: int  # the speaker's answered turns
    negative_average: float | None  # None: the model has no sentiment view
    trend: Trend
    last_change_turn: int | None


@dataclass(frozen=True)
class Summary:
    conversation_id: str
    reason: Reason
    model: str  # the model of the conversation's first answered turn; others are not counted
    turns: int  # messages of the conversation (its context), answered or not
    answered: int  # turns the summary counts
    window: int
    labels: tuple[LabelShare, ...]
    speakers: tuple[SpeakerSummary, ...]


@dataclass
class _Speaker:
    negatives: deque[float]
    turns: int = 0
    average: float | None = None
    direction: int = 0
    last_change_turn: int | None = None
    streaks: dict[str, int] = field(default_factory=dict)  # rule -> turns in a row it held


@dataclass
class _Conversation:
    turns: int = 0
    answered: int = 0
    spec: ModelSpec | None = None
    sums: np.ndarray | None = None
    predicted: np.ndarray | None = None
    speakers: dict[str, _Speaker] = field(default_factory=dict)


class SummaryBook:
    """The summaries of one stream's conversations (lives and dies with the stream)."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._conversations: dict[str, _Conversation] = {}

    def record(
        self,
        conversation_id: str,
        speaker: str,
        result: ClassifyResult | None,
        spec: ModelSpec | None,
        policies: Policies,
    ) -> tuple[int, tuple[Flag, ...]]:
        """Count one message of the conversation (``result`` None: not answered); its turn and
        the conversation rules it made match."""
        conversation = self._conversations.setdefault(conversation_id, _Conversation())
        turn = conversation.turns
        conversation.turns += 1
        if result is None or result.native is None or spec is None:
            return turn, ()
        if conversation.spec is None:
            conversation.spec = spec
            conversation.sums = np.zeros(len(spec.labels))
            conversation.predicted = np.zeros(len(spec.labels), dtype=int)
        if spec.name != conversation.spec.name or spec.labels != conversation.spec.labels:
            return turn, ()  # another model's labels: not part of this summary
        assert conversation.sums is not None and conversation.predicted is not None
        conversation.answered += 1
        conversation.sums += result.native
        decided = _native_predicted(spec, result.native)
        conversation.predicted += decided
        person = conversation.speakers.get(speaker)
        if person is None:
            if len(conversation.speakers) >= MAX_SPEAKERS:
                return turn, ()
            person = conversation.speakers[speaker] = _Speaker(deque(maxlen=self.window))
        person.turns += 1
        negative = negative_score(spec, result.native)
        if negative is None:
            return turn, ()
        person.negatives.append(negative)
        average = float(np.mean(person.negatives))
        if person.average is not None:
            step = average - person.average
            direction = 1 if step > _STILL else -1 if step < -_STILL else 0
            if direction:
                if person.direction and direction != person.direction:
                    person.last_change_turn = turn
                person.direction = direction
        person.average = average
        return turn, self._rules(policies, spec, speaker, person, turn)

    def _rules(
        self, policies: Policies, spec: ModelSpec, speaker: str, person: _Speaker, turn: int
    ) -> tuple[Flag, ...]:
        flags = []
        assert person.average is not None
        for rule in policies.conversation_rules:
            if (rule.models is not None and spec.name not in rule.models) or rule.speaker not in (
                "",
                speaker,
            ):
                continue
            if OPERATORS[rule.op](person.average, rule.bound):
                person.streaks[rule.name] = person.streaks.get(rule.name, 0) + 1
                if person.streaks[rule.name] == rule.turns:
                    flags.append(Flag(rule.name, "conversation", person.average, turn=turn, speaker=speaker))
                    POLICY_MATCHES.labels(rule.name, "conversation").inc()
            else:
                person.streaks[rule.name] = 0
        return tuple(flags)

    def summary(self, conversation_id: str, reason: Reason) -> Summary:
        """The conversation's summary now (an empty one for a conversation never seen)."""
        c = self._conversations.get(conversation_id) or _Conversation()
        labels: tuple[LabelShare, ...] = ()
        if c.spec is not None and c.answered:
            assert c.sums is not None and c.predicted is not None
            means = c.sums / c.answered
            order = np.argsort(-means, kind="stable")
            labels = tuple(LabelShare(c.spec.labels[i], float(means[i]), int(c.predicted[i])) for i in order)
        speakers = tuple(
            SpeakerSummary(
                name,
                s.turns,
                s.average,
                Trend.RISING if s.direction > 0 else Trend.FALLING if s.direction < 0 else Trend.FLAT,
                s.last_change_turn,
            )
            for name, s in sorted(c.speakers.items(), key=operator.itemgetter(0))
        )
        model = c.spec.name if c.spec is not None else ""
        return Summary(conversation_id, reason, model, c.turns, c.answered, self.window, labels, speakers)

    def drop(self, conversation_id: str) -> None:
        self._conversations.pop(conversation_id, None)


def _native_predicted(spec: ModelSpec, native: np.ndarray) -> np.ndarray:
    """The model's own decision per label: its dev-tuned thresholds (sigmoid) or the top label."""
    if spec.problem_type is ProblemType.MULTI_LABEL:
        return (native >= spec.thresholds).astype(int)
    out = np.zeros(len(native), dtype=int)
    out[int(np.argmax(native))] = 1
    return out
