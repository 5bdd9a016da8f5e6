"""A scripted stand-in for the inference backend (gRPC-tier tests only)."""

from __future__ import annotations

import asyncio

import numpy as np

from emotionaware.taxonomy import GOEMOTIONS_LABELS
from gateway.types import ModelOutput


class ScriptedBackend:
    """Returns logits that favour label ``len(tokens) % labels``; can be made slow, down or failing."""

    def __init__(self) -> None:
        self.ready = True
        self.delay_s = 0.0
        self.error: Exception | None = None
        self.calls: list[tuple[str, str, int, float]] = []

    async def infer(self, model, version, inputs, timeout_s):
        input_ids = inputs["input_ids"][0]
        self.calls.append((model, version, len(input_ids), timeout_s))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        logits = np.full(len(GOEMOTIONS_LABELS), -4.0, dtype=np.float32)
        logits[len(input_ids) % len(GOEMOTIONS_LABELS)] = 4.0
        return ModelOutput(logits, version)

    async def is_ready(self, models):
        return self.ready

    async def close(self):
        pass

    def reset(self) -> None:
        self.__init__()
