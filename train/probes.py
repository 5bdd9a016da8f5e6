"""Frozen-encoder probes for PERC poems, scored by nested cross-validation (issue 17).

The question: with 725 poems, does a linear probe on a frozen encoder beat fine-tuning it? Each
candidate encoder embeds every poem window once (the masked mean of its last hidden states: the
vector the served head reads), and a class-weighted multinomial logistic regression on those
standardised embeddings is the probe, so a chosen probe is exactly a model of the served shape
(encoder, mean pooling, linear head).

The outer folds are the fine-tuned recipe's folds (``emotionaware.datasets.perc_folds``), so the
two are compared poem for poem. Inside each outer training set, inner folds choose the encoder
and the regularisation; an outer fold's held-out poems never take part in choosing anything.
Windows and aggregation are the gateway's chunk mode (token-weighted mean of the windows'
softmax), and windows of one poem share one poem's weight, as in fine-tuning.

``make probes`` writes ``models/poems/experiments/poems-probe.json``; ``make eval MODEL=poems``
lists it in the card's experiment table next to the served recipe.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emotionaware.artifact import ProblemType
from emotionaware.datasets import DEFAULT_DATA_DIR, LabelledText, load_perc, perc_folds
from emotionaware.machine import cpu_summary
from emotionaware.paths import MODELS_DIR
from emotionaware.tokenization import TextTokenizer
from train.config import TrainConfig
from train.metrics import singlelabel_report
from train.model import base_model_path, build_from_base, load_artifact
from train.predict import predict_logits
from train.windows import Windows, text_windows

log = logging.getLogger("train")

# Encoders tried: the base package and the committed models whose encoders read emotions.
ENCODERS = ("base", "goemotions", "conversation")
# Inverse regularisation strengths of the logistic regression (chosen per outer fold).
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
INNER_FOLDS = 4
RECORD = "poems-probe"


@dataclass(frozen=True)
class Embedded:
    """Every window's pooled embedding under each encoder, and what the windows belong to."""

    by_encoder: dict[str, np.ndarray]  # encoder name -> (windows x hidden)
    windows: Windows
    labels: np.ndarray  # one per poem
    groups: np.ndarray  # identical poems share a group


def encoder_model(name: str, config: TrainConfig) -> torch.nn.Module:
    """The pooled-embedding model of an encoder: its classifier replaced by the identity."""
    if name == "base":
        model = build_from_base(config.base, 1, 0.0)
    else:
        model, manifest = load_artifact(MODELS_DIR / name)
        if manifest.base != config.base:
            raise SystemExit(f"encoder {name!r} was trained from another base encoder")
        model = model.float()
    model.classifier = torch.nn.Identity()
    return model


def embed(config: TrainConfig, poems: list[LabelledText], encoders: tuple[str, ...]) -> Embedded:
    tokenizer = TextTokenizer(base_model_path(config.base) / "tokenizer.json", config.train.max_length)
    windows = text_windows(tokenizer, [p.text for p in poems])
    by_encoder = {}
    for name in encoders:
        started = time.monotonic()
        by_encoder[name] = predict_logits(encoder_model(name, config), windows.ids, tokenizer.pad_id)
        log.info("embedded %d windows with %s in %.0f s", len(windows.ids), name, time.monotonic() - started)
    group_of = {text: i for i, text in enumerate(dict.fromkeys(p.text for p in poems))}
    return Embedded(
        by_encoder,
        windows,
        np.array([p.label for p in poems]),
        np.array([group_of[p.text] for p in poems]),
    )


def fit_and_score(
    emb: Embedded, encoder: str, c: float, train: np.ndarray, held: np.ndarray, classes: int
) -> np.ndarray:
    """Per-poem softmax scores of ``held`` from a probe fitted on the windows of ``train``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, owner = emb.by_encoder[encoder], emb.windows.owner
    fit_rows, score_rows = np.isin(owner, train), np.isin(owner, held)
    counts = np.maximum(np.bincount(emb.labels[train], minlength=classes), 1)
    class_weight = len(train) / (classes * counts)
    per_poem = np.bincount(owner[fit_rows], minlength=len(emb.labels))
    weights = class_weight[emb.labels[owner[fit_rows]]] / per_poem[owner[fit_rows]]
    scaler = StandardScaler().fit(x[fit_rows])
    probe = LogisticRegression(C=c, max_iter=5000)
    probe.fit(scaler.transform(x[fit_rows]), emb.labels[owner[fit_rows]], sample_weight=weights)
    window_probs = np.zeros((int(score_rows.sum()), classes))
    window_probs[:, probe.classes_] = probe.predict_proba(scaler.transform(x[score_rows]))
    # The held-out windows, owned by positions in ``held`` (sorted), aggregated per poem.
    sub = Windows([], np.searchsorted(held, owner[score_rows]), emb.windows.content_tokens[score_rows], 0)
    return sub.aggregate(window_probs, len(held), ProblemType.SINGLE_LABEL)


def macro_f1(scores: np.ndarray, targets: np.ndarray, labels: tuple[str, ...]) -> float:
    return singlelabel_report(scores, targets, labels)["macro_f1"]


def nested_cv(
    emb: Embedded,
    labels: tuple[str, ...],
    folds: list[tuple[list[int], list[int]]],
    grid: tuple[float, ...] = C_GRID,
    inner_folds: int = INNER_FOLDS,
) -> dict:
    """Outer folds report; inner folds of each outer training set choose encoder and C."""
    from sklearn.model_selection import StratifiedGroupKFold

    classes = len(labels)
    oof = np.zeros((len(emb.labels), classes))
    chosen = []
    for train, held in folds:
        train, held = np.array(sorted(train)), np.array(sorted(held))
        inner = StratifiedGroupKFold(inner_folds, shuffle=True, random_state=7)
        splits = list(inner.split(train, emb.labels[train], emb.groups[train]))
        best = None
        for encoder, c in itertools.product(emb.by_encoder, grid):
            inner_scores = np.zeros((len(train), classes))
            for fit_i, score_i in splits:
                inner_scores[score_i] = fit_and_score(
                    emb, encoder, c, train[np.sort(fit_i)], train[np.sort(score_i)], classes
                )
            score = macro_f1(inner_scores, emb.labels[train], labels)
            if best is None or score > best["inner_macro_f1"]:
                best = {"encoder": encoder, "C": c, "inner_macro_f1": round(score, 4)}
        oof[held] = fit_and_score(emb, best["encoder"], best["C"], train, held, classes)
        best["outer_macro_f1"] = round(macro_f1(oof[held], emb.labels[held], labels), 4)
        chosen.append(best)
        log.info("outer fold %d: %s", len(chosen), best)
    pooled = singlelabel_report(oof, emb.labels, labels)
    return {
        "macro_f1": round(pooled["macro_f1"], 4),
        "mean_fold_macro_f1": round(float(np.mean([c["outer_macro_f1"] for c in chosen])), 4),
        "weighted_f1": round(pooled["weighted_f1"], 4),
        "accuracy": round(pooled["accuracy"], 4),
        "per_fold": chosen,
    }


def encoder_digest(name: str) -> str:
    """Which weights an encoder was: the base package, or a digest of a committed model's file."""
    if name == "base":
        return "base package"
    weights = (MODELS_DIR / name / "weights.safetensors").read_bytes()
    return "sha256:" + hashlib.sha256(weights).hexdigest()[:16]


def run(
    data_dir: Path = DEFAULT_DATA_DIR,
    models_dir: Path = MODELS_DIR,
    encoders: tuple[str, ...] = ENCODERS,
    grid: tuple[float, ...] = C_GRID,
    limit: int = 0,
) -> Path:
    """Embed, run the nested cross-validation and write the poems model's experiment record."""
    config = TrainConfig.for_model("poems")
    started = time.monotonic()
    data = load_perc(data_dir)
    poems = data.poems[:limit] if limit else data.poems
    emb = embed(config, poems, encoders)
    folds = perc_folds(poems, folds=5 if not limit else 3)
    result = nested_cv(emb, data.labels, folds, grid, INNER_FOLDS if not limit else 2)
    record = {
        "name": RECORD,
        "description": (
            "frozen encoder + class-weighted logistic regression on its pooled windows; encoder and C "
            "chosen per outer fold by inner 4-fold CV"
        ),
        "command": "make probes",
        "kind": "nested cross-validation",
        "encoders": {name: encoder_digest(name) for name in encoders},
        "grid": {"C": list(grid)},
        "crossval": result,
        "train_seconds": round(time.monotonic() - started),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": cpu_summary(),
    }
    path = models_dir / "poems" / "experiments" / f"{RECORD}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    log.info("nested CV macro-F1 %.3f; recorded in %s", result["macro_f1"], path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.manual_seed(0)
    run(args.data_dir)


if __name__ == "__main__":
    main()
