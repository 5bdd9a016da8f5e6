"""Recompute every reported metric from a committed artifact (dev-tuned thresholds, test report)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from emotionaware.artifact import METRICS, THRESHOLDS, ArtifactManifest
from emotionaware.context import format_context
from emotionaware.scores import to_scores
from emotionaware.taxonomy import EKMAN_MAPPING, SENTIMENT_MAPPING
from gateway.tokenization import TextTokenizer
from train.card import write_model_card, write_single_label_card
from train.data import DEFAULT_DATA_DIR, ConversationExample, MultiLabelExample, load_goemotions, load_meld
from train.metrics import multilabel_report, singlelabel_report, tune_thresholds
from train.model import base_model_path, load_artifact
from train.predict import predict_logits


def multi_hot(examples: list[MultiLabelExample], num_labels: int) -> np.ndarray:
    targets = np.zeros((len(examples), num_labels), dtype=int)
    for row, example in enumerate(examples):
        targets[row, list(example.labels)] = 1
    return targets


def load_for_eval(model_dir: Path, data_dir: Path, loader):
    """The rebuilt model, its manifest, the gateway's tokenizer for it, and its dataset."""
    model, manifest = load_artifact(model_dir)
    # The gateway's tokenizer: metrics describe exactly what serving feeds the model.
    tokenizer = TextTokenizer(base_model_path(manifest.base) / "tokenizer.json", manifest.max_length)
    data = loader(data_dir)
    if tuple(data.labels) != manifest.labels:
        raise ValueError("dataset label list differs from the artifact's")
    return model, manifest, tokenizer, data


def evaluate_goemotions(model_dir: Path, data_dir: Path = DEFAULT_DATA_DIR) -> dict:
    """Tune thresholds on dev, report dev and test; writes thresholds.json and metrics.json."""
    model, manifest, tokenizer, data = load_for_eval(model_dir, data_dir, load_goemotions)

    def scores(examples: list[MultiLabelExample]) -> tuple[np.ndarray, np.ndarray, float]:
        encoded = [tokenizer.encode(e.text) for e in examples]
        truncated = float(np.mean([t.truncated for t in encoded]))
        logits = predict_logits(model, [t.input_ids.tolist() for t in encoded], tokenizer.pad_id)
        return to_scores(logits, manifest.problem_type), multi_hot(examples, len(manifest.labels)), truncated

    dev_probs, dev_targets, dev_trunc = scores(data.dev)
    thresholds = tune_thresholds(dev_probs, dev_targets)
    test_probs, test_targets, test_trunc = scores(data.test)
    views = {"ekman": EKMAN_MAPPING, "sentiment": SENTIMENT_MAPPING}
    metrics = {
        "model": manifest.name,
        "dataset": "goemotions (official splits)",
        "thresholds": "per label, tuned on dev only",
        "dev": multilabel_report(dev_probs, dev_targets, thresholds, manifest.labels, views),
        "test": multilabel_report(test_probs, test_targets, thresholds, manifest.labels, views),
        "truncated_fraction": {"dev": dev_trunc, "test": test_trunc},
        "evaluated_with": {"torch": torch.__version__, "python": platform.python_version()},
    }
    (model_dir / THRESHOLDS).write_text(
        json.dumps(
            # Full precision: the served thresholds must be exactly the evaluated ones.
            {label: float(t) for label, t in zip(manifest.labels, thresholds, strict=True)},
            indent=2,
        )
        + "\n"
    )
    (model_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(model_dir, manifest, metrics)
    return metrics


def evaluate_meld(model_dir: Path, data_dir: Path = DEFAULT_DATA_DIR) -> dict:
    """Softmax model on MELD with dialogue context: the top label is the prediction."""
    model, manifest, tokenizer, data = load_for_eval(model_dir, data_dir, load_meld)

    def report(examples: list[ConversationExample]) -> dict:
        encoded = [
            tokenizer.encode(e.text, format_context(e.previous, e.speaker, manifest.context_turns))
            for e in examples
        ]
        logits = predict_logits(model, [t.input_ids.tolist() for t in encoded], tokenizer.pad_id)
        probs = to_scores(logits, manifest.problem_type)
        return singlelabel_report(probs, np.array([e.label for e in examples]), manifest.labels) | {
            "truncated_fraction": float(np.mean([t.truncated for t in encoded]))
        }

    metrics = {
        "model": manifest.name,
        "dataset": "meld (official splits)",
        "context": f"up to {manifest.context_turns} earlier turns, newest first, within {manifest.max_length} tokens",
        "dev": report(data.dev),
        "test": report(data.test),
        "evaluated_with": {"torch": torch.__version__, "python": platform.python_version()},
    }
    (model_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    write_single_label_card(model_dir, manifest, metrics)
    return metrics


EVALUATORS = {"goemotions": evaluate_goemotions, "meld": evaluate_meld}


def evaluate(model_dir: Path, data_dir: Path = DEFAULT_DATA_DIR) -> dict:
    manifest = ArtifactManifest.load(model_dir)
    if manifest.dataset not in EVALUATORS:
        raise SystemExit(f"no evaluation defined for dataset {manifest.dataset!r} of model {manifest.name!r}")
    return EVALUATORS[manifest.dataset](model_dir, data_dir)
