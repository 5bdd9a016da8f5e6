"""Fault injection around a real backend (gRPC-tier tests of the error paths)."""

from __future__ import annotations

import asyncio


class FaultyBackend:
    """Delegates to a real backend; can be made slow, not ready, or failing, and records calls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.inflight = 0  # calls still running, e.g. a slow one a finished test left behind
        self.reset()

    def reset(self) -> None:
        self.ready = True
        self.delay_s = 0.0
        self.error: Exception | None = None
        self.calls: list[tuple[str, str, tuple[int, ...], float]] = []

    async def infer(self, model, version, inputs, timeout_s):
        self.calls.append((model, version, inputs["input_ids"].shape, timeout_s))
        self.inflight += 1
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.error is not None:
                raise self.error
            return await self.inner.infer(model, version, inputs, timeout_s)
        finally:
            self.inflight -= 1

    async def idle(self, timeout_s: float = 10.0) -> None:
        """Wait until no call is running: a batch still at the backend makes admission
        estimate waits (and refuse a short deadline) in the next test."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.inflight and loop.time() < end:
            await asyncio.sleep(0.01)

    @property
    def pads_to_buckets(self) -> bool:
        return self.inner.pads_to_buckets

    async def is_ready(self, models):
        return self.ready and await self.inner.is_ready(models)

    async def close(self):
        await self.inner.close()
