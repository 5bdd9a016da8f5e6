"""Protobuf <-> public types (internal: the public API never exposes protobuf objects)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc

from emotionaware_client._proto import emotion_pb2 as pb
from emotionaware_client.errors import EmotionAwareError, error_for
from emotionaware_client.types import (
    Aggregation,
    Alias,
    AliasTarget,
    AnalyzeResult,
    BatchItem,
    ChunkResult,
    ClassifyResult,
    ConversationSummary,
    Flag,
    ItemError,
    LabelInfo,
    LabelScore,
    LabelShare,
    LongTextMode,
    ModelInfo,
    Models,
    ScoreType,
    SentenceResult,
    SpeakerSummary,
    TextSpan,
    TrafficClass,
    Turn,
    View,
)

_VIEWS = {
    View.NATIVE: pb.VIEW_UNSPECIFIED,
    View.GOEMOTIONS: pb.VIEW_GOEMOTIONS,
    View.EKMAN: pb.VIEW_EKMAN,
    View.SENTIMENT: pb.VIEW_SENTIMENT,
}
_VIEWS_BACK = {number: view for view, number in _VIEWS.items()}
_LONG = {
    LongTextMode.DEFAULT: pb.LONG_TEXT_MODE_UNSPECIFIED,
    LongTextMode.TRUNCATE: pb.LONG_TEXT_MODE_TRUNCATE,
    LongTextMode.CHUNK: pb.LONG_TEXT_MODE_CHUNK,
}
_LONG_BACK = {number: mode for mode, number in _LONG.items()}
_TRAFFIC = {
    TrafficClass.DEFAULT: pb.TRAFFIC_CLASS_UNSPECIFIED,
    TrafficClass.INTERACTIVE: pb.TRAFFIC_CLASS_INTERACTIVE,
    TrafficClass.BULK: pb.TRAFFIC_CLASS_BULK,
}
_SCORE_TYPES: dict[int, ScoreType] = {pb.SCORE_TYPE_SIGMOID: "sigmoid", pb.SCORE_TYPE_SOFTMAX: "softmax"}
_AGGREGATIONS: dict[int, Aggregation] = {pb.AGGREGATION_MAX: "max", pb.AGGREGATION_MEAN: "mean"}


def options(
    *,
    model_version: str = "",
    view: View | str = View.NATIVE,
    top_k: int = 0,
    threshold: float | None = None,
    return_all_scores: bool = False,
    long_text: LongTextMode | str = LongTextMode.DEFAULT,
    traffic_class: TrafficClass | str = TrafficClass.DEFAULT,
) -> pb.ClassifyOptions:
    """ClassifyOptions from keyword arguments (strings are accepted for the enums)."""
    result = pb.ClassifyOptions(
        model_version=model_version,
        view=_VIEWS[View(view)],
        top_k=top_k,
        return_all_scores=return_all_scores,
        long_text_mode=_LONG[LongTextMode(long_text)],
        traffic_class=_TRAFFIC[TrafficClass(traffic_class)],
    )
    if threshold is not None:
        result.threshold = threshold
    return result


def turns(context: Iterable[Turn | tuple[str, str]]) -> list[pb.Turn]:
    """Context turns from :class:`Turn` or ``(speaker, text)`` pairs."""
    out = []
    for turn in context:
        speaker, text = (turn.speaker, turn.text) if isinstance(turn, Turn) else turn
        out.append(pb.Turn(speaker=speaker, text=text))
    return out


_SCOPES = {
    pb.FLAG_SCOPE_TEXT: "text",
    pb.FLAG_SCOPE_SENTENCE: "sentence",
    pb.FLAG_SCOPE_CONVERSATION: "conversation",
}
_REASONS = {
    pb.SUMMARY_REASON_REQUESTED: "requested",
    pb.SUMMARY_REASON_ENDED: "ended",
    pb.SUMMARY_REASON_EVICTED: "evicted",
}
_TRENDS = {pb.TREND_RISING: "rising", pb.TREND_FALLING: "falling"}


def span(message: pb.TextSpan) -> TextSpan:
    return TextSpan(
        message.start,
        message.end,
        message.utf8_start,
        message.utf8_end,
        message.utf16_start,
        message.utf16_end,
    )


def flag(message: pb.Flag) -> Flag:
    scope = _SCOPES.get(message.scope, "unspecified")
    return Flag(
        rule=message.rule,
        scope=scope,  # type: ignore[arg-type]
        value=message.value,
        sentence=message.sentence if scope == "sentence" else None,
        span=span(message.span) if message.HasField("span") else None,
        turn=message.turn if scope == "conversation" else None,
        speaker=message.speaker if scope == "conversation" else None,
    )


def summary(message: pb.ConversationSummary) -> ConversationSummary:
    return ConversationSummary(
        conversation_id=message.conversation_id,
        reason=_REASONS.get(message.reason, "unspecified"),  # type: ignore[arg-type]
        model=message.model,
        turns=message.turns,
        answered_turns=message.answered_turns,
        window=message.window,
        labels=tuple(LabelShare(s.label, s.mean_score, s.predicted_turns) for s in message.labels),
        speakers=tuple(
            SpeakerSummary(
                s.speaker,
                s.turns,
                s.negative_average if s.HasField("negative_average") else None,
                _TRENDS.get(s.trend, "flat"),  # type: ignore[arg-type]
                s.last_change_turn if s.HasField("last_change_turn") else None,
            )
            for s in message.speakers
        ),
    )


def label_score(message: pb.LabelScore) -> LabelScore:
    return LabelScore(message.label, message.score, message.threshold, message.predicted)


def result(message: pb.ClassifyResponse) -> ClassifyResult:
    """A ClassifyResponse as a :class:`ClassifyResult`."""
    return ClassifyResult(
        scores=[label_score(s) for s in message.scores],
        predicted=list(message.predicted),
        score_type=_SCORE_TYPES.get(message.score_type, "unspecified"),
        token_count=message.token_count,
        truncated=message.truncated,
        max_tokens=message.max_tokens,
        model=message.model,
        model_version=message.model_version,
        view=_VIEWS_BACK.get(message.view, View.NATIVE),
        chunk_count=message.chunk_count or 1,
        chunks=tuple(
            ChunkResult(
                c.index,
                c.first_token,
                c.token_count,
                tuple(label_score(s) for s in c.scores),
                tuple(c.predicted),
            )
            for c in message.chunks
        ),
        aggregation=_AGGREGATIONS.get(message.aggregation, "none"),
        context_turns=message.context_turns,
        token_count_is_lower_bound=message.token_count_is_lower_bound,
        server_latency_us=message.server_latency_us,
        intensity=message.intensity if message.HasField("intensity") else None,
        flags=tuple(flag(f) for f in message.flags),
        request_id=message.request_id,
    )


def analyze(message: pb.AnalyzeResponse) -> AnalyzeResult:
    """An AnalyzeResponse as an :class:`AnalyzeResult`."""
    return AnalyzeResult(
        sentences=tuple(
            SentenceResult(
                index=s.index,
                span=TextSpan(
                    s.span.start,
                    s.span.end,
                    s.span.utf8_start,
                    s.span.utf8_end,
                    s.span.utf16_start,
                    s.span.utf16_end,
                ),
                text=s.text,
                scores=tuple(label_score(x) for x in s.scores),
                predicted=tuple(s.predicted),
                token_count=s.token_count,
                truncated=s.truncated,
                chunk_count=s.chunk_count or 1,
                intensity=s.intensity if s.HasField("intensity") else None,
            )
            for s in message.sentences
        ),
        scores=tuple(label_score(x) for x in message.scores),
        predicted=tuple(message.predicted),
        aggregation=_AGGREGATIONS.get(message.aggregation, "none"),
        intensity=message.intensity if message.HasField("intensity") else None,
        score_type=_SCORE_TYPES.get(message.score_type, "unspecified"),
        view=_VIEWS_BACK.get(message.view, View.NATIVE),
        model=message.model,
        model_version=message.model_version,
        max_tokens=message.max_tokens,
        token_count=message.token_count,
        truncated=message.truncated,
        server_latency_us=message.server_latency_us,
        flags=tuple(flag(f) for f in message.flags),
        request_id=message.request_id,
    )


def batch_items(message: pb.ClassifyBatchResponse, offset: int) -> list[BatchItem]:
    """The items of one ClassifyBatch response; errors indexed from ``offset``."""
    items: list[BatchItem] = []
    for i, item in enumerate(message.items):
        if item.HasField("result"):
            items.append(result(item.result))
        else:
            items.append(ItemError(offset + i, _code(item.error.code), item.error.message))
    return items


def stream_error(message: pb.ClassifyStreamResponse) -> EmotionAwareError | None:
    """The typed error of a stream response, or None when it carries a result."""
    if message.HasField("error"):
        return error_for(message.error.code, message.error.message)
    return None


def _code(number: int) -> grpc.StatusCode:
    from emotionaware_client.errors import status_code

    return status_code(number)


def model_info(message: pb.ModelInfo) -> ModelInfo:
    """A ModelInfo message as a :class:`ModelInfo`."""
    return ModelInfo(
        name=message.name,
        version=message.version,
        versions=tuple(message.versions),
        aliases=tuple(message.aliases),
        labels=tuple(LabelInfo(label.name, label.threshold) for label in message.labels),
        views=tuple(_VIEWS_BACK[v] for v in message.views if v in _VIEWS_BACK),
        score_type=_SCORE_TYPES.get(message.score_type, "unspecified"),
        max_tokens=message.max_tokens,
        context_turns=message.context_turns,
        max_text_chars=message.max_text_chars,
        max_batch_texts=message.max_batch_texts,
        max_chunks=message.max_chunks,
        chunk_overlap_tokens=message.chunk_overlap_tokens,
        dataset=message.dataset,
        default_long_text_mode=_LONG_BACK.get(message.default_long_text_mode, LongTextMode.DEFAULT),
        max_sentences=message.max_sentences,
    )


def models(message: pb.ListModelsResponse) -> Models:
    """A ListModelsResponse as :class:`Models`."""
    return Models(
        models=tuple(model_info(m) for m in message.models),
        aliases=tuple(
            Alias(a.name, tuple(AliasTarget(t.model, t.model_version, t.weight) for t in a.targets))
            for a in message.aliases
        ),
    )


def texts_of(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refusing a lone string (a common slip that would split it into characters)."""
    if isinstance(texts, str):
        raise TypeError("classify_batch() takes a sequence of texts, not one string; use classify()")
    return list(texts)
