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
# Characters that show nothing on their own: separators (Z*), control and format characters
# (Cc, Cf: U+0000, U+200B, U+FEFF...), surrogates, and combining marks without a base
# (the tokenizer strips accents, so a lone U+0301 reaches the model as nothing).
_NOT_VISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Mn", "Me"})


def normalize(text: str) -> str:
    """Return ``text`` in the canonical form the models are trained on.

    NFKC folds compatibility characters (full-width letters, ligatures, fancy quotes keep
    their meaning), invisible characters are dropped and runs of whitespace, newlines
    included, collapse to one space. Case is left alone: the tokenizer lower-cases.
    """
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return _WHITESPACE.sub(" ", text).strip()


def has_visible_character(text: str) -> bool:
    """True when ``text`` holds a character that shows: the one emptiness rule of the API.

    Whitespace-only, control-only (``"\\x00"``), zero-width-only (``"\\u200b"``,
    ``"\\ufeff"``) and combining-mark-only texts are all "empty": the model would see only
    its special tokens and answer with the prior, not with anything the text says.
    """
    return any(unicodedata.category(ch) not in _NOT_VISIBLE for ch in text)
