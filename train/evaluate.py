"""Recompute every reported metric from a committed artifact (dev-tuned thresholds, test report)."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from emotionaware.artifact import (
    METRICS,
    THRESHOLD_TOLERANCE,
    THRESHOLDS,
    ArtifactManifest,
    load_thresholds,
)
from emotionaware.context import format_context
from emotionaware.datasets import (
    DEFAULT_DATA_DIR,
    ConversationExample,
    MultiLabelExample,
    load_goemotions,
    load_meld,
    load_perc,
    multi_hot,
    perc_folds,
)
from emotionaware.scores import to_scores
from emotionaware.taxonomy import EKMAN_MAPPING, SENTIMENT_MAPPING
from emotionaware.tokenization import TextTokenizer
from train import plots
from train.baselines import RECIPE, fit_multi_label, fit_single_label, probabilities
from train.calibration import calibration_report
from train.card import write_model_card, write_poems_card, write_single_label_card
from train.folds import CROSSVAL, held_out_scores
from train.metrics import (
    multilabel_report,
    singlelabel_report,
    threshold_rules,
    tune_thresholds,
    view_decision_rules,
)
from train.model import base_model_path, load_artifact
from train.predict import predict_logits
from train.transfer import meld_transfer
from train.windows import MAX_WINDOWS, OVERLAP_TOKENS, text_windows


def load_for_eval(model_dir: Path, data_dir: Path, loader):
    """The rebuilt model, its manifest, the gateway's tokenizer for it, and its dataset."""
    model, manifest = load_artifact(model_dir)
    # The gateway's tokenizer: metrics describe exactly what serving feeds the model.
    tokenizer = TextTokenizer(base_model_path(manifest.base) / "tokenizer.json", manifest.max_length)
    data = loader(data_dir)
    if tuple(data.labels) != manifest.labels:
        raise ValueError("dataset label list differs from the artifact's")
    return model, manifest, tokenizer, data


def evaluate_goemotions(
    model_dir: Path, data_dir: Path = DEFAULT_DATA_DIR, measure_export: MeasureExport | None = None
) -> dict:
    """Tune thresholds on dev, report dev and test; writes thresholds.json and metrics.json."""
    model, manifest, tokenizer, data = load_for_eval(model_dir, data_dir, load_goemotions)

    def score_texts(texts: list[str]) -> tuple[np.ndarray, float]:
        """Scores of texts read alone, and the share of them truncated."""
        encoded = [tokenizer.encode(t) for t in texts]
        logits = predict_logits(model, [t.input_ids.tolist() for t in encoded], tokenizer.pad_id)
        return to_scores(logits, manifest.problem_type), float(np.mean([t.truncated for t in encoded]))

    def scores(examples: list[MultiLabelExample]) -> tuple[np.ndarray, np.ndarray, float]:
        probs, truncated = score_texts([e.text for e in examples])
        return probs, multi_hot(examples, len(manifest.labels)), truncated

    dev_probs, dev_targets, dev_trunc = scores(data.dev)
    thresholds = kept_thresholds(model_dir, manifest.labels, tune_thresholds(dev_probs, dev_targets))
    test_probs, test_targets, test_trunc = scores(data.test)
    views = {"ekman": EKMAN_MAPPING, "sentiment": SENTIMENT_MAPPING}
    calibration = calibration_report(dev_probs, dev_targets, test_probs, test_targets)

    meld = load_meld(data_dir)
    transfer = meld_transfer(
        lambda texts: score_texts(texts)[0],
        manifest.labels,
        thresholds,
        calibration["temperature"],
        meld.dev,
        meld.test,
    )
    # The reference: the model trained on MELD itself, with context (its own card's figures).
    reference = model_dir.parent / "conversation" / METRICS
    if reference.exists():
        test = json.loads(reference.read_text())["test"]
        transfer["reference"] = {
            "model": "conversation",
            **{k: test[k] for k in ("accuracy", "weighted_f1", "macro_f1")},
        }
    # The baseline: same splits, thresholds tuned on dev the same way, same report code.
    baseline = fit_multi_label([e.text for e in data.train], multi_hot(data.train, len(manifest.labels)))
    base_dev = probabilities(baseline, [e.text for e in data.dev])
    base_thresholds = tune_thresholds(base_dev, dev_targets)
    base_test = probabilities(baseline, [e.text for e in data.test])
    metrics = {
        "model": manifest.name,
        "dataset": "goemotions (official splits)",
        "thresholds": "per label, tuned on dev only",
        "dev": multilabel_report(dev_probs, dev_targets, thresholds, manifest.labels, views),
        "test": multilabel_report(test_probs, test_targets, thresholds, manifest.labels, views),
        "baselines": {
            "tfidf_lr": {
                "recipe": RECIPE + "; per-label thresholds tuned on dev",
                "dev": multilabel_report(base_dev, dev_targets, base_thresholds, manifest.labels, views),
                "test": multilabel_report(base_test, test_targets, base_thresholds, manifest.labels, views),
            }
        },
        "truncated_fraction": {"dev": dev_trunc, "test": test_trunc},
        "calibration": calibration,
        "view_rules": view_decision_rules(
            (dev_probs, dev_targets), (test_probs, test_targets), thresholds, manifest.labels, views
        ),
        "threshold_rules": threshold_rules((dev_probs, dev_targets), (test_probs, test_targets)),
        "meld_transfer": transfer,
        "experiments": experiment_records(model_dir),
        "exported": None,
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
    # After thresholds.json: the served graph is measured at the thresholds just written.
    metrics["exported"] = measure_export(model_dir, data_dir) if measure_export else None
    (model_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    test_preds = (test_probs >= thresholds).astype(int)
    figures = {
        "per_label_f1": plots.per_label_f1(
            model_dir / plots.PER_LABEL_F1,
            metrics["test"]["per_label"],
            metrics["baselines"]["tfidf_lr"]["test"]["per_label"],
            f"{manifest.name}: test F1 per label (dev-tuned thresholds)",
        ),
        "confusion": plots.confusion(
            model_dir / plots.CONFUSION,
            test_targets.T @ test_preds,
            manifest.labels,
            f"{manifest.name}: gold vs predicted labels on test (multi-label)",
            "predicted label (a text may have several)",
        ),
        "thresholds": plots.threshold_table(
            model_dir / plots.THRESHOLD_TABLE,
            [
                (
                    label,
                    float(thresholds[j]),
                    metrics["dev"]["per_label"][label]["f1"],
                    metrics["test"]["per_label"][label]["f1"],
                )
                for j, label in enumerate(manifest.labels)
            ],
            f"{manifest.name}: per-label thresholds (tuned on dev only)",
        ),
    }
    write_model_card(model_dir, manifest, metrics, figures)
    return metrics


def kept_thresholds(model_dir: Path, labels: tuple[str, ...], tuned: np.ndarray) -> np.ndarray:
    """The committed thresholds when tuning again lands within the export's tolerance of them.

    Tuned once: a re-run on another CPU moves dev scores by about 1e-7 and would rewrite every
    threshold in its last digits; the committed values stay unless the model's scores changed.
    """
    if not (model_dir / THRESHOLDS).exists():
        return tuned
    committed = np.asarray(load_thresholds(model_dir, labels))
    return committed if float(np.abs(tuned - committed).max()) <= THRESHOLD_TOLERANCE else tuned


def conversation_scores(
    model,
    manifest: ArtifactManifest,
    tokenizer: TextTokenizer,
    examples: list[ConversationExample],
    turns: int,
) -> tuple[np.ndarray, float]:
    """Scores of every utterance read with up to ``turns`` earlier turns, and the share truncated."""
    encoded = [tokenizer.encode(e.text, format_context(e.previous, e.speaker, turns)) for e in examples]
    logits = predict_logits(model, [t.input_ids.tolist() for t in encoded], tokenizer.pad_id)
    return to_scores(logits, manifest.problem_type), float(np.mean([t.truncated for t in encoded]))


def evaluate_meld(
    model_dir: Path, data_dir: Path = DEFAULT_DATA_DIR, measure_export: MeasureExport | None = None
) -> dict:
    """Softmax model on MELD with dialogue context: the top label is the prediction.

    Reported next to it: the same weights given the utterance alone (what context adds at
    inference), the same recipe trained without context (the ablation, from its recorded
    scores) and the TF-IDF baseline on the utterance.
    """
    model, manifest, tokenizer, data = load_for_eval(model_dir, data_dir, load_meld)

    def report(examples: list[ConversationExample], turns: int) -> dict:
        probs, truncated = conversation_scores(model, manifest, tokenizer, examples, turns)
        return singlelabel_report(probs, np.array([e.label for e in examples]), manifest.labels) | {
            "truncated_fraction": truncated
        }

    baseline = fit_single_label(
        [e.text for e in data.train], np.array([e.label for e in data.train]), len(data.labels)
    )
    baselines = {
        "tfidf_lr": {
            "recipe": RECIPE + "; the utterance alone",
            **{
                split: singlelabel_report(
                    probabilities(baseline, [e.text for e in examples]),
                    np.array([e.label for e in examples]),
                    manifest.labels,
                )
                for split, examples in (("dev", data.dev), ("test", data.test))
            },
        },
    }
    if manifest.context_turns:
        baselines["same_weights_no_context"] = {
            "recipe": "this model's weights given the utterance alone (no retraining)",
            "dev": report(data.dev, 0),
            "test": report(data.test, 0),
        }
    for path in sorted((model_dir / ABLATIONS).glob("*.json")) if (model_dir / ABLATIONS).is_dir() else ():
        baselines[path.stem] = ablation_report(path, data)
    metrics = {
        "model": manifest.name,
        "dataset": "meld (official splits)",
        "context": f"up to {manifest.context_turns} earlier turns, newest first, within {manifest.max_length} tokens",
        "dev": report(data.dev, manifest.context_turns),
        "test": report(data.test, manifest.context_turns),
        "baselines": baselines,
        "experiments": experiment_records(model_dir),
        "exported": measure_export(model_dir, data_dir) if measure_export else None,
        "evaluated_with": {"torch": torch.__version__, "python": platform.python_version()},
    }
    (model_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    figures = single_label_figures(model_dir, manifest.name, manifest.labels, metrics["test"],
                                   metrics["baselines"]["tfidf_lr"]["test"], "test")  # fmt: skip
    write_single_label_card(model_dir, manifest, metrics, figures)
    return metrics


# Experiment records of a model's recipes (train.run.record_experiment), one JSON file each.
EXPERIMENTS = "experiments"


def experiment_records(model_dir: Path) -> list[dict]:
    """Every recorded run of this model's recipes, oldest first (each file is one training run)."""
    folder = model_dir / EXPERIMENTS
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(records, key=lambda r: r["date"])


# Recorded scores of ablation runs (train.run.record_ablation), one JSON file per ablation.
ABLATIONS = "ablations"


def ablation_report(path: Path, data) -> dict:
    """Metrics of an ablation from its recorded dev and test scores (the weights are not kept)."""
    record = json.loads(path.read_text())
    report = {"recipe": record["recipe"], "command": record["command"]}
    for split in ("dev", "test"):
        examples = getattr(data, split)
        if record["ids"][split] != [e.id for e in examples]:
            raise ValueError(f"{path}: recorded {split} scores are not in the dataset's order")
        report[split] = singlelabel_report(
            np.asarray(record["scores"][split]), np.array([e.label for e in examples]), data.labels
        )
    return report


def single_label_figures(
    model_dir: Path, name: str, labels, split: dict, baseline: dict, split_name: str
) -> dict:
    return {
        "per_label_f1": plots.per_label_f1(
            model_dir / plots.PER_LABEL_F1, split["per_label"], baseline["per_label"],
            f"{name}: {split_name} F1 per label",
        ),
        "confusion": plots.confusion(
            model_dir / plots.CONFUSION, split["confusion_matrix"], labels,
            f"{name}: confusion matrix ({split_name})", "predicted label (argmax)",
        ),
    }  # fmt: skip


def evaluate_perc(
    model_dir: Path, data_dir: Path = DEFAULT_DATA_DIR, measure_export: MeasureExport | None = None
) -> dict:
    """Cross-validated poem classification against TF-IDF + LR on the same folds.

    The cross-validated metrics are recomputed from the out-of-fold scores recorded by the
    training run (``crossval.json``); the first fold is recomputed from the committed weights
    and must match them, which ties the record to the artifact.
    """

    manifest = ArtifactManifest.load(model_dir)
    data = load_perc(data_dir)
    record = json.loads((model_dir / CROSSVAL).read_text())
    folds = perc_folds(data.poems)
    if record["held_out_ids"] != [[data.poems[i].id for i in held] for _, held in folds]:
        raise ValueError(
            f"{model_dir / CROSSVAL}: folds differ from emotionaware.datasets.perc_folds on this data"
        )
    targets = np.array([p.label for p in data.poems])
    recorded = np.array([row if row is not None else [np.nan] * len(data.labels) for row in record["scores"]])
    first = folds[0][1]
    served = held_out_scores(model_dir, [data.poems[i].text for i in first])
    drift = float(np.abs(served - recorded[first]).max())
    if drift > 1e-3:
        raise ValueError(
            f"committed weights do not reproduce the recorded fold-1 scores (max difference {drift:.4f})"
        )
    baseline_oof = np.zeros_like(recorded)
    for train_index, held in folds:
        fitted = fit_single_label(
            [data.poems[i].text for i in train_index], targets[train_index], len(data.labels)
        )
        baseline_oof[held] = probabilities(fitted, [data.poems[i].text for i in held])
    trained = ~np.isnan(recorded).any(axis=1)

    def cv_report(scores: np.ndarray) -> dict:
        per_fold = [
            singlelabel_report(scores[h], targets[h], data.labels)["macro_f1"]
            for _, h in folds
            if trained[h].all()
        ]
        return singlelabel_report(scores[trained], targets[trained], data.labels) | {
            "per_fold_macro_f1": per_fold,
            "mean_fold_macro_f1": float(np.mean(per_fold)),
        }

    tokenizer = TextTokenizer(base_model_path(manifest.base) / "tokenizer.json", manifest.max_length)
    windows = text_windows(tokenizer, [p.text for p in data.poems])
    metrics = {
        "model": manifest.name,
        "dataset": f"perc, {len(folds)}-fold cross-validation ({record['split']})",
        "long_texts": (
            f"windows of {manifest.max_length} tokens overlapping by {OVERLAP_TOKENS}, at most {MAX_WINDOWS} per "
            "poem, softmax scores averaged weighted by each window's tokens"
        ),
        "windows_per_poem": {
            "mean": float(len(windows.ids) / len(data.poems)),
            "max": int(np.bincount(windows.owner).max()),
            "poems_over_one_window": int((np.bincount(windows.owner) > 1).sum()),
            "poems_cut_at_max_windows": windows.dropped,
        },
        "folds_trained": record["folds_trained"],
        "crossval": cv_report(recorded),
        "served_fold": {
            "note": "the served artifact is fold 1's model; these poems were held out from its training",
            **singlelabel_report(served, targets[first], data.labels),
        },
        "baselines": {"tfidf_lr": {"recipe": RECIPE, "crossval": cv_report(baseline_oof)}},
        # Every fold's epochs: what the served recipe's cross-validation cost to train.
        "crossval_train_seconds": round(sum(e["seconds"] for f in record["train_logs"] for e in f["epochs"])),
        "crossval_machine": record["train_logs"][0].get("machine", ""),
        "experiments": experiment_records(model_dir),
        "exported": measure_export(model_dir, data_dir) if measure_export else None,
        "evaluated_with": {"torch": torch.__version__, "python": platform.python_version()},
    }
    (model_dir / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    figures = single_label_figures(model_dir, manifest.name, manifest.labels, metrics["crossval"],
                                   metrics["baselines"]["tfidf_lr"]["crossval"], "cross-validated")  # fmt: skip
    write_poems_card(model_dir, manifest, metrics, figures)
    return metrics


# Measures the served graph of an artifact and records it (model_dir, data_dir) -> report.
MeasureExport = Callable[[Path, Path], dict]

EVALUATORS = {"goemotions": evaluate_goemotions, "meld": evaluate_meld, "perc": evaluate_perc}


def evaluate(
    model_dir: Path, data_dir: Path = DEFAULT_DATA_DIR, measure_export: MeasureExport | None = None
) -> dict:
    """Recompute and write metrics.json, the model card and its figures for ``model_dir``.

    ``measure_export`` (export.serving_record.measure_served_graph, passed in by the command
    lines in launcher/models.py) runs the real export and records the served graph's scores
    in ``serving.json``; without it (smoke runs, unit tests) the card has no export section.
    """
    manifest = ArtifactManifest.load(model_dir)
    if manifest.dataset not in EVALUATORS:
        raise SystemExit(f"no evaluation defined for dataset {manifest.dataset!r} of model {manifest.name!r}")
    return EVALUATORS[manifest.dataset](model_dir, data_dir, measure_export)
