"""Cross-validated training for datasets without an official split (PERC poems).

One model per fold is trained with the config's fixed recipe (no epoch selection: there is no
dev split to select on), each scores its held-out poems, and the out-of-fold scores of all
folds give the cross-validated metrics. The TF-IDF baseline is scored on the same folds by
``train.evaluate``. The first fold's model is the served artifact, so ``make eval`` can
recompute that fold's held-out scores from the committed weights and check them against the
ones recorded here.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from emotionaware.datasets import load_perc, perc_folds
from emotionaware.tokenization import TextTokenizer
from train.config import TrainConfig
from train.evaluate import MeasureExport, evaluate
from train.fitting import TASKS, fit, write_artifact
from train.folds import CROSSVAL, held_out_scores
from train.model import base_model_path

log = logging.getLogger("train")


def cross_validate(
    config: TrainConfig,
    out_dir: Path,
    data_dir: Path,
    limit_train: int = 0,
    measure_export: MeasureExport | None = None,
) -> dict:
    """Train every fold, write the first fold's artifact and ``crossval.json``, then evaluate.

    ``limit_train`` (smoke runs) trains on that many poems of the first fold only.
    """
    if config.train.select_best_epoch:
        # Each fold's only unseen poems are its held-out ones: selecting an epoch on them
        # would tune on the test fold.
        raise SystemExit(
            f"{config.name}: cross-validated recipes keep the last epoch; set select_best_epoch = false"
        )
    data = load_perc(data_dir)
    folds = perc_folds(data.poems)
    tokenizer = TextTokenizer(base_model_path(config.base) / "tokenizer.json", config.train.max_length)
    out_dir.mkdir(parents=True, exist_ok=True)
    oof = np.full((len(data.poems), len(data.labels)), np.nan)
    logs = []
    for fold, (_, held_out) in enumerate(folds[:1] if limit_train else folds):
        task = TASKS[config.dataset](config, tokenizer, data_dir, limit_train, fold)
        model, fold_log = fit(config, task, tokenizer)
        logs.append({"fold": fold + 1, **fold_log})
        # Scores come from the written fp16 artifact, as they would be served.
        with tempfile.TemporaryDirectory() as tmp:
            target = out_dir if fold == 0 else Path(tmp)
            write_artifact(config, task, model, logs[-1], target)
            oof[held_out] = held_out_scores(target, [data.poems[i].text for i in held_out])
        log.info("fold %d of %d done", fold + 1, len(folds))
    record = {
        "dataset": "perc",
        "folds": len(folds),
        "folds_trained": len(logs),
        "split": "stratified by label, identical poems kept in one fold (emotionaware.datasets.perc_folds)",
        "held_out_ids": [[data.poems[i].id for i in held] for _, held in folds],
        # Out-of-fold softmax scores, one row per poem in file order (null: fold not trained).
        "scores": [None if np.isnan(row).any() else [round(float(v), 6) for v in row] for row in oof],
        "train_logs": logs,
    }
    (out_dir / CROSSVAL).write_text(json.dumps(record, indent=1) + "\n")
    return evaluate(out_dir, data_dir, None if limit_train else measure_export)
