"""emotionaware.sentences: spans slice the original text in every unit, whatever it holds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emotionaware.sentences import split
from emotionaware.text import has_visible_character

pytestmark = pytest.mark.unit

# Pieces users send: emoji with ZWJ and skin tones, combining marks, RTL, CJK with its own
# full stops, full-width letters, zero-width characters, and every kind of line break.
PIECES = [
    "I am so angry",
    "thank you",
    "👩🏽‍💻",
    "👨‍👩‍👧‍👦",
    "cafe\u0301",
    "n\u0303o",
    "هذا رائع جدا",
    "שלום עולם",
    "今天很开心",
    "明天也会好",
    "Ｆｕｌｌ",
    "\u200b",
    "\ufeff",
    "e\u0301\u0301",
    "😢",
    "Mr. Smith",
    "3.14",
]
SEPARATORS = [
    " ",
    ". ",
    "! ",
    "?? ",
    "... ",
    "。",
    "！",
    "？",
    "\r\n",
    "\n\n",
    "\r",
    "\u2028",
    "\t",
    "  ",
    "",
]

texts = st.lists(
    st.tuples(st.sampled_from(PIECES), st.sampled_from(SEPARATORS)), min_size=1, max_size=25
).map(lambda parts: "".join(p + s for p, s in parts))


def check(text: str) -> None:
    raw8, raw16 = text.encode("utf-8"), text.encode("utf-16-le")
    found = split(text)
    end = 0
    for sentence in found:
        span = sentence.span
        assert end <= span.start < span.end <= len(text)
        assert text[span.start : span.end] == sentence.text
        assert raw8[span.utf8_start : span.utf8_end].decode("utf-8") == sentence.text
        assert raw16[2 * span.utf16_start : 2 * span.utf16_end].decode("utf-16-le") == sentence.text
        assert sentence.text == sentence.text.strip() and has_visible_character(sentence.text)
        assert "\n" not in sentence.text and "\r" not in sentence.text
        end = span.end
    # Nothing visible is lost between or around the sentences.
    covered = set()
    for sentence in found:
        covered.update(range(sentence.span.start, sentence.span.end))
    outside = "".join(ch for i, ch in enumerate(text) if i not in covered)
    assert not has_visible_character(outside), repr(outside)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_spans_slice_the_text_in_code_points_bytes_and_utf16(text):
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_at_all(text):
    check(text)


def test_sentence_ends_line_breaks_and_cjk_stops():
    text = "Hello there! I am angry.\r\nno punctuation here\n\n今天很开心。明天也会好！ Bye"
    assert [s.text for s in split(text)] == [
        "Hello there!",
        "I am angry.",
        "no punctuation here",
        "今天很开心。",
        "明天也会好！",
        "Bye",
    ]


def test_invisible_only_pieces_are_not_sentences():
    assert split(" \r\n\u200b\n\t") == []
    assert [s.text for s in split("Ok.\n\u200b\n\ufeffFine.")] == ["Ok.", "Fine."]
