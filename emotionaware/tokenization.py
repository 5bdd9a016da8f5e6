"""Tokenization with the model's own fast tokenizer (Hugging Face ``tokenizers``).

The gateway tokenizes, not Triton, so token counts and truncation are known before the
request is sent, and so Triton receives only fixed-type integer tensors.

Cost is bounded by what the model can read, not by what the client sent. A text is
tokenized only as far as needed: a prefix cut at a space (after normalisation, where
words never span a space, so the prefix's tokens are exactly the first tokens of the
whole text) that holds at least one token more than the model reads. The prefix starts
at ``_CHARS_PER_TOKEN`` characters per needed token and doubles while it holds too few
(long words or unbroken scripts), so the worst case is one tokenization of the whole text,
which is within the character limit. The tokenizer is never asked for truncation with
overflow: for a text+context pair that returns every combination of both segments'
overflow windows (7,139 encodings, about 620 MB, for two 10,000-character segments).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from emotionaware.text import normalize

# Long texts in chunk mode: windows overlap by this many tokens, at most this many per text.
# Training (train/windows.py) and serving (the gateway's defaults) use the same windows.
CHUNK_OVERLAP_TOKENS = 32
MAX_CHUNKS = 16

# English averages about 4.5 characters per token; 8 makes the first prefix enough for
# almost every text, so a second pass is rare.
_CHARS_PER_TOKEN = 8


@dataclass(frozen=True)
class _Prefix:
    """Tokens (no special tokens) of the start of a string."""

    encoding: Encoding  # without special tokens, never truncated (no overflow)
    tokens: int
    complete: bool  # the prefix is the whole string


@dataclass(frozen=True)
class TokenizedText:
    """Token ids ready for the model, with what truncation did to them."""

    input_ids: np.ndarray  # int64, shape (tokens,)
    token_count: int  # tokens of the text itself, special tokens included, before any cut
    truncated: bool
    first_token: int = 0  # chunk mode: offset of this window's first text token
    # False when only a prefix of a long text was tokenized: token_count is then a lower bound.
    token_count_exact: bool = True


def _longest_first(first: int, second: int, budget: int) -> tuple[int, int]:
    """Tokens kept of each segment of a pair, as ``tokenizers``' longest_first strategy keeps.

    The shorter segment is kept whole when the longer one can take the rest; otherwise each
    gets half, the longer one the odd token. Lengths may be capped at ``budget + 1`` (prefix
    counts): the result is then the same except that when both segments exceed the budget,
    an odd token goes to the second (context) segment.
    """
    if first + second <= budget:
        return first, second
    short = min(first, second)
    keep_long = short if short > budget else max(short, budget - short)
    keep_short = short
    if keep_short + keep_long > budget:
        keep_short = budget // 2
        keep_long = keep_short + budget % 2
    return (keep_long, keep_short) if first > second else (keep_short, keep_long)


class TextTokenizer:
    """Normalise, tokenize and truncate to the model's limit, reporting what was cut."""

    def __init__(self, tokenizer_json: Path, max_tokens: int) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        padding = self._tokenizer.padding
        # Id batches are padded with; read before padding is switched off below.
        self.pad_id = int(padding["pad_id"]) if padding else 0
        # The shipped tokenizer.json pads to 128; padding happens inside Triton's batch instead.
        self._tokenizer.no_padding()
        # Truncation is done here, on prefixes, never by the tokenizer (see the module doc).
        self._tokenizer.no_truncation()
        self.specials = self._tokenizer.num_special_tokens_to_add(is_pair=False)
        self._pair_specials = self._tokenizer.num_special_tokens_to_add(is_pair=True)
        self.max_tokens = max_tokens
        self._chunkers: dict[int, Tokenizer] = {}  # chunk-mode copies, one per overlap

    def _prefix(self, text: str, needed: int) -> _Prefix:
        """The shortest prefix (doubling, cut at a space) with ``needed`` tokens, or all of ``text``."""
        limit = max(needed, 8) * _CHARS_PER_TOKEN
        while True:
            if len(text) <= limit:
                encoding = self._tokenizer.encode(text, add_special_tokens=False)
                return _Prefix(encoding, len(encoding.ids), True)
            cut = text.rfind(" ", 0, limit + 1)
            if cut > 0:
                encoding = self._tokenizer.encode(text[:cut], add_special_tokens=False)
                if len(encoding.ids) >= needed:
                    return _Prefix(encoding, len(encoding.ids), False)
            limit *= 2

    def _kept(self, encoding: Encoding, keep: tuple[int, ...]) -> np.ndarray:
        """Ids of ``encoding`` with special tokens and the first ``keep[i]`` tokens of segment i."""
        seen = [0] * len(keep)
        ids = []
        # Segments by type id and special-token mask: post_process leaves the first segment's
        # sequence_ids unset for pairs (tokenizers 0.22), while type ids follow the template.
        for token, segment, special in zip(
            encoding.ids, encoding.type_ids, encoding.special_tokens_mask, strict=True
        ):
            if not special:
                if seen[segment] >= keep[segment]:
                    continue
                seen[segment] += 1
            ids.append(token)
        return np.asarray(ids, dtype=np.int64)

    def encode(self, text: str, context: str = "") -> TokenizedText:
        """Token ids of ``text`` (and of a context segment after it, when given), cut to the limit.

        ``token_count`` and ``truncated`` describe the text itself; context that does not fit
        is dropped silently, oldest turns first (the context is newest first), because
        keeping it is best effort by design. Both segments are cut as ``longest_first`` cuts.
        """
        normalized = normalize(text)
        if not context:
            budget = self.max_tokens - self.specials
            head = self._prefix(normalized, budget + 1)
            # The template (special tokens) applied to the prefix's tokens: no second tokenization.
            encoding = self._tokenizer.post_process(head.encoding)
            kept = min(head.tokens, budget)
            return TokenizedText(
                input_ids=self._kept(encoding, (kept,)),
                token_count=head.tokens + self.specials,
                truncated=kept < head.tokens,
                token_count_exact=head.complete,
            )
        budget = self.max_tokens - self._pair_specials
        head = self._prefix(normalized, budget + 1)
        tail = self._prefix(context, budget + 1)
        keep = _longest_first(min(head.tokens, budget + 1), min(tail.tokens, budget + 1), budget)
        encoding = self._tokenizer.post_process(head.encoding, tail.encoding)
        return TokenizedText(
            input_ids=self._kept(encoding, keep),
            token_count=head.tokens + self.specials,
            truncated=keep[0] < head.tokens,
            token_count_exact=head.complete,
        )

    def encode_chunks(self, text: str, overlap: int, max_chunks: int) -> tuple[list[TokenizedText], bool]:
        """Overlapping windows of at most ``max_tokens`` tokens covering the text.

        Consecutive windows share ``overlap`` tokens (the tokenizer's stride). Returns at most
        ``max_chunks`` windows and whether windows beyond that were dropped.
        """
        content = self.max_tokens - self.specials
        overlap = min(overlap, content - 1)
        chunker = self._chunkers.get(overlap)
        if chunker is None:
            chunker = Tokenizer.from_str(self._tokenizer.to_str())
            chunker.enable_truncation(max_length=self.max_tokens, stride=overlap)
            self._chunkers[overlap] = chunker
        # Enough tokens for max_chunks whole windows and one more token, to know if one is dropped.
        head = self._prefix(normalize(text), (max_chunks - 1) * (content - overlap) + content + 1)
        # The chunker's stride truncation (one segment: linear, no combinations) and template.
        encoding = chunker.post_process(head.encoding)
        windows = [encoding, *encoding.overflowing]
        total = head.tokens + self.specials
        out, first = [], 0
        for window in windows[:max_chunks]:
            out.append(
                TokenizedText(np.asarray(window.ids, dtype=np.int64), total, False, first, head.complete)
            )
            first += len(window.ids) - self.specials - overlap
        return out, len(windows) > max_chunks
