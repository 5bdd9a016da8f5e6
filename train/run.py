"""Fine-tune a classifier from its config and write the compact artifact.

Training keeps the word embeddings frozen (they are most of the encoder's parameters and
barely move in a short fine-tune), so the committed artifact can leave them out and take
them back from the base package. The epoch with the best dev macro-F1 is kept.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from emotionaware.artifact import ArtifactManifest
from emotionaware.scores import to_scores
from train.batching import training_batches
from train.config import TrainConfig
from train.data import DEFAULT_DATA_DIR, load_goemotions
from train.evaluate import evaluate, multi_hot
from train.metrics import multilabel_report, tune_thresholds
from train.model import FROZEN_PARAMETERS, build_from_base, load_tokenizer, save_artifact
from train.predict import predict_logits

log = logging.getLogger("train")


def seed_everything(seed: int) -> random.Random:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return random.Random(seed)


def train_goemotions(
    config: TrainConfig, out_dir: Path, data_dir: Path = DEFAULT_DATA_DIR, limit_train: int = 0
) -> dict:
    """Fine-tune on GoEmotions train, select the epoch on dev, write and evaluate the artifact."""
    params = config.train
    rng = seed_everything(params.seed)
    data = load_goemotions(data_dir)
    train_set = data.train[:limit_train] if limit_train else data.train
    tokenizer = load_tokenizer(config.base)

    def encode(ex):
        return tokenizer([e.text for e in ex], truncation=True, max_length=params.max_length)["input_ids"]

    train_ids, dev_ids = encode(train_set), encode(data.dev)
    train_targets = torch.tensor(multi_hot(train_set, len(data.labels)), dtype=torch.float32)
    dev_targets = multi_hot(data.dev, len(data.labels))

    model = build_from_base(config.base, len(data.labels), params.dropout)
    frozen = {name.removeprefix("encoder.") for name in FROZEN_PARAMETERS}
    for name, param in model.encoder.named_parameters():
        param.requires_grad = name not in frozen
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": params.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=params.learning_rate,
    )
    steps_per_epoch = math.ceil(len(train_ids) / params.batch_size)
    total = steps_per_epoch * params.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(params.warmup_ratio * total), total)
    loss_fn = nn.BCEWithLogitsLoss()

    out_dir.mkdir(parents=True, exist_ok=True)
    history, best_f1, best_state = [], -1.0, None
    for epoch in range(1, params.epochs + 1):
        model.train()
        started, running = time.monotonic(), 0.0
        batches = training_batches(
            train_ids, params.batch_size, params.length_pool_batches, rng, tokenizer.pad_token_id
        )
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{params.epochs}", unit="batch")
        for step, batch in enumerate(bar, 1):
            logits = model(batch.input_ids, batch.attention_mask)
            loss = loss_fn(logits, train_targets[batch.index])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            running += loss.item()
            bar.set_postfix(loss=f"{running / step:.4f}")
        dev_probs = to_scores(predict_logits(model, dev_ids, tokenizer.pad_token_id), config.problem_type)
        thresholds = tune_thresholds(dev_probs, dev_targets)
        dev = multilabel_report(dev_probs, dev_targets, thresholds, data.labels)
        entry = {
            "epoch": epoch,
            "train_loss": running / steps_per_epoch,
            "dev_macro_f1": dev["macro_f1"],
            "dev_micro_f1": dev["micro_f1"],
            "seconds": round(time.monotonic() - started, 1),
        }
        history.append(entry)
        log.info("epoch %d: %s", epoch, json.dumps(entry))
        if dev["macro_f1"] > best_f1:
            best_f1, best_state = dev["macro_f1"], copy.deepcopy(model.state_dict())

    model.load_state_dict(best_state)
    manifest = ArtifactManifest(
        name=config.name,
        dataset=config.dataset,
        base=config.base,
        labels=data.labels,
        problem_type=config.problem_type,
        max_length=params.max_length,
        dropout=params.dropout,
    )
    save_artifact(model, manifest, out_dir)
    summary = {
        "config": config.name,
        "train_examples": len(train_ids),
        "epochs": history,
        "selected_epoch": max(history, key=lambda h: h["dev_macro_f1"])["epoch"],
    }
    (out_dir / "train_log.json").write_text(json.dumps(summary, indent=2) + "\n")
    # Metrics come from the saved (fp16) artifact, exactly what export and serving rebuild.
    return evaluate(out_dir, data_dir)


def train(
    config: TrainConfig, out_dir: Path, data_dir: Path = DEFAULT_DATA_DIR, limit_train: int = 0
) -> dict:
    if config.dataset == "goemotions":
        return train_goemotions(config, out_dir, data_dir, limit_train)
    raise SystemExit(f"no training recipe for dataset {config.dataset!r}")
