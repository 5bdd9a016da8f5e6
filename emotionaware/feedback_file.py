"""The training-set file of reviewers' feedback: what ``emotionaware-feedback export`` writes and
``make train FEEDBACK=...`` mixes into a recipe's training split.

JSON lines, one accepted verdict each: ``{"id": 7, "text": "...", "labels": ["anger"],
"model": "goemotions", "model_version": "1", "verdict": "wrong"}``. ``labels`` are the labels
the text should have (for a "correct" verdict, the answer's own). Only feedback whose text the
caller chose to store can be a training example.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class FeedbackExample:
    id: int
    text: str
    labels: tuple[str, ...]
    model: str
    model_version: str
    verdict: str


def write_examples(path: Path, examples: Iterable[FeedbackExample]) -> int:
    """Write ``examples`` to ``path`` (replacing it); how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(
                json.dumps({**asdict(example), "labels": list(example.labels)}, ensure_ascii=False) + "\n"
            )
            count += 1
    return count


def read_examples(path: Path) -> list[FeedbackExample]:
    out = []
    # Lines end at "\n" only: a text may hold U+2028, U+0085 and the like, which splitlines() splits on.
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            out.append(
                FeedbackExample(
                    int(raw["id"]),
                    str(raw["text"]),
                    tuple(raw["labels"]),
                    str(raw["model"]),
                    str(raw["model_version"]),
                    str(raw["verdict"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path}:{number}: not a feedback example ({type(exc).__name__}: {exc})"
            ) from None
    return out
