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
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._specials = self._tokenizer.num_special_tokens_to_add(is_pair=False)
        self.max_tokens = max_tokens

    def encode(self, text: str) -> TokenizedText:
        encoding = self._tokenizer.encode(normalize(text))
        # Truncated tokens come back as overflowing windows, each with its own special tokens.
        overflow = sum(len(o.ids) - self._specials for o in encoding.overflowing)
        return TokenizedText(
            input_ids=np.asarray(encoding.ids, dtype=np.int64),
            token_count=len(encoding.ids) + overflow,
            truncated=overflow > 0,
        )
