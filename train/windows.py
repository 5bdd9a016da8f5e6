"""Long texts cut into windows the way the gateway's chunk mode cuts them, and scored back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.scores import aggregate_windows
from emotionaware.tokenization import CHUNK_OVERLAP_TOKENS, MAX_CHUNKS, TextTokenizer

# The gateway's defaults (gateway.settings.Settings: chunk_overlap_tokens, max_chunks), so
# training and evaluation see the windows a default deployment classifies.
OVERLAP_TOKENS = CHUNK_OVERLAP_TOKENS
MAX_WINDOWS = MAX_CHUNKS


@dataclass(frozen=True)
class Windows:
    """Token ids of every window, the index of the text each came from and its content size."""

    ids: list[list[int]]
    owner: np.ndarray  # int, one per window
    content_tokens: np.ndarray  # window length without the special tokens (aggregation weight)
    dropped: int  # texts with windows beyond MAX_WINDOWS (reported, like the gateway does)

    def aggregate(self, scores: np.ndarray, texts: int, problem_type: ProblemType) -> np.ndarray:
        """Per-text scores from per-window scores, aggregated as the gateway does."""
        out = np.zeros((texts, scores.shape[1]), dtype=np.float64)
        for text in range(texts):
            rows = np.flatnonzero(self.owner == text)
            out[text] = aggregate_windows(scores[rows], self.content_tokens[rows], problem_type)
        return out


def text_windows(tokenizer: TextTokenizer, texts: Sequence[str]) -> Windows:
    """Every text's overlapping windows of at most the tokenizer's length."""
    ids, owner, sizes, dropped = [], [], [], 0
    for index, text in enumerate(texts):
        windows, cut = tokenizer.encode_chunks(text, OVERLAP_TOKENS, MAX_WINDOWS)
        dropped += cut
        for window in windows:
            ids.append(window.input_ids.tolist())
            owner.append(index)
            sizes.append(len(window.input_ids) - tokenizer.specials)
    return Windows(ids, np.asarray(owner), np.asarray(sizes), dropped)
