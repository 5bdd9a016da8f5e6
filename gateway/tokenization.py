"""Tokenization with the model's own fast tokenizer (Hugging Face ``tokenizers``).

The gateway tokenizes, not Triton, so token counts and truncation are known before the
request is sent, and so Triton receives only fixed-type integer tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from emotionaware.text import normalize
from gateway.types import TokenizedText


class TextTokenizer:
    """Normalise, tokenize and truncate to the model's limit, reporting what was cut."""

    def __init__(self, tokenizer_json: Path, max_tokens: int) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        padding = self._tokenizer.padding
        # Id batches are padded with; read before padding is switched off below.
        self.pad_id = int(padding["pad_id"]) if padding else 0
        # The shipped tokenizer.json pads to 128; padding happens inside Triton's batch instead.
        self._tokenizer.no_padding()
        # Longest segment first: with a context pair, the (usually longer) context is cut
        # before the utterance, and its oldest turns (at its end) go first.
        self._tokenizer.enable_truncation(max_length=max_tokens, strategy="longest_first")
        self._specials = self._tokenizer.num_special_tokens_to_add(is_pair=False)
        self.specials = self._specials
        self._pair_specials = self._tokenizer.num_special_tokens_to_add(is_pair=True)
        self.max_tokens = max_tokens
        self._chunkers: dict[int, Tokenizer] = {}  # chunk-mode copies, one per overlap

    def encode(self, text: str, context: str = "") -> TokenizedText:
        """Token ids of ``text`` (and of a context segment after it, when given), cut to the limit.

        ``token_count`` and ``truncated`` describe the text itself; context that does not fit
        is dropped silently, oldest turns first, because keeping it is best effort by design.
        """
        normalized = normalize(text)
        if context:
            whole = self._untruncated_length(normalized)
            encoding = self._tokenizer.encode(normalized, context)
            kept = encoding.type_ids.count(0)
            return TokenizedText(
                input_ids=np.asarray(encoding.ids, dtype=np.int64),
                token_count=whole,
                truncated=kept < whole,
            )
        encoding = self._tokenizer.encode(normalized)
        # Truncated tokens come back as overflowing windows, each with its own special tokens.
        overflow = sum(len(o.ids) - self._specials for o in encoding.overflowing)
        return TokenizedText(
            input_ids=np.asarray(encoding.ids, dtype=np.int64),
            token_count=len(encoding.ids) + overflow,
            truncated=overflow > 0,
        )

    def encode_chunks(self, text: str, overlap: int, max_chunks: int) -> tuple[list[TokenizedText], bool]:
        """Overlapping windows of at most ``max_tokens`` tokens covering the text.

        Consecutive windows share ``overlap`` tokens (the tokenizer's stride). Returns at most
        ``max_chunks`` windows and whether windows beyond that were dropped.
        """
        content = self.max_tokens - self._specials
        overlap = min(overlap, content - 1)
        chunker = self._chunkers.get(overlap)
        if chunker is None:
            chunker = Tokenizer.from_str(self._tokenizer.to_str())
            chunker.enable_truncation(max_length=self.max_tokens, stride=overlap)
            self._chunkers[overlap] = chunker
        encoding = chunker.encode(normalize(text))
        windows = [encoding, *encoding.overflowing]
        total = len(encoding.ids) + sum(len(o.ids) - self._specials for o in encoding.overflowing)
        total -= overlap * len(encoding.overflowing)  # shared tokens counted once
        out, first = [], 0
        for window in windows[:max_chunks]:
            out.append(TokenizedText(np.asarray(window.ids, dtype=np.int64), total, False, first))
            first += len(window.ids) - self._specials - overlap
        return out, len(windows) > max_chunks

    def _untruncated_length(self, normalized: str) -> int:
        encoding = self._tokenizer.encode(normalized)
        return len(encoding.ids) + sum(len(o.ids) - self._specials for o in encoding.overflowing)
