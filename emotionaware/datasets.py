"""Dataset loaders. Each returns typed examples with normalised text.

Datasets are read from a configurable directory (default ``../shared/data`` relative to the
project root); they are never copied into the repository.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionaware.context import Turn
from emotionaware.paths import DEFAULT_DATA_DIR
from emotionaware.taxonomy import EKMAN_LABELS
from emotionaware.text import normalize


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


@dataclass(frozen=True)
class ConversationExample:
    """One utterance with its speaker, the earlier turns of its dialogue and its label index."""

    text: str
    speaker: str
    previous: tuple[Turn, ...]  # every earlier turn of the dialogue, oldest first
    label: int
    id: str


@dataclass(frozen=True)
class Meld:
    """The MELD splits (utterances in dialogue order) with the 7 Ekman labels."""

    labels: tuple[str, ...]
    train: list[ConversationExample]
    dev: list[ConversationExample]
    test: list[ConversationExample]


# MELD's emotion column uses the Ekman names; the label order is alphabetical (as in the data's
# documentation), which is also the order of the Ekman view of GoEmotions.
MELD_LABELS = EKMAN_LABELS


def load_meld(data_dir: Path = DEFAULT_DATA_DIR) -> Meld:
    """Read MELD's official CSV splits and rebuild each dialogue's turn order.

    Quirks handled: ``Utterance_ID`` has gaps in some dialogues, so turns are ordered by it
    rather than assumed consecutive; ``Sr No.`` is not unique, so ids are
    ``<split>/<dialogue>/<utterance>``.
    """
    root = Path(data_dir) / "meld"
    if not root.is_dir():
        raise FileNotFoundError(f"MELD not found under {root}; set --data-dir to the folder holding meld/")
    index = {label: i for i, label in enumerate(MELD_LABELS)}

    def split(name: str) -> list[ConversationExample]:
        dialogues: dict[int, list[dict]] = {}
        with (root / f"{name}_sent_emo.csv").open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                dialogues.setdefault(int(row["Dialogue_ID"]), []).append(row)
        out = []
        for dialogue_id in sorted(dialogues):
            turns = sorted(dialogues[dialogue_id], key=lambda r: int(r["Utterance_ID"]))
            history: list[Turn] = []
            for row in turns:
                text, speaker = normalize(row["Utterance"]), row["Speaker"].strip()
                emotion = row["Emotion"].strip().lower()
                if emotion not in index:
                    raise ValueError(f"{name}: unknown emotion {emotion!r} in dialogue {dialogue_id}")
                out.append(
                    ConversationExample(
                        text,
                        speaker,
                        tuple(history),
                        index[emotion],
                        f"{name}/{dialogue_id}/{row['Utterance_ID']}",
                    )
                )
                history.append(Turn(speaker, text))
        return out

    return Meld(MELD_LABELS, split("train"), split("dev"), split("test"))


@dataclass(frozen=True)
class LabelledText:
    """One text with the index of its single label."""

    text: str
    label: int
    id: str


# The nine navarasa emotions of PERC, alphabetical.
PERC_LABELS = ("anger", "courage", "fear", "hate", "joy", "love", "peace", "sad", "surprise")


@dataclass(frozen=True)
class Perc:
    """PERC poems (no official split: models are compared by cross-validation)."""

    labels: tuple[str, ...]
    poems: list[LabelledText]


def load_perc(data_dir: Path = DEFAULT_DATA_DIR) -> Perc:
    """Read PERC's CSV (columns Poem, Emotion).

    Quirks handled: a UTF-8 byte order mark and poems spanning several lines inside quoted
    cells (the csv module reads both); one stray row labelled ``hope`` outside the nine
    classes is dropped. Ids are ``perc/<row>`` counted over the file's data rows.
    """
    path = Path(data_dir) / "perc" / "PERC_mendelly.csv"
    if not path.is_file():
        raise FileNotFoundError(f"PERC not found at {path}; set --data-dir to the folder holding perc/")
    index = {label: i for i, label in enumerate(PERC_LABELS)}
    poems = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row_number, row in enumerate(csv.DictReader(fh)):
            emotion = row["Emotion"].strip().lower()
            if emotion == "hope":
                continue
            if emotion not in index:
                raise ValueError(f"PERC row {row_number}: unknown emotion {emotion!r}")
            poems.append(LabelledText(normalize(row["Poem"]), index[emotion], f"perc/{row_number}"))
    return Perc(PERC_LABELS, poems)


def perc_folds(
    poems: list[LabelledText], folds: int = 5, seed: int = 13
) -> list[tuple[list[int], list[int]]]:
    """Stratified folds (train indices, held-out indices) that keep identical poems together.

    PERC holds a few poems twice (two of them with different labels); grouping by text keeps a
    copy of a held-out poem out of its training folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = {text: i for i, text in enumerate(dict.fromkeys(p.text for p in poems))}
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        (train.tolist(), held_out.tolist())
        for train, held_out in splitter.split(
            np.zeros(len(poems)), [p.label for p in poems], [groups[p.text] for p in poems]
        )
    ]


def multi_hot(examples: list[MultiLabelExample], num_labels: int) -> np.ndarray:
    """0/1 targets (examples x labels) of multi-label examples."""
    targets = np.zeros((len(examples), num_labels), dtype=int)
    for row, example in enumerate(examples):
        targets[row, list(example.labels)] = 1
    return targets
