"""Sentences of a text, with their offsets in the original text in three units.

spaCy's rule-based sentencizer (``spacy.blank("en")`` plus the ``sentencizer`` pipe: no model,
no download) finds sentence ends at sentence punctuation. Two rules are added because the
texts users send are not edited prose: a line break always ends a sentence (customer messages
and posts use lines as sentences), and CJK full stops (``。！？``) end one even inside a spaCy
token (the English tokenizer does not split unspaced CJK text).

Offsets index the text exactly as received (never the normalised form the model reads):
Unicode code points (Python ``str``, Go ``[]rune``, JavaScript ``Array.from``), UTF-8 bytes
(Go strings, Rust, C) and UTF-16 code units (JavaScript ``String.slice``, Java, C#). A
sentence's span starts at its first visible character and ends after its last, so slicing
the text by any of the three unit pairs gives the same sentence, with no surrounding
whitespace.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from emotionaware.text import has_visible_character

# Line breaks as Python's str.splitlines() knows them, CRLF as one.
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# A CJK sentence end and any closing quotes or brackets that belong to it.
_CJK_END = re.compile(r"[。！？｡][」』）〕】》〉\"'”’)]*")
# What is trimmed from a sentence's ends: whitespace, and characters that show nothing.
_INVISIBLE_EDGE = frozenset("\u200b\u200c\u200d\u2060\ufeff")


@dataclass(frozen=True)
class Span:
    """Where a sentence sits in the original text: ``[start, end)`` in each unit."""

    start: int  # Unicode code points
    end: int
    utf8_start: int  # UTF-8 bytes
    utf8_end: int
    utf16_start: int  # UTF-16 code units
    utf16_end: int


@dataclass(frozen=True)
class Sentence:
    """One sentence: its text (the original text's slice) and its span."""

    text: str
    span: Span


class _Sentencizer:
    """spaCy's pipeline, built once per process on first use (importing spaCy takes seconds)."""

    def __init__(self) -> None:
        self._nlp = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._nlp is not None

    def load(self):
        if self._nlp is None:
            with self._lock:
                if self._nlp is None:
                    import spacy

                    nlp = spacy.blank("en")
                    nlp.add_pipe("sentencizer")
                    self._nlp = nlp
        return self._nlp


_SENTENCIZER = _Sentencizer()


def load() -> None:
    """Load the sentencizer now (a server does it at start, so no request waits for it)."""
    _SENTENCIZER.load()


def loaded() -> bool:
    """Whether :func:`split` runs without first importing spaCy (which takes seconds)."""
    return _SENTENCIZER.loaded


def _lines(text: str) -> Iterator[tuple[int, int]]:
    """``[start, end)`` of each line of ``text``, line breaks excluded."""
    start = 0
    for match in _LINE_BREAK.finditer(text):
        yield start, match.start()
        start = match.end()
    yield start, len(text)


def _cjk_pieces(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` split after each CJK sentence end."""
    for match in _CJK_END.finditer(text, start, end):
        if match.end() < end:
            yield start, match.end()
            start = match.end()
    yield start, end


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and (text[start].isspace() or text[start] in _INVISIBLE_EDGE):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _INVISIBLE_EDGE):
        end -= 1
    return start, end


def _code_point_bounds(text: str) -> Iterator[tuple[int, int]]:
    nlp = _SENTENCIZER.load()
    for line_start, line_end in _lines(text):
        if line_start == line_end:
            continue
        line = text[line_start:line_end]
        for sent in nlp(line).sents:
            yield from _cjk_pieces(text, line_start + sent.start_char, line_start + sent.end_char)


class _Offsets:
    """Code point offsets -> UTF-8 and UTF-16 offsets, walking the text once, left to right."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._at = self._utf8 = self._utf16 = 0

    def at(self, position: int) -> tuple[int, int]:
        if position < self._at:  # spans come in order; a step back restarts (never in practice)
            self._at = self._utf8 = self._utf16 = 0
        for ch in self._text[self._at : position]:
            code = ord(ch)
            self._utf8 += 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
            self._utf16 += 2 if code >= 0x10000 else 1
        self._at = position
        return self._utf8, self._utf16


def split(text: str) -> list[Sentence]:
    """The sentences of ``text`` in order; pieces without a visible character are dropped."""
    offsets = _Offsets(text)
    out: list[Sentence] = []
    for raw_start, raw_end in _code_point_bounds(text):
        start, end = _trimmed(text, raw_start, raw_end)
        piece = text[start:end]
        if not piece or not has_visible_character(piece):
            continue
        utf8_start, utf16_start = offsets.at(start)
        utf8_end, utf16_end = offsets.at(end)
        out.append(Sentence(piece, Span(start, end, utf8_start, utf8_end, utf16_start, utf16_end)))
    return out
