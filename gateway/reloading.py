"""The one way the gateway re-reads files while it serves: tokens, routing and certificates.

Each owner registers its files and a reload function with the process's :class:`Reloader`;
one task polls them all and calls the reload of those whose files changed (modification
time, size or inode: a mounted Kubernetes Secret or ConfigMap swaps files). A reload that
fails is logged by its owner, which keeps what it had.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int] | None, ...]


class FileWatch:
    """Whether a set of files changed since it last looked."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = [Path(p) for p in paths if p]
        self._stamp = self.stamp()

    def stamp(self) -> Stamp:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                stat = path.stat()
            except FileNotFoundError:
                stamps.append(None)
            else:
                stamps.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        return tuple(stamps)

    def changed(self) -> bool:
        stamp = self.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return True


@dataclass
class _Watched:
    name: str
    watch: FileWatch
    reload: Callable[[], Awaitable[object] | object]
    every_s: float
    due: float = field(default=0.0)


class Reloader:
    """Polls the registered files; :meth:`run` is the process's single reload task."""

    def __init__(self) -> None:
        self._watched: list[_Watched] = []

    def add(
        self,
        name: str,
        paths: Sequence[str],
        reload: Callable[[], Awaitable[object] | object],
        every_s: float,
    ) -> None:
        """Call ``reload`` (a function or coroutine function) when any of ``paths`` changes,
        looking every ``every_s`` seconds. Paths that are empty strings are ignored."""
        if any(paths):
            self._watched.append(_Watched(name, FileWatch(paths), reload, every_s))

    async def check(self, now: float | None = None) -> list[str]:
        """One pass: reload what changed and is due; returns the names reloaded."""
        now = asyncio.get_running_loop().time() if now is None else now
        reloaded = []
        for w in self._watched:
            if now < w.due:
                continue
            w.due = now + w.every_s
            if not w.watch.changed():
                continue
            try:
                result = w.reload()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # an owner's bug must not stop the other reloads
                log.error("reloading %s failed with %s", w.name, type(exc).__name__)
                continue
            reloaded.append(w.name)
        return reloaded

    async def run(self) -> None:
        """Poll until cancelled."""
        if not self._watched:
            return
        tick = min(w.every_s for w in self._watched)
        while True:
            await asyncio.sleep(tick)
            await self.check()
