"""Dataset loaders. Each returns typed examples with normalised text.

Datasets are read from a configurable directory (default ``../shared/data`` relative to the
project root); they are never copied into the repository.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from emotionaware.text import normalize

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class MultiLabelExample:
    """One text with the indices of every label annotated for it."""

    text: str
    labels: tuple[int, ...]
    id: str


@dataclass(frozen=True)
class GoEmotions:
    """The GoEmotions splits with the label list in its official order."""

    labels: tuple[str, ...]
    train: list[MultiLabelExample]
    dev: list[MultiLabelExample]
    test: list[MultiLabelExample]


def load_goemotions(data_dir: Path = DEFAULT_DATA_DIR) -> GoEmotions:
    """Read the official GoEmotions TSV splits (text, comma-separated label ids, comment id)."""
    root = Path(data_dir) / "goemotions" / "original"
    if not root.is_dir():
        raise FileNotFoundError(
            f"GoEmotions not found under {root}; set --data-dir to the folder holding goemotions/"
        )
    labels = tuple(line.strip() for line in (root / "labels.txt").read_text().splitlines() if line.strip())

    def split(name: str) -> list[MultiLabelExample]:
        out = []
        with (root / f"{name}.tsv").open(encoding="utf-8", newline="") as fh:
            # QUOTE_NONE: comments contain bare quote characters that are part of the text.
            for row in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                text, ids, comment_id = row
                label_ids = tuple(sorted({int(i) for i in ids.split(",")}))
                if any(i >= len(labels) for i in label_ids):
                    raise ValueError(f"{name}.tsv: label id out of range in row {comment_id}")
                out.append(MultiLabelExample(normalize(text), label_ids, comment_id))
        return out

    return GoEmotions(labels, split("train"), split("dev"), split("test"))
