"""``emotionaware-train`` and ``emotionaware-eval``: training and evaluation runs that also
measure the served graph (export), which is why they live above both train/ and export/."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from emotionaware.datasets import DEFAULT_DATA_DIR
from emotionaware.paths import MODELS_DIR
from train.config import TrainConfig


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="goemotions", help="model name (train/configs/<name>.toml)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder holding goemotions/, meld/, perc/ (default: %(default)s)",
    )


def train_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fine-tune an emotion model and write its compact artifact.")
    _common(parser)
    parser.add_argument("--out", type=Path, help="artifact folder (default: models/<model>)")
    parser.add_argument("--epochs", type=int, help="override the config's epoch count")
    parser.add_argument(
        "--feedback", help="mix this feedback export (emotionaware-feedback export) into the training split"
    )
    parser.add_argument(
        "--limit-train", type=int, default=0, help="train on the first N examples only (smoke runs; 0 = all)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = TrainConfig.for_model(args.model).with_overrides(epochs=args.epochs, feedback_file=args.feedback)
    from export.serving_record import measure_served_graph  # torch import is slow; keep --help fast
    from train.run import train

    # Ablations and experiments are not served: their weights go to build/, only their scores into models/.
    default_out = (
        MODELS_DIR.parent / "build" if config.ablation_of or config.experiment_of else MODELS_DIR
    ) / args.model
    out = args.out or default_out
    metrics = train(config, out, args.data_dir, args.limit_train, measure_export=measure_served_graph)
    headline_split = metrics.get("test") or metrics["crossval"]
    print(json.dumps({k: v for k, v in headline_split.items() if k.endswith(("_f1", "accuracy"))}, indent=2))


def eval_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Recompute a model's metrics from its committed artifact.")
    _common(parser)
    parser.add_argument("--model-dir", type=Path, help="artifact folder (default: models/<model>)")
    args = parser.parse_args(argv)
    from export.serving_record import measure_served_graph
    from train.evaluate import evaluate

    metrics = evaluate(args.model_dir or MODELS_DIR / args.model, args.data_dir, measure_served_graph)
    print(
        headline(metrics["test"]) if "test" in metrics else headline(metrics["crossval"], "cross-validated")
    )


def headline(test: dict, split: str = "test") -> str:
    """One line with a split's main metrics, whichever kind of model produced them."""
    parts = [f"{name} {test[key]:.4f}" for key, name in
             (("macro_f1", "macro-F1"), ("micro_f1", "micro-F1"), ("weighted_f1", "weighted-F1"),
              ("accuracy", "accuracy")) if key in test]  # fmt: skip
    if "ekman" in test.get("views", {}):
        parts.append(f"ekman macro-F1 {test['views']['ekman']['macro_f1']:.4f}")
    return f"{split} " + "  ".join(parts)
