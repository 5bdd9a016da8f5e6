"""Does intensity mean what it says? GoEmotions dev, served scores: ``make intensity``.

    python -m bench.intensity [--limit N] [--out FILE]

Intensity (emotionaware.scores.intensity) is 1 - P(neutral). GoEmotions ships no per-rater
counts in its simplified splits (a label is kept when at least two raters agreed on it), so
the evidence is against what the annotators agreed on: the share of texts whose gold labels
hold an emotion, and how many emotions, by intensity decile and the other way round. The
candidate it was chosen over, the highest emotion score, is measured beside it (the choice
was made on dev; test is never read here).

Scores come from the served graph through the gateway's own pipeline on the embedded ONNX
Runtime backend (the same scores as Classify; tests/triton/test_batch_independence.py).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.run import results_page
from emotionaware.datasets import load_goemotions
from emotionaware.paths import DEFAULT_DATA_DIR
from emotionaware.scores import NEUTRAL, intensity
from emotionaware.taxonomy import GOEMOTIONS_LABELS
from gateway.settings import DEFAULT_MODEL_REPOSITORY

MODEL = "goemotions"
DECILES = 10


@dataclass(frozen=True)
class Evidence:
    """Per text: the served scores (model label order), intensity and gold emotion count."""

    labels: tuple[str, ...]
    scores: np.ndarray  # (texts, labels)
    intensity: np.ndarray  # (texts,)
    gold_emotions: np.ndarray  # (texts,) gold labels other than neutral

    def candidate(self, name: str) -> np.ndarray:
        if name == "intensity":
            return self.intensity
        neutral = self.labels.index(NEUTRAL)
        return np.delete(self.scores, neutral, axis=1).max(axis=1)  # highest emotion score


async def _served_scores(repository: Path, texts: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    from gateway.backends.onnxruntime import EmbeddedBackend
    from gateway.pipeline import Pipeline
    from gateway.routing import Router
    from gateway.settings import Settings
    from gateway.types import ClassifyOptions

    settings = Settings(backend="embedded", model_repository=repository, http_listen="", metrics_port=0)
    pipeline = Pipeline(settings, Router(settings), EmbeddedBackend(repository, 2))
    options = ClassifyOptions(return_all_scores=True)
    try:
        rows: list[dict[str, float]] = []
        for start in range(0, len(texts), 64):
            results = await pipeline.classify_batch(
                list(texts[start : start + 64]), MODEL, options, time.monotonic() + 600
            )
            rows.extend({s.label: s.score for s in r.scored.scores} for r in results)  # type: ignore[union-attr]
        labels = pipeline.table.specs[(MODEL, pipeline.table.routes[MODEL].version)].labels
    finally:
        await pipeline.close()
    return labels, np.array([[row[label] for label in labels] for row in rows])


def measure(repository: Path, data_dir: Path, limit: int = 0) -> Evidence:
    dev = load_goemotions(data_dir).dev
    if limit:
        dev = dev[:limit]
    labels, scores = asyncio.run(_served_scores(repository, [e.text for e in dev]))
    neutral = GOEMOTIONS_LABELS.index(NEUTRAL)
    gold = np.array([sum(1 for label in e.labels if label != neutral) for e in dev])
    strength = np.array([intensity(row, labels) for row in scores])
    return Evidence(labels, scores, strength, gold)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    # Ties share their mean rank.
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def deciles(values: np.ndarray) -> np.ndarray:
    """Decile index (0..9) of each value, by rank (equal-sized groups)."""
    return np.minimum(_ranks(values) * DECILES // len(values), DECILES - 1).astype(int)


def decile_rows(e: Evidence, name: str) -> list[tuple[int, float, float, float]]:
    """(decile, mean value, share of texts with a gold emotion, mean gold emotions)."""
    values = e.candidate(name)
    groups = deciles(values)
    return [
        (d + 1, float(values[groups == d].mean()), float((e.gold_emotions[groups == d] > 0).mean()),
         float(e.gold_emotions[groups == d].mean()))
        for d in range(DECILES)
    ]  # fmt: skip


def by_gold(e: Evidence, name: str) -> list[tuple[str, int, float]]:
    """(gold emotions: 0, 1, 2+), texts, mean value."""
    values = e.candidate(name)
    groups = [
        ("0 (neutral only)", e.gold_emotions == 0),
        ("1", e.gold_emotions == 1),
        ("2 or more", e.gold_emotions >= 2),
    ]
    return [(label, int(mask.sum()), float(values[mask].mean())) for label, mask in groups]  # fmt: skip


def monotone(values: Sequence[float]) -> bool:
    return all(b >= a for a, b in itertools.pairwise(values))


def report(e: Evidence) -> list[str]:
    blocks = []
    for name, title in (("intensity", "intensity = 1 - P(neutral) (served)"),
                        ("highest", "the candidate not chosen: the highest emotion score")):  # fmt: skip
        rows = decile_rows(e, name)
        lines = [
            f"### {title}",
            "",
            f"Spearman with the number of gold emotions: {spearman(e.candidate(name), e.gold_emotions):.3f}. "
            f"Share with a gold emotion rises in every decile: {'yes' if monotone([r[2] for r in rows]) else 'no'}; "
            f"mean gold emotions rises in every decile: {'yes' if monotone([r[3] for r in rows]) else 'no'}.",
            "",
            "| decile | mean value | texts with a gold emotion | gold emotions per text |",
            "|---:|---:|---:|---:|",
            *(f"| {d} | {v:.3f} | {share:.2f} | {count:.2f} |" for d, v, share, count in rows),
            "",
            "| gold emotions | texts | mean value |",
            "|---|---:|---:|",
            *(f"| {label} | {n} | {v:.3f} |" for label, n, v in by_gold(e, name)),
        ]
        blocks.append("\n".join(lines))
    return blocks


def main(argv: Sequence[str] | None = None) -> Evidence:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--limit", type=int, default=0, help="first N dev texts (0: all 5,426)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    evidence = measure(args.model_repository, args.data_dir, args.limit)
    results_page(
        "Intensity against annotator agreement (GoEmotions dev)",
        f"{len(evidence.intensity)} dev texts, model {MODEL}, served fp32 graph through the gateway "
        "pipeline (embedded backend). Command: `make intensity`.",
        *report(evidence),
        out=args.out,
    )
    return evidence


if __name__ == "__main__":
    main()
