"""Typed results and options of the EmotionAware API (frozen dataclasses and enums; no protobuf)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, Union

import grpc

from emotionaware_client.errors import EmotionAwareError, error_for

__all__ = [
    "Aggregation",
    "Alias",
    "AliasTarget",
    "AnalyzeResult",
    "BatchItem",
    "ChunkResult",
    "ClassifyResult",
    "ConversationSummary",
    "Flag",
    "ItemError",
    "LabelInfo",
    "LabelScore",
    "LabelShare",
    "LongTextMode",
    "ModelInfo",
    "Models",
    "ScoreType",
    "SentenceResult",
    "SpeakerSummary",
    "TextSpan",
    "TrafficClass",
    "Turn",
    "View",
]


class View(str, enum.Enum):
    """Label set of a response (see ``ModelInfo.views`` for those a model offers)."""

    NATIVE = "native"
    """The model's own labels."""
    GOEMOTIONS = "goemotions"
    """The 28 GoEmotions labels."""
    EKMAN = "ekman"
    """Ekman's six basic emotions and neutral."""
    SENTIMENT = "sentiment"
    """ambiguous, negative, neutral, positive."""


class LongTextMode(str, enum.Enum):
    """What happens to a text longer than the model's token limit."""

    DEFAULT = "default"
    """The model's default (``ModelInfo.default_long_text_mode``)."""
    TRUNCATE = "truncate"
    """Classify the first ``max_tokens`` tokens only."""
    CHUNK = "chunk"
    """Classify overlapping windows and aggregate (``ClassifyResult.chunks``)."""


class TrafficClass(str, enum.Enum):
    """How the server admits a call when busy."""

    DEFAULT = "default"
    """The method's class: Classify and streams interactive, ClassifyBatch bulk."""
    INTERACTIVE = "interactive"
    """Answered within the queue-time budget, before bulk work, or refused."""
    BULK = "bulk"
    """Throughput work, served in the gaps between interactive work."""


ScoreType = Literal["sigmoid", "softmax", "unspecified"]
"""How scores were computed: independent sigmoids (multi-label) or a softmax (single-label)."""

Aggregation = Literal["none", "max", "mean"]
"""How the scores of several chunks were combined (``"none"``: one chunk)."""


@dataclass(frozen=True)
class Turn:
    """An earlier message of a conversation, used as context of :meth:`EmotionClient.classify`."""

    speaker: str
    """Who said it (any non-empty string, at most 128 characters)."""
    text: str
    """What was said."""


@dataclass(frozen=True)
class LabelScore:
    """One label's score and decision."""

    label: str
    """Label name, e.g. ``"gratitude"``."""
    score: float
    """Score in [0, 1] (see :attr:`ClassifyResult.score_type`)."""
    threshold: float
    """Decision threshold applied (0 for single-label models)."""
    predicted: bool
    """Whether the label is in the predicted set."""


@dataclass(frozen=True)
class ChunkResult:
    """Classification of one window of a long text (:attr:`LongTextMode.CHUNK`)."""

    index: int
    """Position of the window, 0-based."""
    first_token: int
    """Offset of the window's first token in the text."""
    token_count: int
    """Tokens of the text in this window."""
    scores: tuple[LabelScore, ...]
    """The window's label scores."""
    predicted: tuple[str, ...]
    """Labels predicted for the window."""


@dataclass(frozen=True)
class ClassifyResult:
    """The emotions of one text."""

    scores: list[LabelScore]
    """Label scores, highest first (predicted labels, ``top_k`` best, or all)."""
    predicted: list[str]
    """Names of the predicted labels, highest score first."""
    score_type: ScoreType
    """``"sigmoid"`` (multi-label) or ``"softmax"`` (single-label)."""
    token_count: int
    """Tokens of the text, special tokens included (a lower bound if ``token_count_is_lower_bound``)."""
    truncated: bool
    """Whether part of the text was not classified."""
    max_tokens: int
    """The model's token limit per sequence."""
    model: str
    """Name of the model that answered (the real name, also through an alias)."""
    model_version: str
    """Version of the model that answered."""
    view: View = View.NATIVE
    """Label set of ``scores`` and ``predicted``."""
    chunk_count: int = 1
    """Windows classified (1 unless chunked)."""
    chunks: tuple[ChunkResult, ...] = ()
    """Per-window results when the text was chunked into more than one window."""
    aggregation: Aggregation = "none"
    """How chunk scores were combined."""
    context_turns: int = 0
    """Earlier turns the model read as context."""
    token_count_is_lower_bound: bool = False
    """Whether the text has more tokens than ``token_count``."""
    server_latency_us: int = 0
    """Time spent in the server, in microseconds."""
    intensity: float | None = None
    """How strongly the text expresses any emotion, 1 - P(neutral), in [0, 1]; None for a
    model without a ``neutral`` label."""
    flags: tuple[Flag, ...] = ()
    """Policy rules (the server's routing file) that matched the text."""
    request_id: str = ""
    """This answer's id: pass it to :meth:`EmotionClient.submit_feedback`."""

    @property
    def top(self) -> LabelScore | None:
        """The highest-scoring label returned, or None when ``scores`` is empty."""
        return self.scores[0] if self.scores else None


@dataclass(frozen=True)
class TextSpan:
    """Where a sentence sits in the analyzed text, ``[start, end)`` in three units."""

    start: int
    """First Unicode code point (``text[start:end]`` in Python)."""
    end: int
    """One past the last code point."""
    utf8_start: int
    """First UTF-8 byte (``text.encode()[utf8_start:utf8_end]``)."""
    utf8_end: int
    """One past the last UTF-8 byte."""
    utf16_start: int
    """First UTF-16 code unit (JavaScript's ``text.slice(utf16_start, utf16_end)``)."""
    utf16_end: int
    """One past the last UTF-16 code unit."""


@dataclass(frozen=True)
class Flag:
    """One match of a server policy rule: a text, a sentence or a conversation turn."""

    rule: str
    """The rule's name in the server's routing file."""
    scope: Literal["text", "sentence", "conversation", "unspecified"]
    """What it matched."""
    value: float
    """The value that met the rule's bound."""
    sentence: int | None = None
    """``"sentence"``: the sentence's index in ``AnalyzeResult.sentences``."""
    span: TextSpan | None = None
    """``"sentence"``: where the sentence is in the text."""
    turn: int | None = None
    """``"conversation"``: the turn, 0-based, in its conversation."""
    speaker: str | None = None
    """``"conversation"``: the speaker whose moving average met the bound."""


@dataclass(frozen=True)
class LabelShare:
    """One label of a conversation's emotion distribution."""

    label: str
    """A label of the model's own labels."""
    mean_score: float
    """Its mean score over the summary's turns."""
    predicted_turns: int
    """Turns in which it was predicted."""


@dataclass(frozen=True)
class SpeakerSummary:
    """How one speaker of a conversation is doing."""

    speaker: str
    """The speaker."""
    turns: int
    """The speaker's counted turns."""
    negative_average: float | None
    """Mean negative score of the speaker's last ``ConversationSummary.window`` turns."""
    trend: Literal["flat", "rising", "falling"]
    """Direction of the moving average at its last move."""
    last_change_turn: int | None
    """The turn at which the moving average last changed direction (None: never)."""


@dataclass(frozen=True)
class ConversationSummary:
    """How a conversation is going (:meth:`Conversation.send` with ``summarize``, :meth:`Conversation.end`)."""

    conversation_id: str
    """The conversation."""
    reason: Literal["requested", "ended", "evicted", "unspecified"]
    """Why the server sent it."""
    model: str
    """The model whose labels it counts."""
    turns: int
    """Messages of the conversation, answered or not."""
    answered_turns: int
    """Turns the summary counts."""
    window: int
    """Turns in each speaker's moving average."""
    labels: tuple[LabelShare, ...]
    """The emotion distribution, highest mean score first."""
    speakers: tuple[SpeakerSummary, ...]
    """Every speaker, by name."""


@dataclass(frozen=True)
class SentenceResult:
    """One sentence of :meth:`EmotionClient.analyze`: where it is and its emotions."""

    index: int
    """Position of the sentence in the text, 0-based."""
    span: TextSpan
    """Its offsets in the text as sent."""
    text: str
    """The sentence (the text sliced by ``span``)."""
    scores: tuple[LabelScore, ...]
    """Its label scores, highest first."""
    predicted: tuple[str, ...]
    """Its predicted labels, highest score first."""
    token_count: int
    """Its tokens, special tokens included."""
    truncated: bool
    """Whether part of the sentence was not classified."""
    chunk_count: int
    """Windows classified (1 unless the sentence exceeded the token limit)."""
    intensity: float | None
    """Its intensity, as :attr:`ClassifyResult.intensity`."""


@dataclass(frozen=True)
class AnalyzeResult:
    """A text by sentence, with the document aggregate (:meth:`EmotionClient.analyze`)."""

    sentences: tuple[SentenceResult, ...]
    """Every sentence, in text order."""
    scores: tuple[LabelScore, ...]
    """The document's label scores, aggregated from the sentences (see ``aggregation``)."""
    predicted: tuple[str, ...]
    """The document's predicted labels."""
    aggregation: Aggregation
    """``"max"`` (multi-label: each label's highest sentence score), ``"mean"`` (single-label:
    token-weighted mean) or ``"none"`` (one sentence)."""
    intensity: float | None
    """The document's intensity (the sentences' aggregated as their scores are)."""
    score_type: ScoreType
    """``"sigmoid"`` or ``"softmax"``."""
    view: View
    """Label set of every ``scores`` and ``predicted``."""
    model: str
    """Name of the model that answered."""
    model_version: str
    """Version of the model that answered."""
    max_tokens: int
    """The model's token limit per sequence."""
    token_count: int
    """Sum of the sentences' token counts."""
    truncated: bool
    """Whether part of some sentence was not classified."""
    server_latency_us: int = 0
    """Time spent in the server, in microseconds."""
    flags: tuple[Flag, ...] = ()
    """Policy rules that matched: the document's, then each sentence's (with its span)."""
    request_id: str = ""
    """This answer's id: pass it to :meth:`EmotionClient.submit_feedback`."""


@dataclass(frozen=True)
class ItemError:
    """Why one text of a batch could not be classified (the other texts are unaffected)."""

    index: int
    """Position of the text in the ``texts`` passed to ``classify_batch``."""
    code: grpc.StatusCode
    """gRPC status code of the failure, e.g. INVALID_ARGUMENT."""
    message: str
    """The server's message (names the field and limit)."""

    def exception(self) -> EmotionAwareError:
        """The typed exception this error corresponds to (for callers who want to raise it)."""
        return error_for(self.code, self.message)


BatchItem = Union[ClassifyResult, ItemError]  # noqa: UP007  (a runtime alias on Python 3.10)
"""One outcome of :meth:`EmotionClient.classify_batch`: a result or an :class:`ItemError`."""


@dataclass(frozen=True)
class LabelInfo:
    """One label of a model."""

    name: str
    """Label name."""
    threshold: float
    """Dev-tuned decision threshold (0 for single-label models)."""


@dataclass(frozen=True)
class ModelInfo:
    """A served model and its limits."""

    name: str
    """Model name."""
    version: str
    """The version requests are routed to."""
    versions: tuple[str, ...]
    """Every version that can be pinned."""
    aliases: tuple[str, ...]
    """Aliases routing (some of) their requests to this model."""
    labels: tuple[LabelInfo, ...]
    """The model's own labels, in model order."""
    views: tuple[View, ...]
    """Views offered besides the model's own labels."""
    score_type: ScoreType
    """How scores are computed."""
    max_tokens: int
    """Token limit per sequence."""
    context_turns: int
    """Earlier turns read as context (0: single texts)."""
    max_text_chars: int
    """Longest accepted text, in characters."""
    max_batch_texts: int
    """Most texts per ClassifyBatch call (``classify_batch`` splits larger lists)."""
    max_chunks: int
    """Most windows per text in chunk mode."""
    chunk_overlap_tokens: int
    """Tokens shared by consecutive windows."""
    dataset: str
    """Dataset the model was trained on ("" when unknown)."""
    default_long_text_mode: LongTextMode
    """What :attr:`LongTextMode.DEFAULT` means for this model."""
    max_sentences: int = 0
    """Most sentences of one :meth:`EmotionClient.analyze` text (0: a server without Analyze)."""


@dataclass(frozen=True)
class AliasTarget:
    """One destination of an alias."""

    model: str
    """Model name."""
    model_version: str
    """Version ("" means the model's routed version)."""
    weight: float
    """Share of the alias's requests sent here."""


@dataclass(frozen=True)
class Alias:
    """A second name for one model, or a weighted split across several (canary)."""

    name: str
    """The alias, e.g. ``"default"``."""
    targets: tuple[AliasTarget, ...]
    """Where requests naming the alias go."""


@dataclass(frozen=True)
class Models:
    """What the server serves (:meth:`EmotionClient.models`)."""

    models: tuple[ModelInfo, ...]
    """Every served model, sorted by name."""
    aliases: tuple[Alias, ...] = field(default=())
    """Every alias, sorted by name."""
