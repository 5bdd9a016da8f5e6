"""Typed Python client of the EmotionAware gRPC API (``emotionaware.v1.EmotionService``).

>>> from emotionaware_client import EmotionClient
>>> with EmotionClient("127.0.0.1:50051") as client:          # doctest: +SKIP
...     result = client.classify("Thank you so much for your help!")
...     print(result.predicted)
['gratitude']

:class:`EmotionClient` is synchronous, :class:`AsyncEmotionClient` its asyncio twin. Results
are frozen dataclasses (:class:`ClassifyResult`, :class:`ModelInfo`, ...), errors subclasses
of :class:`EmotionAwareError`, one per gRPC status code.
"""

from __future__ import annotations

from emotionaware_client._channel import TlsConfig
from emotionaware_client.aio import AsyncConversation, AsyncEmotionClient
from emotionaware_client.client import DEFAULT_TIMEOUT_S, Conversation, EmotionClient
from emotionaware_client.errors import (
    AbortedError,
    AlreadyExistsError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    EmotionAwareError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    OutOfRangeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    UnknownError,
)
from emotionaware_client.retry import RetryEvent, RetryPolicy
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

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "AbortedError",
    "Aggregation",
    "Alias",
    "AliasTarget",
    "AlreadyExistsError",
    "AnalyzeResult",
    "AsyncConversation",
    "AsyncEmotionClient",
    "BatchItem",
    "CancelledError",
    "ChunkResult",
    "ClassifyResult",
    "Conversation",
    "ConversationSummary",
    "DataLossError",
    "DeadlineExceededError",
    "EmotionAwareError",
    "EmotionClient",
    "FailedPreconditionError",
    "Flag",
    "InternalError",
    "InvalidArgumentError",
    "ItemError",
    "LabelInfo",
    "LabelScore",
    "LabelShare",
    "LongTextMode",
    "ModelInfo",
    "Models",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryEvent",
    "RetryPolicy",
    "ScoreType",
    "SentenceResult",
    "SpeakerSummary",
    "TextSpan",
    "TlsConfig",
    "TrafficClass",
    "Turn",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "UnknownError",
    "View",
]
