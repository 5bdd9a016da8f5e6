"""emotionaware.feedback_file: what export writes, training reads back whole."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_the_feedback_file_keeps_texts_with_unicode_line_separators(tmp_path):
    from emotionaware.feedback_file import FeedbackExample, read_examples, write_examples

    examples = [FeedbackExample(1, "one\u2028two\x85three\r\nfour", ("joy",), "goemotions", "1", "correct")]
    write_examples(tmp_path / "f.jsonl", examples)
    assert read_examples(tmp_path / "f.jsonl") == examples
