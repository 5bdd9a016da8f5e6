"""Fine-tune a classifier from its config, write the compact artifact and evaluate it.

The recipes and the training loop are in train/fitting.py; cross-validated datasets train
one model per fold in train/crossval.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from emotionaware.datasets import DEFAULT_DATA_DIR, load_meld
from emotionaware.machine import cpu_summary
from emotionaware.paths import MODELS_DIR
from emotionaware.tokenization import TextTokenizer
from train.config import TrainConfig
from train.crossval import cross_validate
from train.evaluate import ABLATIONS, EXPERIMENTS, MeasureExport, conversation_scores, evaluate, load_for_eval
from train.fitting import TASKS, fit, write_artifact
from train.model import (
    base_model_path,
)

log = logging.getLogger("train")

# Datasets without an official split: trained and scored per cross-validation fold.
CROSS_VALIDATED = {"perc"}


def train(
    config: TrainConfig,
    out_dir: Path,
    data_dir: Path = DEFAULT_DATA_DIR,
    limit_train: int = 0,
    models_dir: Path = MODELS_DIR,
    measure_export: MeasureExport | None = None,
) -> dict:
    """Fine-tune on the config's dataset, keep the best dev epoch, write and evaluate the artifact.

    Cross-validated datasets train one model per fold (train.crossval); the first fold's model
    is the artifact.
    """
    if config.dataset not in TASKS:
        raise SystemExit(f"no training recipe for dataset {config.dataset!r}; known: {', '.join(TASKS)}")
    if config.dataset in CROSS_VALIDATED:
        return cross_validate(config, out_dir, data_dir, limit_train, measure_export)
    tokenizer = TextTokenizer(base_model_path(config.base) / "tokenizer.json", config.train.max_length)
    task = TASKS[config.dataset](config, tokenizer, data_dir, limit_train)
    model, log_entry = fit(config, task, tokenizer)
    write_artifact(config, task, model, log_entry, out_dir)
    if config.ablation_of:
        record_ablation(config, out_dir, data_dir, log_entry, models_dir)
    # Metrics come from the saved (fp16) artifact, exactly what export and serving rebuild.
    # Smoke runs skip the export measurement: an untrained model is not expected to pass it.
    metrics = evaluate(out_dir, data_dir, None if limit_train or config.experiment_of else measure_export)
    if config.experiment_of:
        record_experiment(config, metrics, log_entry, models_dir)
    return metrics


def experiment_record(config: TrainConfig, metrics: dict, log_entry: dict, machine: str) -> dict:
    """One row of a model card's experiment table: the recipe, dev and test headline, train time."""

    def headline(split: dict) -> dict:
        if "views" not in split:  # single-label (MELD): the weighted-F1 it is chosen on
            return {k: round(split[k], 4) for k in ("weighted_f1", "macro_f1", "accuracy")}
        return {
            "macro_f1": round(split["macro_f1"], 4),
            "micro_f1": round(split["micro_f1"], 4),
            "ekman_macro_f1": round(split["views"]["ekman"]["macro_f1"], 4),
        }

    feedback = log_entry.get("feedback_examples", 0)
    return {
        "name": config.name,
        "description": config.description + (f" ({feedback} feedback examples)" if feedback else ""),
        "command": f"make train MODEL={config.name}"
        + (f" FEEDBACK={config.train.feedback_file}" if config.train.feedback_file else ""),
        "train": dataclasses.asdict(config.train),
        "dev": headline(metrics["dev"]),
        "test": headline(metrics["test"]),
        "train_seconds": round(sum(e["seconds"] for e in log_entry["epochs"])),
        "selected": {
            "epoch": log_entry["selected_epoch"],
            "weights": log_entry.get("selected_weights", "trained"),
        },
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine,
    }


def record_experiment(
    config: TrainConfig, metrics: dict, log_entry: dict, models_dir: Path = MODELS_DIR
) -> Path:
    """Keep an experiment's headline figures next to the model whose recipe it varies.

    Its weights are not committed (only the chosen recipe is served); ``make eval`` of that
    model lists every record in its card's experiment table, chosen on dev.
    """
    if config.dataset not in ("goemotions", "meld"):
        raise SystemExit("experiment records are kept for GoEmotions and MELD models only")
    record = experiment_record(config, metrics, log_entry, cpu_summary())
    path = models_dir / config.experiment_of / EXPERIMENTS / f"{config.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    log.info("experiment recorded in %s", path)
    return path


def record_ablation(
    config: TrainConfig, out_dir: Path, data_dir: Path, log_entry: dict, models_dir: Path = MODELS_DIR
) -> Path:
    """Keep an ablation's dev and test scores next to the model it ablates.

    The weights are not committed (they are not served); the scores let ``make eval`` of the
    ablated model report both side by side with one report function.
    """
    if config.dataset != "meld":
        raise SystemExit("ablations are recorded for MELD conversation models only")
    model, manifest, tokenizer, data = load_for_eval(out_dir, data_dir, load_meld)
    record = {
        "recipe": config.description,
        "command": f"make train MODEL={config.name} OUT=build/{config.name}",
        "train_log": log_entry,
        "ids": {},
        "scores": {},
    }
    for split in ("dev", "test"):
        examples = getattr(data, split)
        probs, _ = conversation_scores(model, manifest, tokenizer, examples, manifest.context_turns)
        record["ids"][split] = [e.id for e in examples]
        record["scores"][split] = [[round(float(v), 6) for v in row] for row in probs]
    path = models_dir / config.ablation_of / ABLATIONS / f"{config.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    log.info("ablation scores recorded in %s", path)
    return path
