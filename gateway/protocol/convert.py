"""Protobuf <-> the gateway's typed domain objects, both ways, for every RPC.

No logic lives here beyond the mapping: validation is the pipeline's, errors are
``gateway.errors``'. The API's methods (gateway/protocol/service.py) and the stream sessions
(gateway/protocol/stream.py) convert through these functions, for every transport.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from emotionaware.artifact import ProblemType
from emotionaware.v1 import emotion_pb2 as pb
from gateway.errors import GatewayError, InvalidArgument, to_status
from gateway.routing import RouteTable
from gateway.summaries import Reason, Summary, Trend
from gateway.types import (
    AnalyzeResult,
    ClassifyOptions,
    ClassifyResult,
    Flag,
    LongTextMode,
    Scored,
    TrafficClass,
    View,
)


@dataclass(frozen=True)
class Undecodable:
    """A request that could not be decoded, and the first field found at fault (the transport
    hands it on like a request; :meth:`EmotionApi.call` answers INVALID_ARGUMENT)."""

    message_type: str
    field: str
    problem: str


SCORE_TYPES = {
    ProblemType.MULTI_LABEL: pb.SCORE_TYPE_SIGMOID,
    ProblemType.SINGLE_LABEL: pb.SCORE_TYPE_SOFTMAX,
}
VIEWS = {
    pb.VIEW_UNSPECIFIED: View.NATIVE,
    pb.VIEW_GOEMOTIONS: View.GOEMOTIONS,
    pb.VIEW_EKMAN: View.EKMAN,
    pb.VIEW_SENTIMENT: View.SENTIMENT,
}
VIEW_ENUMS = {view: number for number, view in VIEWS.items()}
LONG_TEXT = {
    pb.LONG_TEXT_MODE_UNSPECIFIED: None,
    pb.LONG_TEXT_MODE_TRUNCATE: LongTextMode.TRUNCATE,
    pb.LONG_TEXT_MODE_CHUNK: LongTextMode.CHUNK,
}
TRAFFIC_CLASSES = {
    pb.TRAFFIC_CLASS_UNSPECIFIED: None,
    pb.TRAFFIC_CLASS_INTERACTIVE: TrafficClass.INTERACTIVE,
    pb.TRAFFIC_CLASS_BULK: TrafficClass.BULK,
}
FLAG_SCOPES = {
    "text": pb.FLAG_SCOPE_TEXT,
    "sentence": pb.FLAG_SCOPE_SENTENCE,
    "conversation": pb.FLAG_SCOPE_CONVERSATION,
}
REASONS = {
    Reason.REQUESTED: pb.SUMMARY_REASON_REQUESTED,
    Reason.ENDED: pb.SUMMARY_REASON_ENDED,
    Reason.EVICTED: pb.SUMMARY_REASON_EVICTED,
}
TRENDS = {Trend.FLAT: pb.TREND_UNSPECIFIED, Trend.RISING: pb.TREND_RISING, Trend.FALLING: pb.TREND_FALLING}
LONG_TEXT_PB = {
    LongTextMode.TRUNCATE: pb.LONG_TEXT_MODE_TRUNCATE,
    LongTextMode.CHUNK: pb.LONG_TEXT_MODE_CHUNK,
}


# -- protobuf -> domain -----------------------------------------------------------------------


def options_from(message: pb.ClassifyOptions) -> ClassifyOptions:
    if message.view not in VIEWS:
        raise InvalidArgument("options.view", f"unknown View value {message.view}")
    if message.long_text_mode not in LONG_TEXT:
        raise InvalidArgument(
            "options.long_text_mode", f"unknown LongTextMode value {message.long_text_mode}"
        )
    if message.traffic_class not in TRAFFIC_CLASSES:
        raise InvalidArgument("options.traffic_class", f"unknown TrafficClass value {message.traffic_class}")
    return ClassifyOptions(
        model_version=message.model_version,
        view=VIEWS[message.view],
        top_k=message.top_k,
        threshold=message.threshold if message.HasField("threshold") else None,
        return_all_scores=message.return_all_scores,
        long_text=LONG_TEXT[message.long_text_mode],
        traffic_class=TRAFFIC_CLASSES[message.traffic_class],
    )


# -- domain -> protobuf -----------------------------------------------------------------------


def _scores(scored: Scored) -> list[pb.LabelScore]:
    return [
        pb.LabelScore(label=s.label, score=s.score, threshold=s.threshold, predicted=s.predicted)
        for s in scored.scores
    ]


def _span(span) -> pb.TextSpan:
    return pb.TextSpan(
        start=span.start,
        end=span.end,
        utf8_start=span.utf8_start,
        utf8_end=span.utf8_end,
        utf16_start=span.utf16_start,
        utf16_end=span.utf16_end,
    )


def flags_proto(flags: tuple[Flag, ...]) -> list[pb.Flag]:
    out = []
    for f in flags:
        message = pb.Flag(rule=f.rule, scope=FLAG_SCOPES[f.scope], value=f.value)
        if f.sentence is not None:
            message.sentence = f.sentence
        if f.span is not None:
            message.span.CopyFrom(_span(f.span))
        if f.turn is not None:
            message.turn = f.turn
        if f.speaker is not None:
            message.speaker = f.speaker
        out.append(message)
    return out


def summary_proto(summary: Summary) -> pb.ConversationSummary:
    return pb.ConversationSummary(
        conversation_id=summary.conversation_id,
        reason=REASONS[summary.reason],
        model=summary.model,
        turns=summary.turns,
        answered_turns=summary.answered,
        window=summary.window,
        labels=[
            pb.LabelShare(label=s.label, mean_score=s.mean_score, predicted_turns=s.predicted_turns)
            for s in summary.labels
        ],
        speakers=[
            pb.SpeakerSummary(
                speaker=s.speaker,
                turns=s.turns,
                negative_average=s.negative_average,
                trend=TRENDS[s.trend],
                last_change_turn=s.last_change_turn,
            )
            for s in summary.speakers
        ],
    )


def to_proto(result: ClassifyResult, started: float) -> pb.ClassifyResponse:
    aggregation = pb.AGGREGATION_UNSPECIFIED
    if result.chunk_count > 1:  # windows were aggregated
        aggregation = (
            pb.AGGREGATION_MAX if result.problem_type is ProblemType.MULTI_LABEL else pb.AGGREGATION_MEAN
        )
    return pb.ClassifyResponse(
        scores=_scores(result.scored),
        predicted=list(result.scored.predicted),
        score_type=SCORE_TYPES[result.problem_type],
        token_count=result.token_count,
        truncated=result.truncated,
        max_tokens=result.max_tokens,
        model=result.model,
        model_version=result.model_version,
        view=VIEW_ENUMS[result.view],
        chunk_count=result.chunk_count,
        chunks=[
            pb.ChunkResult(
                index=c.index,
                first_token=c.first_token,
                token_count=c.token_count,
                scores=_scores(c.scored),
                predicted=list(c.scored.predicted),
            )
            for c in result.chunks
        ],
        aggregation=aggregation,
        context_turns=result.context_turns,
        token_count_is_lower_bound=not result.token_count_exact,
        server_latency_us=int((time.perf_counter() - started) * 1e6),
        intensity=result.intensity,
        flags=flags_proto(result.flags),
    )


def analyze_proto(result: AnalyzeResult, started: float) -> pb.AnalyzeResponse:
    document = result.document
    aggregation = pb.AGGREGATION_UNSPECIFIED
    if result.aggregated:
        aggregation = (
            pb.AGGREGATION_MAX if document.problem_type is ProblemType.MULTI_LABEL else pb.AGGREGATION_MEAN
        )
    return pb.AnalyzeResponse(
        sentences=[
            pb.SentenceResult(
                index=s.index,
                span=_span(s.span),
                text=s.text,
                scores=_scores(s.result.scored),
                predicted=list(s.result.scored.predicted),
                token_count=s.result.token_count,
                truncated=s.result.truncated,
                chunk_count=s.result.chunk_count,
                intensity=s.result.intensity,
            )
            for s in result.sentences
        ],
        scores=_scores(document.scored),
        predicted=list(document.scored.predicted),
        aggregation=aggregation,
        intensity=document.intensity,
        score_type=SCORE_TYPES[document.problem_type],
        view=VIEW_ENUMS[document.view],
        model=document.model,
        model_version=document.model_version,
        max_tokens=document.max_tokens,
        token_count=document.token_count,
        truncated=document.truncated,
        server_latency_us=int((time.perf_counter() - started) * 1e6),
        flags=flags_proto(document.flags + tuple(f for s in result.sentences for f in s.result.flags)),
    )


def error_proto(exc: GatewayError) -> pb.Error:
    code, message = to_status(exc)
    return pb.Error(code=code.number, message=message)


def model_info(table: RouteTable, name: str, settings) -> pb.ModelInfo:
    route = table.routes[name]
    spec = table.specs[(name, route.version)]
    return pb.ModelInfo(
        name=name,
        version=route.version,
        versions=list(route.versions),
        aliases=list(table.aliases_of(name)),
        labels=[
            pb.LabelInfo(
                name=label,
                threshold=float(t) if spec.problem_type is ProblemType.MULTI_LABEL else 0.0,
            )
            for label, t in zip(spec.labels, spec.thresholds, strict=True)
        ],
        views=[VIEW_ENUMS[v] for v in spec.views if v is not View.NATIVE],
        score_type=SCORE_TYPES[spec.problem_type],
        max_tokens=spec.max_tokens,
        context_turns=spec.context_turns,
        default_long_text_mode=LONG_TEXT_PB[spec.long_text_mode],
        max_text_chars=route.max_text_chars,
        max_batch_texts=route.max_batch_texts,
        max_chunks=settings.max_chunks,
        max_sentences=settings.max_sentences,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        dataset=spec.dataset,
    )
