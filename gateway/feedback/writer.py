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

from gateway.errors import BackendUnavailable, InternalError, Overloaded
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
        UNAVAILABLE when the database cannot be reached. A caller that stops waiting does not
        stop its submission from being written (a later one on the same answer replaces it)."""
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
        return await future

    def _open(self) -> sa.Engine:
        if self._engine is None:
            if self._migrate:
                store.migrate(self.url)
            self._engine = store.engine_for(self.url)
        return self._engine

    def _write(self, batch: list[store.Submission]) -> list[int | Exception]:
        """Row ids, or per submission the error that kept it out. One transaction per batch;
        when a row's values are refused (a constraint, a value the database cannot take),
        the rows are written one by one so only that submission fails."""
        engine = self._open()
        try:
            return list(store.write(engine, batch))
        except (sa.exc.DataError, sa.exc.IntegrityError):
            out: list[int | Exception] = []
            for submission in batch:
                try:
                    out.extend(store.write(engine, [submission]))
                except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
                    log.error("feedback row refused by the database: %s", type(exc).__name__)
                    out.append(InternalError())
            return out

    @staticmethod
    def _settle(future: asyncio.Future[int], outcome: int | Exception) -> None:
        if future.done():  # the caller stopped waiting
            return
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._queue.empty():
            batch = [self._queue.get_nowait() for _ in range(min(_BATCH, self._queue.qsize()))]
            try:
                outcomes = await loop.run_in_executor(self._pool, self._write, [s for s, _ in batch])
            except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
                # Unreachable: every submission waiting now fails at once (each would wait out
                # a connection timeout otherwise); the next one tries again.
                log.error("feedback database not reachable: %s", type(exc).__name__)
                batch += [self._queue.get_nowait() for _ in range(self._queue.qsize())]
                FEEDBACK.labels("unavailable").inc(len(batch))
                for _, future in batch:
                    self._settle(
                        future, BackendUnavailable("the feedback database is not reachable; retry later")
                    )
                continue
            except Exception as exc:  # every future must be settled, whatever went wrong
                log.error(
                    "feedback not written: %s %s",
                    type(exc).__name__,
                    exc if isinstance(exc, store.SchemaError) else "",
                )
                if self._engine is not None:  # opened afresh (and migrated) by the next batch
                    self._engine.dispose()
                    self._engine = None
                FEEDBACK.labels("failed").inc(len(batch))
                error = (
                    BackendUnavailable(str(exc)) if isinstance(exc, store.SchemaError) else InternalError()
                )
                for _, future in batch:
                    self._settle(future, error)
                continue
            FEEDBACK.labels("stored").inc(sum(not isinstance(o, Exception) for o in outcomes))
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                self._settle(future, outcome)

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
        self._pool.shutdown(wait=False)
        if self._engine is not None:
            self._engine.dispose()
