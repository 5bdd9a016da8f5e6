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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from emotionaware.artifact import ArtifactManifest
from emotionaware.context import format_context
from emotionaware.scores import to_scores
from gateway.tokenization import TextTokenizer
from train.batching import training_batches
from train.config import TrainConfig
from train.data import DEFAULT_DATA_DIR, load_goemotions, load_meld
from train.evaluate import evaluate, multi_hot
from train.metrics import multilabel_report, singlelabel_report, tune_thresholds
from train.model import FROZEN_PARAMETERS, base_model_path, build_from_base, save_artifact
from train.predict import predict_logits

log = logging.getLogger("train")


def seed_everything(seed: int) -> random.Random:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return random.Random(seed)


@dataclass(frozen=True)
class Task:
    """A dataset prepared for fine-tuning: token ids, targets and the dev metric for selection."""

    labels: tuple[str, ...]
    train_ids: list[list[int]]
    train_targets: torch.Tensor  # float multi-hot (multi-label) or long class indices
    dev_ids: list[list[int]]
    dev_score: Callable[[np.ndarray], dict]  # dev scores -> {"select": metric, ...}
    loss: nn.Module


def goemotions_task(config: TrainConfig, tokenizer: TextTokenizer, data_dir: Path, limit: int) -> Task:
    data = load_goemotions(data_dir)
    train_set = data.train[:limit] if limit else data.train
    dev_targets = multi_hot(data.dev, len(data.labels))

    def dev_score(probs: np.ndarray) -> dict:
        report = multilabel_report(probs, dev_targets, tune_thresholds(probs, dev_targets), data.labels)
        return {
            "select": report["macro_f1"],
            "dev_macro_f1": report["macro_f1"],
            "dev_micro_f1": report["micro_f1"],
        }

    return Task(
        labels=data.labels,
        train_ids=[tokenizer.encode(e.text).input_ids.tolist() for e in train_set],
        train_targets=torch.tensor(multi_hot(train_set, len(data.labels)), dtype=torch.float32),
        dev_ids=[tokenizer.encode(e.text).input_ids.tolist() for e in data.dev],
        dev_score=dev_score,
        loss=nn.BCEWithLogitsLoss(),
    )


def meld_task(config: TrainConfig, tokenizer: TextTokenizer, data_dir: Path, limit: int) -> Task:
    data = load_meld(data_dir)
    train_set = data.train[:limit] if limit else data.train
    turns = config.train.context_turns
    encode = lambda ex: [  # noqa: E731
        tokenizer.encode(e.text, format_context(e.previous, e.speaker, turns)).input_ids.tolist() for e in ex
    ]
    dev_targets = np.array([e.label for e in data.dev])

    def dev_score(probs: np.ndarray) -> dict:
        report = singlelabel_report(probs, dev_targets, data.labels)
        return {
            "select": report["weighted_f1"],
            "dev_weighted_f1": report["weighted_f1"],
            "dev_macro_f1": report["macro_f1"],
        }

    return Task(
        labels=data.labels,
        train_ids=encode(train_set),
        train_targets=torch.tensor([e.label for e in train_set], dtype=torch.long),
        dev_ids=encode(data.dev),
        dev_score=dev_score,
        loss=nn.CrossEntropyLoss(),
    )


TASKS: dict[str, Callable[[TrainConfig, TextTokenizer, Path, int], Task]] = {
    "goemotions": goemotions_task,
    "meld": meld_task,
}


def train(
    config: TrainConfig, out_dir: Path, data_dir: Path = DEFAULT_DATA_DIR, limit_train: int = 0
) -> dict:
    """Fine-tune on the config's dataset, keep the best dev epoch, write and evaluate the artifact."""
    if config.dataset not in TASKS:
        raise SystemExit(f"no training recipe for dataset {config.dataset!r}; known: {', '.join(TASKS)}")
    params = config.train
    rng = seed_everything(params.seed)
    # The gateway's tokenizer: training sees exactly the token ids serving will send.
    tokenizer = TextTokenizer(base_model_path(config.base) / "tokenizer.json", params.max_length)
    task = TASKS[config.dataset](config, tokenizer, data_dir, limit_train)
    train_ids, dev_ids, train_targets = task.train_ids, task.dev_ids, task.train_targets

    model = build_from_base(config.base, len(task.labels), params.dropout)
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
    loss_fn = task.loss

    out_dir.mkdir(parents=True, exist_ok=True)
    history, best, best_state = [], -1.0, None
    for epoch in range(1, params.epochs + 1):
        model.train()
        started, running = time.monotonic(), 0.0
        batches = training_batches(
            train_ids, params.batch_size, params.length_pool_batches, rng, tokenizer.pad_id
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
        dev_probs = to_scores(predict_logits(model, dev_ids, tokenizer.pad_id), config.problem_type)
        dev = task.dev_score(dev_probs)
        entry = {
            "epoch": epoch,
            "train_loss": running / steps_per_epoch,
            **{k: v for k, v in dev.items() if k != "select"},
            "seconds": round(time.monotonic() - started, 1),
        }
        history.append(entry)
        log.info("epoch %d: %s", epoch, json.dumps(entry))
        if dev["select"] > best:
            best, best_state, selected = dev["select"], copy.deepcopy(model.state_dict()), epoch

    model.load_state_dict(best_state)
    manifest = ArtifactManifest(
        name=config.name,
        dataset=config.dataset,
        base=config.base,
        labels=task.labels,
        problem_type=config.problem_type,
        max_length=params.max_length,
        dropout=params.dropout,
        context_turns=params.context_turns,
    )
    save_artifact(model, manifest, out_dir)
    summary = {
        "config": config.name,
        "train_examples": len(train_ids),
        "epochs": history,
        "selected_epoch": selected,
    }
    (out_dir / "train_log.json").write_text(json.dumps(summary, indent=2) + "\n")
    # Metrics come from the saved (fp16) artifact, exactly what export and serving rebuild.
    return evaluate(out_dir, data_dir)
