"""Held-out scoring of cross-validation folds, shared by the fold runs and evaluation.

``crossval.json`` records each poem's out-of-fold scores (train/crossval.py writes it);
evaluation recomputes the served fold from the committed weights and checks it against
that record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotionaware.scores import to_scores
from emotionaware.tokenization import TextTokenizer
from train.model import base_model_path, load_artifact
from train.predict import predict_logits
from train.windows import text_windows

CROSSVAL = "crossval.json"


def held_out_scores(model_dir: Path, texts: list[str]) -> np.ndarray:
    """Per-poem softmax scores of the artifact in ``model_dir``, windows aggregated like the gateway."""
    model, manifest = load_artifact(model_dir)
    tokenizer = TextTokenizer(base_model_path(manifest.base) / "tokenizer.json", manifest.max_length)
    windows = text_windows(tokenizer, texts)
    probs = to_scores(predict_logits(model, windows.ids, tokenizer.pad_id), manifest.problem_type)
    return windows.aggregate(probs, len(texts), manifest.problem_type)
