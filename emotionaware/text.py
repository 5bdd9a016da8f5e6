"""Text normalisation shared by training and serving.

Training and the gateway must feed the encoder identically normalised text, otherwise the
served model sees a slightly different input distribution from the one it was tuned on.
Both import :func:`normalize` from here; nothing else normalises text.
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
# Zero-width and BOM characters survive NFKC and become [UNK] tokens for no benefit.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)


def normalize(text: str) -> str:
    """Return ``text`` in the canonical form the models are trained on.

    NFKC folds compatibility characters (full-width letters, ligatures, fancy quotes keep
    their meaning), invisible characters are dropped and runs of whitespace, newlines
    included, collapse to one space. Case is left alone: the tokenizer lower-cases.
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return _WHITESPACE.sub(" ", text).strip()
