"""Typed domain objects passed between the gateway's stages (no protobuf past the servicer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.context import Turn
from emotionaware.sentences import Span


class View(StrEnum):
    """Label set of a response; NATIVE is the model's own labels."""

    NATIVE = "native"
    GOEMOTIONS = "goemotions"
    EKMAN = "ekman"
    SENTIMENT = "sentiment"


class LongTextMode(StrEnum):
    TRUNCATE = "truncate"
    CHUNK = "chunk"


class TrafficClass(StrEnum):
    """How admission treats a call (proto TrafficClass).

    INTERACTIVE calls keep the queue-time budget and go first; BULK calls are admitted by their
    own deadline and the bulk queue bound, and are served in the gaps.
    """

    INTERACTIVE = "interactive"
    BULK = "bulk"


@dataclass(frozen=True)
class ClassifyOptions:
    """Per-request options, validated at the API boundary (see the proto for semantics)."""

    model_version: str = ""
    view: View = View.NATIVE
    top_k: int = 0  # 0: no limit
    threshold: float | None = None  # one threshold for every label (multi-label models)
    return_all_scores: bool = False
    long_text: LongTextMode | None = None  # None: the model's default (ModelSpec.long_text_mode)
    traffic_class: TrafficClass | None = None  # None: the method's (Classify interactive, ClassifyBatch bulk)


@dataclass(frozen=True)
class ClassifyInput:
    """One text to classify, with its model, options and optional conversation context."""

    text: str
    model: str = ""  # name or alias; empty: the "default" alias
    options: ClassifyOptions = field(default_factory=ClassifyOptions)
    context: tuple[Turn, ...] = ()  # earlier turns, oldest first
    speaker: str = ""


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float
    threshold: float
    predicted: bool


@dataclass(frozen=True)
class Scored:
    """Labels of one sequence (or of an aggregated text): the selected scores and predicted set."""

    scores: tuple[LabelScore, ...]
    predicted: tuple[str, ...]


@dataclass(frozen=True)
class Flag:
    """A policy rule that matched (gateway.policies), and where: a text, a sentence (its index
    and span) or a conversation turn (its position in the conversation and the speaker)."""

    rule: str
    scope: str  # "text", "sentence" or "conversation"
    value: float  # the value that met the bound
    sentence: int | None = None
    span: Span | None = None
    turn: int | None = None
    speaker: str | None = None


@dataclass(frozen=True)
class ChunkResult:
    index: int
    first_token: int
    token_count: int
    scored: Scored


@dataclass(frozen=True)
class ClassifyResult:
    """A classified text: selected label scores (highest first) and the predicted set."""

    scored: Scored
    problem_type: ProblemType
    token_count: int
    truncated: bool
    max_tokens: int
    model: str
    model_version: str
    view: View = View.NATIVE
    chunks: tuple[ChunkResult, ...] = ()  # chunk mode with more than one window
    chunk_count: int = 1
    context_turns: int = 0
    token_count_exact: bool = True  # False: only a prefix was tokenized, token_count is a lower bound
    intensity: float | None = None  # 1 - P(neutral) (emotionaware.scores.intensity); None without neutral
    flags: tuple[Flag, ...] = ()  # policy rules that matched the text
    # Scores over the model's own labels, before any view (conversation summaries read them).
    native: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class AnalyzeInput:
    """One text to split into sentences, each classified, with a document aggregate."""

    text: str
    model: str = ""
    options: ClassifyOptions = field(default_factory=ClassifyOptions)


@dataclass(frozen=True)
class SentenceResult:
    """One sentence of an analyzed text: where it is, and its classification."""

    index: int
    text: str
    span: Span
    result: ClassifyResult


@dataclass(frozen=True)
class AnalyzeResult:
    """An analyzed text: its sentences and the document aggregate of their scores.

    ``document`` holds the aggregated scores and decisions (its token_count is the sum of the
    sentences', its chunk fields are empty); ``aggregated`` is False for a one-sentence text.
    """

    sentences: tuple[SentenceResult, ...]
    document: ClassifyResult
    aggregated: bool
