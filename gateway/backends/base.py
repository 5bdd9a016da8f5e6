"""The one interface every inference backend implements, and what it returns.

Backends: :mod:`gateway.backends.triton` (the default, gRPC to Triton) and
:mod:`gateway.backends.onnxruntime` (``--backend embedded``: the same graphs in process).
Nothing here imports a backend's client library, so the batcher depends on this alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class BatchOutput:
    """Logits of a batch and the version of the model that produced them."""

    logits: np.ndarray  # float32, shape (batch, labels)
    model_version: str


class Backend(Protocol):
    """Runs a model on padded batches of token ids and reports readiness."""

    # True when the model server merges only equal shapes (Triton's ONNX Runtime backend, the
    # GPU flavour): the batcher then pads every batch to one of the model's length buckets.
    pads_to_buckets: bool

    async def infer(
        self, model: str, version: str, inputs: dict[str, np.ndarray], timeout_s: float
    ) -> BatchOutput:
        """Logits for a batch: ``inputs`` maps each model input name to int64 (batch, tokens)."""
        ...

    async def is_ready(self, models: tuple[tuple[str, str], ...]) -> bool:
        """True when the backend and every (model, version) can serve requests."""
        ...

    async def close(self) -> None: ...
