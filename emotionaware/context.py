"""Conversation context as the conversation model sees it, shared by training and serving.

The conversation model reads two segments: the utterance to classify, then the previous
turns of its conversation, most recent first. Each previous turn is tagged relative to the
current speaker (``same:`` or ``other:``), not by name, so the model learns who is talking
to whom without learning the names of the training set's characters. Most-recent-first
means that when the pair is cut to the token limit (longest segment first), the oldest
turns go first. Training and the gateway both build the context with :func:`format_context`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from emotionaware.text import normalize

TURN_SEPARATOR = " | "


@dataclass(frozen=True)
class Turn:
    """One earlier message of a conversation."""

    speaker: str
    text: str


def format_context(previous: Sequence[Turn], speaker: str, max_turns: int) -> str:
    """The context segment for an utterance by ``speaker``: up to ``max_turns`` turns, newest first.

    Returns an empty string when there is no previous turn (the model then sees the utterance
    alone, as it did for the first turn of every training dialogue).
    """
    if max_turns <= 0:
        return ""
    recent = list(previous)[-max_turns:]
    tagged = [
        f"{'same' if turn.speaker == speaker else 'other'}: {normalize(turn.text)}"
        for turn in reversed(recent)
    ]
    return TURN_SEPARATOR.join(t for t in tagged if not t.endswith(": "))
