"""PNG figures for the model cards, drawn from the metrics dictionaries (no numbers typed here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt
import numpy as np

PER_LABEL_F1 = "per_label_f1.png"
CONFUSION = "confusion_matrix.png"
THRESHOLD_TABLE = "thresholds.png"


def per_label_f1(
    path: Path, model: Mapping[str, Mapping], baseline: Mapping[str, Mapping], title: str
) -> Path:
    """Horizontal bars of each label's F1, model against the TF-IDF baseline, best label on top."""
    labels = sorted(model, key=lambda name: model[name]["f1"])
    rows = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(labels) + 1.4))
    ax.barh(rows + 0.2, [model[name]["f1"] for name in labels], height=0.4, label="model")
    ax.barh(rows - 0.2, [baseline[name]["f1"] for name in labels], height=0.4, label="TF-IDF + LR", alpha=0.7)
    ax.set_yticks(rows, [f"{name} ({model[name]['support']})" for name in labels], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("F1 (label support in parentheses)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion(
    path: Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str, xlabel: str
) -> Path:
    """Row-normalised matrix (each gold label's row sums to 1), counts written in the cells."""
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    size = 0.42 * len(labels) + 2
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("gold label")
    if len(labels) <= 12:
        for (i, j), value in np.ndenumerate(counts):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if shares[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the gold label's examples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def threshold_table(path: Path, rows: Sequence[tuple[str, float, float, float]], title: str) -> Path:
    """A table image: label, dev-tuned threshold, dev F1 at it, test F1 at it."""
    fig, ax = plt.subplots(figsize=(6, 0.24 * len(rows) + 0.9))
    ax.axis("off")
    table = ax.table(
        cellText=[[name, f"{t:.3f}", f"{dev:.3f}", f"{test:.3f}"] for name, t, dev, test in rows],
        colLabels=["label", "threshold (dev-tuned)", "dev F1", "test F1"],
        loc="center",
        cellLoc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.1)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
