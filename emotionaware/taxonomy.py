"""Label taxonomies and the declared mappings between them (views).

A view projects a model's fine-grained labels onto coarser ones. The GoEmotions paper
defines two: Ekman's six basic emotions plus neutral, and a sentiment grouping. The Ekman
mapping below is the official ``ekman_mapping.json`` of the GoEmotions release (a test
checks it against the dataset's copy); the sentiment grouping is the paper's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

GOEMOTIONS_LABELS: tuple[str, ...] = (
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
)

EKMAN_MAPPING: Mapping[str, tuple[str, ...]] = {
    "anger": ("anger", "annoyance", "disapproval"),
    "disgust": ("disgust",),
    "fear": ("fear", "nervousness"),
    "joy": (
        "joy",
        "amusement",
        "approval",
        "excitement",
        "gratitude",
        "love",
        "optimism",
        "relief",
        "pride",
        "admiration",
        "desire",
        "caring",
    ),
    "sadness": ("sadness", "disappointment", "embarrassment", "grief", "remorse"),
    "surprise": ("surprise", "realization", "confusion", "curiosity"),
    "neutral": ("neutral",),
}

SENTIMENT_MAPPING: Mapping[str, tuple[str, ...]] = {
    "positive": (
        "amusement",
        "excitement",
        "joy",
        "love",
        "desire",
        "optimism",
        "caring",
        "pride",
        "admiration",
        "gratitude",
        "relief",
        "approval",
    ),
    "negative": (
        "fear",
        "nervousness",
        "remorse",
        "embarrassment",
        "disappointment",
        "sadness",
        "grief",
        "disgust",
        "anger",
        "annoyance",
        "disapproval",
    ),
    "ambiguous": ("realization", "surprise", "curiosity", "confusion"),
    "neutral": ("neutral",),
}

# Ekman's six basic emotions plus neutral: MELD's label set, in the order models list them.
EKMAN_LABELS: tuple[str, ...] = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")

# Sentiment of the Ekman labels, consistent with SENTIMENT_MAPPING (where surprise is ambiguous).
EKMAN_SENTIMENT_MAPPING: Mapping[str, tuple[str, ...]] = {
    "positive": ("joy",),
    "negative": ("anger", "disgust", "fear", "sadness"),
    "ambiguous": ("surprise",),
    "neutral": ("neutral",),
}


def group_indices(labels: Sequence[str], mapping: Mapping[str, Sequence[str]]) -> dict[str, tuple[int, ...]]:
    """For each coarse label, the indices of its fine labels in ``labels``.

    Raises ``ValueError`` when the mapping does not cover ``labels`` exactly once each,
    because a view that drops or double-counts a label silently distorts scores.
    """
    position = {label: i for i, label in enumerate(labels)}
    seen: dict[str, str] = {}
    out: dict[str, tuple[int, ...]] = {}
    for coarse, fine in mapping.items():
        for label in fine:
            if label not in position:
                raise ValueError(f"view label {coarse!r} maps unknown label {label!r}")
            if label in seen:
                raise ValueError(f"label {label!r} is mapped to both {seen[label]!r} and {coarse!r}")
            seen[label] = coarse
        out[coarse] = tuple(position[label] for label in fine)
    unmapped = set(labels) - set(seen)
    if unmapped:
        raise ValueError(f"view leaves labels unmapped: {sorted(unmapped)}")
    return out
