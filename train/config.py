"""Training configuration, one TOML file per model under ``train/configs``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from emotionaware.artifact import BaseEncoder, ProblemType

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


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


@dataclass(frozen=True)
class TrainConfig:
    name: str
    dataset: str
    problem_type: ProblemType
    base: BaseEncoder
    train: TrainParams

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        data = tomllib.loads(Path(path).read_text())
        return cls(
            name=data["name"],
            dataset=data["dataset"],
            problem_type=ProblemType(data["problem_type"]),
            base=BaseEncoder(**data["base"]),
            train=TrainParams(**data["train"]),
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
