"""Training configuration, one TOML file per model under ``train/configs``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from emotionaware.artifact import BaseEncoder, ProblemType

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# Committed artifacts, one folder per served model.


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    max_length: int
    dropout: float
    seed: int
    length_pool_batches: int = 50
    # Conversation models: earlier turns given as context (0: the utterance alone).
    context_turns: int = 0
    # Start from the encoder of this committed model (a models/ folder name) instead of the
    # base package: intermediate-task transfer, e.g. MELD from the GoEmotions encoder.
    init_from: str = ""
    # Take ``init_from``'s artifact as committed at this git commit instead of the working tree:
    # the donor model may have been retrained since, and the recipe must still reproduce.
    init_from_commit: str = ""
    # Share of training examples whose context is dropped each epoch, so the model also
    # learns to read the utterance alone (0: always give the context).
    context_dropout: float = 0.0
    # Multi-label / single-label models pick the best dev epoch; models without a dev split
    # (cross-validated ones) keep the last epoch.
    select_best_epoch: bool = True
    # Exponential moving average of the trained weights, updated every step with this decay
    # (0: none). Each epoch scores both the trained and the averaged weights on dev, and the
    # selection may keep either; averaging costs nothing at serving time.
    ema_decay: float = 0.0
    # Multi-label: each label's positive examples weigh (negatives / positives) ** this power in
    # the loss, at most ``positive_weight_cap`` (0: unweighted). Rare labels (grief: 77 of 43,410
    # training texts) otherwise contribute almost nothing to the gradient.
    positive_weight_power: float = 0.0
    positive_weight_cap: float = 10.0
    # Single-label: each class weighs (examples / (classes * class count)) ** this power in the
    # loss (0: unweighted; 1: fully balanced). MELD's fear and disgust are under 3% of turns.
    class_weight_power: float = 0.0
    # Reviewers' feedback (emotionaware-feedback export) mixed into the training split: its
    # examples of this recipe's model whose labels are the model's. Dev and test are untouched,
    # so the dev figures show what it changes. Multi-label (GoEmotions) recipes.
    feedback_file: str = ""


@dataclass(frozen=True)
class TrainConfig:
    name: str
    dataset: str
    problem_type: ProblemType
    base: BaseEncoder
    train: TrainParams
    # An ablation of this committed model: trained like it minus one ingredient; only its dev
    # and test scores are kept, in models/<ablation_of>/ablations/<name>.json.
    ablation_of: str = ""
    # An experiment on this committed model's recipe: trained outside models/, its dev and
    # test headline kept in models/<experiment_of>/experiments/<name>.json (the card's table).
    experiment_of: str = ""
    # One line saying what the ablation removes or the experiment changes (shown in the card).
    description: str = ""
    # The gateway's default for texts over max_length: "truncate" or "chunk" (long texts).
    long_text_mode: str = "truncate"

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        data = tomllib.loads(Path(path).read_text())
        return cls(
            name=data["name"],
            dataset=data["dataset"],
            problem_type=ProblemType(data["problem_type"]),
            base=BaseEncoder(**data["base"]),
            train=TrainParams(**data["train"]),
            ablation_of=data.get("ablation_of", ""),
            experiment_of=data.get("experiment_of", ""),
            description=data.get("description", ""),
            long_text_mode=data.get("long_text_mode", "truncate"),
        )

    @classmethod
    def for_model(cls, name: str) -> TrainConfig:
        path = CONFIG_DIR / f"{name}.toml"
        if not path.exists():
            known = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
            raise SystemExit(f"no training config for model {name!r}; known: {', '.join(known)}")
        return cls.load(path)

    def with_overrides(self, **params: object) -> TrainConfig:
        """A copy with some training parameters replaced (None values are ignored)."""
        changes = {k: v for k, v in params.items() if v is not None}
        return replace(self, train=replace(self.train, **changes))
