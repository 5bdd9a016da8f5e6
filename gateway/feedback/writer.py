"""The feedback write path: its own queue, admission limit and thread, apart from classification.

Submissions wait in a bounded queue (``--feedback-queue-max``; beyond it RESOURCE_EXHAUSTED)
and one thread writes them in batches (one transaction per batch). The event loop only
enqueues, so a slow or absent database never slows a classification. The database is opened,
and migrated to the newest revision (``--feedback-migrate``), on the first submission; when it
cannot be reached, the submissions waiting get UNAVAILABLE and the next one tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from gateway.errors import BackendUnavailable, Overloaded
from gateway.feedback import store
from gateway.metrics import FEEDBACK

log = logging.getLogger(__name__)

_BATCH = 200


class FeedbackWriter:
    """Writes validated submissions to the feedback database, off the event loop."""

    def __init__(self, url: str, queue_max: int, migrate: bool, retry_after_ms: int) -> None:
        self.url = url
        self._migrate = migrate
        self._retry_after_ms = retry_after_ms
        self._queue: asyncio.Queue[tuple[store.Submission, asyncio.Future[int]]] = asyncio.Queue(queue_max)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="feedback")
        self._engine: sa.Engine | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, submission: store.Submission) -> int:
        """Store one submission; its row id. RESOURCE_EXHAUSTED when the queue is full,
        UNAVAILABLE when the database cannot be reached."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((submission, future))
        except asyncio.QueueFull:
            FEEDBACK.labels("refused").inc()
            raise Overloaded(
                f"feedback: {self._queue.qsize()} submissions are waiting to be written (the limit)",
                self._retry_after_ms,
            ) from None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="feedback-writer")
        return await asyncio.shield(future)

    def _write(self, batch: list[store.Submission]) -> list[int]:
        if self._engine is None:
            if self._migrate:
                store.migrate(self.url)
            self._engine = store.engine_for(self.url)
        return store.write(self._engine, batch)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._queue.empty():
            batch = [self._queue.get_nowait() for _ in range(min(_BATCH, self._queue.qsize()))]
            try:
                ids = await loop.run_in_executor(self._pool, self._write, [s for s, _ in batch])
            except (sa.exc.SQLAlchemyError, OSError) as exc:
                log.error("feedback database not reachable: %s", type(exc).__name__)
                FEEDBACK.labels("unavailable").inc(len(batch))
                error = BackendUnavailable("the feedback database is not reachable; retry later")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            FEEDBACK.labels("stored").inc(len(batch))
            for (_, future), row in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(row)

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
        self._pool.shutdown(wait=False)
        if self._engine is not None:
            self._engine.dispose()
