"""Scoring a batch of rows, without Spark: the two scorers the executors run, and their results.

``ServiceScorer`` calls the gateway through the client package (ClassifyBatch, bulk traffic,
retries that honour ``retry-after-ms``); ``LocalScorer`` runs the gateway's own pipeline
(validation, tokenization and windows, micro-batching, post-processing and views) on the
embedded ONNX Runtime backend in the executor, so both modes give the service's answers. Each
takes a list of texts (``None`` for a null cell) and returns one :class:`RowResult` per text,
in order; a text that cannot be scored gets its error in place and never fails the others.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

_INDEXED_FIELD = re.compile(r"^texts\[\d+\]")


@dataclass(frozen=True)
class Options:
    """What is asked of every row: the model, its view and the decision options (see the proto)."""

    model: str = ""  # name or alias; "" is the service's default alias
    view: str = "native"
    threshold: float | None = None  # one threshold for every label (multi-label models)
    long_text: str = ""  # "" (the model's default), "truncate" or "chunk"
    model_version: str = ""


@dataclass(frozen=True)
class Service:
    """Where ``mode="service"`` sends its calls, and how hard it tries."""

    target: str = "127.0.0.1:50051"
    tls: bool = False  # TLS with the system's CAs (or ``ca_file``)
    ca_file: str | None = None
    concurrency: int = 2  # ClassifyBatch calls in flight per task
    # A call (up to the model's max_batch_texts rows) may take this long, retries included. Twelve
    # attempts backing off to 5 s wait about a minute in all: a gateway restart or a rolling update.
    call_timeout_s: float = 300.0
    max_attempts: int = 12

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.call_timeout_s <= 0 or self.max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1, call_timeout_s positive")


@dataclass(frozen=True)
class Local:
    """What ``mode="local"`` loads in each executor: a model repository (and routing file)."""

    repository: str  # a path on the executor: a shared file system, or an archive's folder
    routing_file: str = ""
    threads: int = 0  # ONNX Runtime threads per task; 0: the task's CPUs (spark.task.cpus)


@dataclass(frozen=True)
class RowResult:
    """One row's answer: every label's score in the asked view, or the error."""

    predicted: tuple[str, ...] | None = None
    scores: dict[str, float] | None = None
    score_type: str | None = None  # "sigmoid" (multi-label) or "softmax" (single-label)
    token_count: int | None = None
    truncated: bool | None = None
    model: str | None = None
    model_version: str | None = None
    error: str | None = None  # "CODE: message" when the row was not scored


def error_row(code: str, message: str) -> RowResult:
    """A row's error, with the batch index of the server's field name taken out (``texts[7]``
    means nothing to a table's reader: the row is the place)."""
    return RowResult(error=f"{code}: {_INDEXED_FIELD.sub('text', message)}")


NULL_TEXT = error_row("INVALID_ARGUMENT", "text: is null")


class Scorer(Protocol):
    def score(self, texts: Sequence[str | None], options: Options) -> list[RowResult]: ...

    def close(self) -> None: ...


def _by_length(texts: Sequence[str | None]) -> list[int]:
    """Indices of the non-null texts, shortest first (stable, so equal lengths keep input order).

    Texts are sent in this order and answered back in input order: batches pad less, and a served
    score does not depend on its batch neighbours, so the order changes speed, not answers.
    """
    return sorted((i for i, t in enumerate(texts) if t is not None), key=lambda i: len(texts[i]))  # type: ignore[arg-type]


def _place(texts: Sequence[str | None], order: list[int], answers: Sequence[RowResult]) -> list[RowResult]:
    results = [NULL_TEXT] * len(texts)
    for i, answer in zip(order, answers, strict=True):
        results[i] = answer
    return results


# -- service mode --------------------------------------------------------------------------------


def open_client(service: Service, token: str | None, timeout_s: float, max_attempts: int):
    """The client package's client for ``service`` (TLS from ``tls``/``ca_file``)."""
    from emotionaware_client import EmotionClient, RetryPolicy, TlsConfig

    tls: bool | TlsConfig = TlsConfig(ca=service.ca_file) if service.ca_file else service.tls
    retries = RetryPolicy(max_attempts=max_attempts, initial_backoff_s=0.2, max_backoff_s=5.0)
    return EmotionClient(service.target, token=token, tls=tls, timeout=timeout_s, retries=retries)


class ServiceScorer:
    """ClassifyBatch calls to the gateway through the client package."""

    def __init__(self, service: Service, token: str | None) -> None:
        self.service = service
        self.client = open_client(service, token, service.call_timeout_s, service.max_attempts)

    def score(self, texts: Sequence[str | None], options: Options) -> list[RowResult]:
        from emotionaware_client import ItemError, TrafficClass

        order = _by_length(texts)
        if not order:
            return [NULL_TEXT] * len(texts)
        items = self.client.classify_batch(
            [texts[i] for i in order],  # type: ignore[misc]
            options.model,
            view=options.view,
            threshold=options.threshold,
            return_all_scores=True,
            long_text=options.long_text or "default",
            model_version=options.model_version,
            traffic_class=TrafficClass.BULK,
            concurrency=self.service.concurrency,
            # A call that still fails after its retries marks its rows; the job goes on.
            on_call_error="items",
        )
        answers = []
        for item in items:
            if isinstance(item, ItemError):
                answers.append(error_row(item.code.name, item.message))
                continue
            answers.append(
                RowResult(
                    predicted=tuple(item.predicted),
                    scores={s.label: s.score for s in item.scores},
                    score_type=str(item.score_type),
                    token_count=item.token_count,
                    truncated=item.truncated,
                    model=item.model,
                    model_version=item.model_version,
                )
            )
        return _place(texts, order, answers)

    def close(self) -> None:
        self.client.close()


# -- local mode ----------------------------------------------------------------------------------


class LocalScorer:
    """The gateway's pipeline on the embedded ONNX Runtime backend, on an event loop of its own."""

    # ClassifyBatch-sized pieces in flight at once: one is tokenized while another runs.
    IN_FLIGHT = 2

    def __init__(self, local: Local, threads: int) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="emotionaware-local", daemon=True)
        self._thread.start()
        self.pipeline = self._run(self._build(local, threads))

    async def _build(self, local: Local, threads: int):
        from gateway.backends.onnxruntime import EmbeddedBackend
        from gateway.pipeline import Pipeline
        from gateway.routing import Router
        from gateway.settings import Settings

        if not Path(local.repository).is_dir():
            raise FileNotFoundError(
                f"model repository {local.repository} is not on this executor: give a path every executor "
                "can read, or ship it (spark-submit --archives repo.tar.gz#repo, then repository='repo')"
            )
        settings = Settings(
            backend="embedded",
            model_repository=Path(local.repository),
            routing_file=local.routing_file,
            backend_threads=threads,
            http_listen="",
            metrics_port=0,
            audit_log=False,
        )
        return Pipeline(settings, Router(settings), EmbeddedBackend(settings.model_repository, threads))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def score(self, texts: Sequence[str | None], options: Options) -> list[RowResult]:
        order = _by_length(texts)
        if not order:
            return [NULL_TEXT] * len(texts)
        answers = self._run(self._score([texts[i] for i in order], options))  # type: ignore[misc]
        return _place(texts, order, answers)

    async def _score(self, texts: list[str], options: Options) -> list[RowResult]:
        from emotionaware.artifact import ProblemType
        from gateway.errors import to_status
        from gateway.types import ClassifyOptions, LongTextMode, View

        asked = ClassifyOptions(
            model_version=options.model_version,
            view=View(options.view),
            threshold=options.threshold,
            return_all_scores=True,
            long_text=LongTextMode(options.long_text) if options.long_text else None,
        )
        piece = self.pipeline.resolve(options.model, asked).route.max_batch_texts
        room = asyncio.Semaphore(self.IN_FLIGHT)

        async def one(start: int):
            async with room:
                # No caller waits on a corpus row: the deadline only bounds a stuck backend.
                deadline = time.monotonic() + 600
                return await self.pipeline.classify_batch(
                    texts[start : start + piece], options.model, asked, deadline
                )

        pieces = await asyncio.gather(*(one(s) for s in range(0, len(texts), piece)))
        answers = []
        for outcome in (o for p in pieces for o in p):
            if isinstance(outcome, Exception):
                code, message = to_status(outcome)
                answers.append(error_row(code.name, message))
                continue
            answers.append(
                RowResult(
                    predicted=outcome.scored.predicted,
                    scores={
                        s.label: float(np.float32(s.score)) for s in outcome.scored.scores
                    },  # as the API sends them
                    score_type="sigmoid" if outcome.problem_type is ProblemType.MULTI_LABEL else "softmax",
                    token_count=outcome.token_count,
                    truncated=outcome.truncated,
                    model=outcome.model,
                    model_version=outcome.model_version,
                )
            )
        return answers

    def close(self) -> None:
        self._run(self.pipeline.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


# One local scorer per Python worker and configuration: Spark reuses its Python workers across
# tasks, so the model is loaded once per worker, not once per partition.
_LOCAL: dict[object, LocalScorer] = {}
_LOCAL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Plan:
    """Everything an executor needs to score rows: picklable, built on the driver."""

    options: Options
    service: Service | None = None
    local: Local | None = None
    token: str | None = field(default=None, repr=False)  # never printed with the plan

    def bearer_token(self) -> str | None:
        """The plan's token, else this process's ``EMOTIONAWARE_TOKEN`` (an executor's own)."""
        return self.token if self.token is not None else os.environ.get("EMOTIONAWARE_TOKEN") or None


def scorer_for(plan: Plan, task_cpus: int = 1) -> tuple[Scorer, bool]:
    """A scorer for one task of ``plan``, and whether the task must close it.

    Service mode opens a channel per task (closed when the task ends): a long job's new tasks
    then connect afresh, so gateway replicas that an autoscaler adds receive work (a gRPC
    channel stays on the replica it first reached). Local mode keeps the worker's loaded model.
    """
    if plan.service is not None:
        return ServiceScorer(plan.service, plan.bearer_token()), True
    if plan.local is None:
        raise ValueError("a plan needs a service or a local model")
    key = (plan.local, task_cpus)
    with _LOCAL_LOCK:
        if key not in _LOCAL:
            _LOCAL[key] = LocalScorer(plan.local, plan.local.threads or task_cpus)
        return _LOCAL[key], False
