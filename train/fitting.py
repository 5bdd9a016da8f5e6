"""Training recipes: the task of each dataset, the fine-tuning loop, the artifact writer.

Training keeps the word embeddings frozen (they are most of the encoder's parameters and
barely move in a short fine-tune), so the committed artifact can leave them out and take
them back from the base package. The epoch with the best dev macro-F1 is kept. The runs
that use these (one model, or one per cross-validation fold) are in train/run.py and
train/crossval.py.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from transformers import get_linear_schedule_with_warmup

from emotionaware.artifact import MANIFEST, WEIGHTS, ArtifactManifest
from emotionaware.context import format_context
from emotionaware.datasets import (
    MultiLabelExample,
    load_goemotions,
    load_meld,
    load_perc,
    multi_hot,
    perc_folds,
)
from emotionaware.feedback_file import read_examples
from emotionaware.machine import cpu_summary
from emotionaware.paths import MODELS_DIR, ROOT
from emotionaware.scores import to_scores
from emotionaware.text import normalize
from emotionaware.tokenization import TextTokenizer
from train.config import TrainConfig
from train.metrics import multilabel_report, singlelabel_report, tune_thresholds
from train.minibatches import training_batches
from train.model import (
    FROZEN_PARAMETERS,
    MeanPoolClassifier,
    build_from_base,
    load_artifact,
    save_artifact,
)
from train.predict import predict_logits
from train.windows import text_windows

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
    loss: nn.Module  # built with reduction="none": one value per example (or per label)
    # Per-example loss weights (None: all 1), e.g. so a poem split into windows weighs one poem.
    train_weights: torch.Tensor | None = None
    # Token ids without context, swapped in for ``context_dropout`` of the examples each epoch.
    train_ids_alone: list[list[int]] | None = None
    # Multi-label with weighted positives: log of each label's positive weight. Weighting a
    # label's positives by w moves the loss's optimal logit up by log w, so its sigmoid scores
    # overstate the label; the trained head's bias is lowered by this much (prior correction)
    # so served scores are calibrated probabilities again. Each label's ranking is unchanged,
    # so dev-tuned thresholds make the same decisions.
    logit_offset: torch.Tensor | None = None
    # Training examples that came from reviewers' feedback (TrainParams.feedback_file).
    feedback_examples: int = 0


def weighted_loss(task: Task, logits: torch.Tensor, index: list[int]) -> torch.Tensor:
    per_example = task.loss(logits, task.train_targets[index])
    if per_example.ndim > 1:  # multi-label: mean over labels
        per_example = per_example.mean(dim=1)
    if task.train_weights is None:
        return per_example.mean()
    weights = task.train_weights[index]
    return (per_example * weights).sum() / weights.sum()


def feedback_set(config: TrainConfig, labels: tuple[str, ...], held_out: set[str]) -> list[MultiLabelExample]:
    """The recipe's feedback file as training examples: rows of its model (or of the model an
    experiment varies) whose labels are all the model's, one per text (the latest verdict),
    and none whose text is in ``held_out`` (dev and test: they would leak into training)."""
    if not config.train.feedback_file:
        return []
    models = {config.name, config.experiment_of, config.ablation_of} - {""}
    rows = read_examples(Path(config.train.feedback_file))
    latest = {}
    for r in sorted(rows, key=lambda r: r.id):
        if (
            r.model in models
            and r.labels
            and set(r.labels) <= set(labels)
            and normalize(r.text) not in held_out
        ):
            latest[normalize(r.text)] = r
    log.info(
        "feedback: %d of %d examples in %s mixed into training",
        len(latest),
        len(rows),
        config.train.feedback_file,
    )
    return [
        MultiLabelExample(r.text, tuple(labels.index(x) for x in r.labels), f"feedback-{r.id}")
        for r in latest.values()
    ]


def goemotions_task(config: TrainConfig, tokenizer: TextTokenizer, data_dir: Path, limit: int) -> Task:
    data = load_goemotions(data_dir)
    train_set = data.train[:limit] if limit else data.train
    feedback = feedback_set(config, data.labels, {normalize(e.text) for e in (*data.dev, *data.test)})
    train_set = [*train_set, *feedback]
    dev_targets = multi_hot(data.dev, len(data.labels))

    def dev_score(probs: np.ndarray) -> dict:
        report = multilabel_report(probs, dev_targets, tune_thresholds(probs, dev_targets), data.labels)
        return {
            "select": report["macro_f1"],
            "dev_macro_f1": report["macro_f1"],
            "dev_micro_f1": report["micro_f1"],
        }

    targets = torch.tensor(multi_hot(train_set, len(data.labels)), dtype=torch.float32)
    weights = positive_weights(config, targets)
    return Task(
        labels=data.labels,
        train_ids=[tokenizer.encode(e.text).input_ids.tolist() for e in train_set],
        train_targets=targets,
        dev_ids=[tokenizer.encode(e.text).input_ids.tolist() for e in data.dev],
        dev_score=dev_score,
        loss=nn.BCEWithLogitsLoss(reduction="none", pos_weight=weights),
        logit_offset=None if weights is None else weights.log(),
        feedback_examples=len(feedback),
    )


def positive_weights(config: TrainConfig, targets: torch.Tensor) -> torch.Tensor | None:
    """Per-label weights of positive examples, (negatives / positives) ** power, capped; None: off."""
    power = config.train.positive_weight_power
    if not power:
        return None
    positives = targets.sum(dim=0).clamp(min=1.0)
    ratio = (len(targets) - positives) / positives
    return ratio.pow(power).clamp(min=1.0, max=config.train.positive_weight_cap)


def class_weights(config: TrainConfig, labels: tuple[str, ...], examples) -> torch.Tensor | None:
    """Per-class loss weights, (n / (classes * count)) ** power; None: off (single-label)."""
    power = config.train.class_weight_power
    if not power:
        return None
    counts = np.bincount([e.label for e in examples], minlength=len(labels)).clip(min=1)
    balanced = len(examples) / (len(labels) * counts)
    return torch.tensor(balanced**power, dtype=torch.float32)


def meld_task(config: TrainConfig, tokenizer: TextTokenizer, data_dir: Path, limit: int) -> Task:
    if config.train.feedback_file:
        raise SystemExit(
            "feedback_file: mixing feedback in is supported for multi-label (GoEmotions) recipes only"
        )
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

    alone = None
    if turns and config.train.context_dropout > 0:
        alone = [tokenizer.encode(e.text).input_ids.tolist() for e in train_set]
    return Task(
        labels=data.labels,
        train_ids=encode(train_set),
        train_targets=torch.tensor([e.label for e in train_set], dtype=torch.long),
        dev_ids=encode(data.dev),
        dev_score=dev_score,
        loss=nn.CrossEntropyLoss(reduction="none", weight=class_weights(config, data.labels, train_set)),
        train_ids_alone=alone,
    )


def perc_task(config: TrainConfig, tokenizer: TextTokenizer, data_dir: Path, limit: int, fold: int) -> Task:
    """PERC poems, cross-validation fold ``fold``: train on its training poems, score its held-out ones.

    Poems are cut into overlapping windows exactly as the gateway's chunk mode cuts them; every
    window carries its poem's label, windows of one poem share one poem's weight, and classes
    are weighted inversely to their frequency (the metric is macro-F1 over nine unbalanced
    classes). Held-out poems are scored like the gateway scores them: the token-weighted mean
    of the windows' softmax.
    """
    if config.train.feedback_file:
        raise SystemExit(
            "feedback_file: mixing feedback in is supported for multi-label (GoEmotions) recipes only"
        )
    data = load_perc(data_dir)
    train_index, held_out = perc_folds(data.poems)[fold]
    train_index = train_index[:limit] if limit else train_index
    train_windows = text_windows(tokenizer, [data.poems[i].text for i in train_index])
    held_windows = text_windows(tokenizer, [data.poems[i].text for i in held_out])
    train_labels = np.array([data.poems[i].label for i in train_index])
    class_weight = len(train_labels) / (
        len(data.labels) * np.maximum(np.bincount(train_labels, minlength=len(data.labels)), 1)
    )
    per_poem = np.bincount(train_windows.owner, minlength=len(train_index))
    weights = class_weight[train_labels[train_windows.owner]] / per_poem[train_windows.owner]
    held_targets = np.array([data.poems[i].label for i in held_out])

    def held_out_score(probs: np.ndarray) -> dict:
        report = singlelabel_report(
            held_windows.aggregate(probs, len(held_out), config.problem_type), held_targets, data.labels
        )
        return {"select": report["macro_f1"], "held_out_macro_f1": report["macro_f1"]}

    return Task(
        labels=data.labels,
        train_ids=train_windows.ids,
        train_targets=torch.tensor(train_labels[train_windows.owner], dtype=torch.long),
        dev_ids=held_windows.ids,
        dev_score=held_out_score,
        loss=nn.CrossEntropyLoss(reduction="none"),
        train_weights=torch.tensor(weights, dtype=torch.float32),
    )


TASKS: dict[str, Callable[..., Task]] = {
    "goemotions": goemotions_task,
    "meld": meld_task,
    "perc": perc_task,
}


def initial_model(config: TrainConfig, num_labels: int) -> MeanPoolClassifier:
    """The base encoder with a fresh head, or the encoder of ``init_from``'s committed model."""
    params = config.train
    model = build_from_base(config.base, num_labels, params.dropout)
    if params.init_from:
        if params.init_from_commit:
            with tempfile.TemporaryDirectory(prefix=f"init-{params.init_from}-") as folder:
                donor, manifest = load_artifact(
                    committed_artifact(params.init_from, params.init_from_commit, Path(folder))
                )
        else:
            donor, manifest = load_artifact(MODELS_DIR / params.init_from)
        if manifest.base != config.base:
            raise SystemExit(f"init_from {params.init_from!r} was trained from another base encoder")
        model.encoder.load_state_dict(donor.encoder.state_dict())
    return model


def committed_artifact(name: str, commit: str, folder: Path) -> Path:
    """Write models/<name>'s artifact files as committed at ``commit`` into ``folder``."""
    for file in (MANIFEST, WEIGHTS):
        shown = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{commit}:models/{name}/{file}"],
            capture_output=True,
            check=False,
        )
        if shown.returncode != 0:
            raise SystemExit(
                f"init_from_commit: models/{name}/{file} is not in commit {commit!r} of this clone "
                f"(a shallow clone lacks it: git fetch --unshallow): {shown.stderr.decode()[:200]}"
            )
        (folder / file).write_bytes(shown.stdout)
    return folder


def fit(config: TrainConfig, task: Task, tokenizer: TextTokenizer) -> tuple[MeanPoolClassifier, dict]:
    """Fine-tune on ``task``; returns the selected model and the training log."""
    params = config.train
    rng = seed_everything(params.seed)
    train_ids, dev_ids = task.train_ids, task.dev_ids
    model = initial_model(config, len(task.labels))
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
    history, best, best_state, selected_weights = [], -1.0, None, "trained"
    ema = WeightAverage(model, params.ema_decay) if params.ema_decay else None
    for epoch in range(1, params.epochs + 1):
        model.train()
        started, running = time.monotonic(), 0.0
        epoch_ids = train_ids
        if task.train_ids_alone is not None:
            epoch_ids = [
                alone if rng.random() < params.context_dropout else both
                for both, alone in zip(train_ids, task.train_ids_alone, strict=True)
            ]
        batches = training_batches(
            epoch_ids, params.batch_size, params.length_pool_batches, rng, tokenizer.pad_id
        )
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch}/{params.epochs}", unit="batch")
        for step, batch in enumerate(bar, 1):
            logits = model(batch.input_ids, batch.attention_mask)
            loss = weighted_loss(task, logits, batch.index)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update()
            running += loss.item()
            bar.set_postfix(loss=f"{running / step:.4f}")
        dev = task.dev_score(to_scores(predict_logits(model, dev_ids, tokenizer.pad_id), config.problem_type))
        entry = {
            "epoch": epoch,
            "train_loss": running / steps_per_epoch,
            **{k: v for k, v in dev.items() if k != "select"},
            "seconds": round(time.monotonic() - started, 1),
        }
        candidates = [("trained", dev["select"], model.state_dict())]
        if ema is not None:
            averaged = ema.model()
            ema_dev = task.dev_score(
                to_scores(predict_logits(averaged, dev_ids, tokenizer.pad_id), config.problem_type)
            )
            entry.update({f"ema_{k}": v for k, v in ema_dev.items() if k != "select"})
            candidates.append(("ema", ema_dev["select"], averaged.state_dict()))
        history.append(entry)
        log.info("epoch %d: %s", epoch, json.dumps(entry))
        for weights, score, state in candidates:
            if not params.select_best_epoch:
                if weights == "trained":  # without selection the last epoch's trained weights
                    selected = epoch
            elif score > best:
                best, best_state, selected, selected_weights = score, copy.deepcopy(state), epoch, weights

    if best_state is not None:
        model.load_state_dict(best_state)
    entry = {
        "config": config.name,
        "train_examples": len(train_ids),
        **({"feedback_examples": task.feedback_examples} if task.feedback_examples else {}),
        "epochs": history,
        "selected_epoch": selected,
        "selected_weights": selected_weights,
        "machine": cpu_summary(),  # what the epochs' seconds were measured on
    }
    if task.logit_offset is not None:
        correct_priors(model, task.logit_offset)
        entry["prior_correction"] = PRIOR_CORRECTION
    return model, entry


PRIOR_CORRECTION = "head bias lowered by log(positive weight) per label"


def correct_priors(model: MeanPoolClassifier, offset: torch.Tensor) -> None:
    """Lower the head's bias by ``offset`` (see Task.logit_offset), in place."""
    with torch.no_grad():
        model.classifier.bias.sub_(offset.to(model.classifier.bias.dtype))


class WeightAverage:
    """Exponential moving average of a model's trainable weights (the frozen ones never move)."""

    def __init__(self, model: MeanPoolClassifier, decay: float) -> None:
        if not 0 < decay < 1:
            raise SystemExit(f"ema_decay must be between 0 and 1, got {decay}")
        self.decay = decay
        self.average = copy.deepcopy(model)
        self.average.eval()
        for param in self.average.parameters():
            param.requires_grad_(False)
        self._pairs = [
            (avg, live)
            for avg, live in zip(self.average.parameters(), model.parameters(), strict=True)
            if live.requires_grad
        ]

    @torch.no_grad()
    def update(self) -> None:
        """One step: average = decay * average + (1 - decay) * the live weights."""
        for average, live in self._pairs:
            average.lerp_(live, 1.0 - self.decay)

    def model(self) -> MeanPoolClassifier:
        return self.average


def write_artifact(
    config: TrainConfig, task: Task, model: MeanPoolClassifier, log_entry: dict, out_dir: Path
) -> None:
    """The compact artifact plus train_log.json."""
    params = config.train
    manifest = ArtifactManifest(
        name=config.name,
        dataset=config.dataset,
        base=config.base,
        labels=task.labels,
        problem_type=config.problem_type,
        max_length=params.max_length,
        dropout=params.dropout,
        context_turns=params.context_turns,
        long_text_mode=config.long_text_mode,
    )
    save_artifact(model, manifest, out_dir)
    (out_dir / "train_log.json").write_text(json.dumps(log_entry, indent=2) + "\n")
