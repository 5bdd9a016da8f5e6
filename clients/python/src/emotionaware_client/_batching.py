"""Splitting a batch of any length into calls of at most the server's per-model limit."""

from __future__ import annotations

import threading

from emotionaware_client.errors import EmotionAwareError, NotFoundError

#: The protocol's default ``max_batch_texts``, used when GetModel cannot tell.
DEFAULT_MAX_BATCH_TEXTS = 256


def plan(count: int, limit: int) -> list[tuple[int, int]]:
    """``(start, stop)`` slices covering ``range(count)`` in order, each at most ``limit`` long.

    The texts are spread evenly over the fewest calls (1,000 texts at 256 make 4 calls of 250).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if count <= 0:
        return []
    calls = -(-count // limit)
    size, extra = divmod(count, calls)
    out, start = [], 0
    for i in range(calls):
        stop = start + size + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


class LimitCache:
    """``max_batch_texts`` per model name, as GetModel answered (thread-safe)."""

    def __init__(self) -> None:
        self._limits: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, model: str) -> int | None:
        """The cached limit of ``model``, or None."""
        with self._lock:
            return self._limits.get(model)

    def put(self, model: str, limit: int) -> int:
        """Cache ``limit`` for ``model`` (0 or less: the default) and return what was cached."""
        value = limit if limit > 0 else DEFAULT_MAX_BATCH_TEXTS
        with self._lock:
            self._limits[model] = value
        return value

    def forget(self, model: str) -> None:
        """Drop ``model``'s limit (e.g. after the server refused a batch as too large)."""
        with self._lock:
            self._limits.pop(model, None)

    @staticmethod
    def fallback(error: EmotionAwareError) -> int:
        """The limit to use when GetModel failed with ``error`` (NOT_FOUND is raised instead)."""
        if isinstance(error, NotFoundError):
            raise error
        return DEFAULT_MAX_BATCH_TEXTS
