"""gRPC servicer: protobuf <-> domain objects at the boundary, errors -> status codes.

Handlers stay thin: they convert the request into typed domain objects, call
:class:`EmotionService` and convert the result back. Every error goes through the one
mapping table of ``gateway.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from emotionaware.artifact import ProblemType
from emotionaware.context import Turn
from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.callers import current_call
from gateway.conversations import ConversationStore
from gateway.decoding import Undecodable
from gateway.errors import DeadlineExceeded, GatewayError, InternalError, InvalidArgument, to_status, trailers
from gateway.metrics import ITEM_ERRORS, LATENCY, REQUESTS
from gateway.routing import RouteTable
from gateway.service import EmotionService
from gateway.types import ClassifyInput, ClassifyOptions, ClassifyResult, LongTextMode, Scored, View

log = logging.getLogger(__name__)
Request = TypeVar("Request")
Response = TypeVar("Response")

SCORE_TYPES = {
    ProblemType.MULTI_LABEL: pb.SCORE_TYPE_SIGMOID,
    ProblemType.SINGLE_LABEL: pb.SCORE_TYPE_SOFTMAX,
}
VIEWS = {
    pb.VIEW_UNSPECIFIED: View.NATIVE,
    pb.VIEW_GOEMOTIONS: View.GOEMOTIONS,
    pb.VIEW_EKMAN: View.EKMAN,
    pb.VIEW_SENTIMENT: View.SENTIMENT,
}
VIEW_ENUMS = {view: number for number, view in VIEWS.items()}
LONG_TEXT = {
    pb.LONG_TEXT_MODE_UNSPECIFIED: None,
    pb.LONG_TEXT_MODE_TRUNCATE: LongTextMode.TRUNCATE,
    pb.LONG_TEXT_MODE_CHUNK: LongTextMode.CHUNK,
}
LONG_TEXT_PB = {
    LongTextMode.TRUNCATE: pb.LONG_TEXT_MODE_TRUNCATE,
    LongTextMode.CHUNK: pb.LONG_TEXT_MODE_CHUNK,
}
MAX_CONVERSATION_ID_CHARS = 128


# -- protobuf -> domain -----------------------------------------------------------------------


def options_from(message: pb.ClassifyOptions) -> ClassifyOptions:
    if message.view not in VIEWS:
        raise InvalidArgument("options.view", f"unknown View value {message.view}")
    if message.long_text_mode not in LONG_TEXT:
        raise InvalidArgument(
            "options.long_text_mode", f"unknown LongTextMode value {message.long_text_mode}"
        )
    return ClassifyOptions(
        model_version=message.model_version,
        view=VIEWS[message.view],
        top_k=message.top_k,
        threshold=message.threshold if message.HasField("threshold") else None,
        return_all_scores=message.return_all_scores,
        long_text=LONG_TEXT[message.long_text_mode],
    )


# -- domain -> protobuf -----------------------------------------------------------------------


def _scores(scored: Scored) -> list[pb.LabelScore]:
    return [
        pb.LabelScore(label=s.label, score=s.score, threshold=s.threshold, predicted=s.predicted)
        for s in scored.scores
    ]


def to_proto(result: ClassifyResult, started: float) -> pb.ClassifyResponse:
    aggregation = pb.AGGREGATION_UNSPECIFIED
    if result.aggregated:
        aggregation = (
            pb.AGGREGATION_MAX if result.problem_type is ProblemType.MULTI_LABEL else pb.AGGREGATION_MEAN
        )
    return pb.ClassifyResponse(
        scores=_scores(result.scored),
        predicted=list(result.scored.predicted),
        score_type=SCORE_TYPES[result.problem_type],
        token_count=result.token_count,
        truncated=result.truncated,
        max_tokens=result.max_tokens,
        model=result.model,
        model_version=result.model_version,
        view=VIEW_ENUMS[result.view],
        chunk_count=result.chunk_count,
        chunks=[
            pb.ChunkResult(
                index=c.index,
                first_token=c.first_token,
                token_count=c.token_count,
                scores=_scores(c.scored),
                predicted=list(c.scored.predicted),
            )
            for c in result.chunks
        ],
        aggregation=aggregation,
        context_turns=result.context_turns,
        token_count_is_lower_bound=not result.token_count_exact,
        server_latency_us=int((time.perf_counter() - started) * 1e6),
    )


def error_proto(exc: GatewayError) -> pb.Error:
    code, message = to_status(exc)
    return pb.Error(code=code.value[0], message=message)


def model_info(table: RouteTable, name: str, settings) -> pb.ModelInfo:
    route = table.routes[name]
    spec = table.specs[(name, route.version)]
    return pb.ModelInfo(
        name=name,
        version=route.version,
        versions=list(route.versions),
        aliases=list(table.aliases_of(name)),
        labels=[
            pb.LabelInfo(
                name=label,
                threshold=float(t) if spec.problem_type is ProblemType.MULTI_LABEL else 0.0,
            )
            for label, t in zip(spec.labels, spec.thresholds, strict=True)
        ],
        views=[VIEW_ENUMS[v] for v in spec.views if v is not View.NATIVE],
        score_type=SCORE_TYPES[spec.problem_type],
        max_tokens=spec.max_tokens,
        context_turns=spec.context_turns,
        default_long_text_mode=LONG_TEXT_PB[spec.long_text_mode],
        max_text_chars=route.max_text_chars,
        max_batch_texts=route.max_batch_texts,
        max_chunks=settings.max_chunks,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
        dataset=spec.dataset,
    )


# -- the one error boundary -------------------------------------------------------------------


def _log_unhandled(method: str, exc: BaseException) -> None:
    # The log gets the type and the stack, not the message (it could quote request text).
    stack = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unhandled %s in %s:\n%s", type(exc).__name__, method, stack)


def rpc(method: str) -> Callable:
    """Wrap a unary handler: deadline, metrics, and the one error-to-status mapping.

    The handler receives the absolute deadline (``time.monotonic()`` seconds): the client's,
    or ``default_timeout_s`` from now when the client set none.
    """

    def decorate(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        @functools.wraps(handler)
        async def wrapper(
            self: EmotionServicer, request: Request, context: grpc.aio.ServicerContext
        ) -> Response:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                if isinstance(request, Undecodable):
                    raise InvalidArgument(request.field, request.problem)
                remaining = context.time_remaining()
                timeout_s = self.service.settings.default_timeout_s if remaining is None else remaining
                if timeout_s <= 0:
                    raise DeadlineExceeded("the request deadline had already passed")
                try:
                    async with asyncio.timeout(timeout_s):
                        return await handler(self, request, context, time.monotonic() + timeout_s, started)
                except TimeoutError as exc:
                    raise DeadlineExceeded("the request deadline passed before an answer was ready") from exc
            except GatewayError as exc:
                code, message = to_status(exc)
                if extra := trailers(exc):
                    context.set_trailing_metadata(extra)
                # Status without abort(): abort raises through gRPC's handler machinery, which
                # costs more than the refusal itself when an overloaded gateway sheds load.
                # A non-OK code makes gRPC discard the (absent) response.
                context.set_code(code)
                context.set_details(message)
                return None
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                _log_unhandled(method, exc)
                code, message = to_status(InternalError())
                context.set_code(code)
                context.set_details(message)
                return None
            finally:
                REQUESTS.labels(method, code.name).inc()
                LATENCY.labels(method).observe(time.perf_counter() - started)

        return wrapper

    return decorate


class EmotionServicer(emotion_pb2_grpc.EmotionServiceServicer):
    """Implements emotionaware.v1.EmotionService on top of :class:`EmotionService`."""

    def __init__(self, service: EmotionService) -> None:
        self.service = service

    @rpc("Classify")
    async def Classify(
        self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext, deadline: float, started: float
    ) -> pb.ClassifyResponse:
        options = options_from(request.options)
        turns = tuple(Turn(t.speaker, t.text) for t in request.context)
        result = await self.service.classify(
            ClassifyInput(request.text, request.model, options, turns, request.speaker), deadline
        )
        return to_proto(result, started)

    @rpc("ClassifyBatch")
    async def ClassifyBatch(
        self,
        request: pb.ClassifyBatchRequest,
        context: grpc.aio.ServicerContext,
        deadline: float,
        started: float,
    ) -> pb.ClassifyBatchResponse:
        options = options_from(request.options)
        outcomes = await self.service.classify_batch(list(request.texts), request.model, options, deadline)
        items = []
        for outcome in outcomes:
            if isinstance(outcome, GatewayError):
                items.append(pb.BatchItem(error=error_proto(outcome)))
                ITEM_ERRORS.labels("ClassifyBatch", to_status(outcome)[0].name).inc()
            else:
                items.append(pb.BatchItem(result=to_proto(outcome, started)))
        return pb.ClassifyBatchResponse(
            items=items, server_latency_us=int((time.perf_counter() - started) * 1e6)
        )

    @rpc("ListModels")
    async def ListModels(
        self,
        request: pb.ListModelsRequest,
        context: grpc.aio.ServicerContext,
        deadline: float,
        started: float,
    ) -> pb.ListModelsResponse:
        table = self.service.router.table
        call = current_call()
        granted = {name for name in table.routes if call is None or call.may_use(name)}
        return pb.ListModelsResponse(
            models=[model_info(table, name, self.service.settings) for name in sorted(granted)],
            aliases=[
                pb.Alias(
                    name=name,
                    targets=[
                        pb.AliasTarget(model=t.model, model_version=t.version, weight=t.weight)
                        for t in targets
                    ],
                )
                for name, targets in sorted(table.aliases.items())
                if all(t.model in granted for t in targets)  # only aliases the caller can use
            ],
        )

    @rpc("GetModel")
    async def GetModel(
        self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext, deadline: float, started: float
    ) -> pb.GetModelResponse:
        table = self.service.router.table
        resolved = table.resolve(request.model)
        if (call := current_call()) is not None:
            call.check_model(resolved.spec.name)
        return pb.GetModelResponse(model=model_info(table, resolved.spec.name, self.service.settings))

    async def ClassifyStream(
        self, request_iterator: AsyncIterator[pb.ClassifyStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ClassifyStreamResponse]:
        """Answer each message in arrival order; messages are classified concurrently."""
        settings = self.service.settings

        def message_deadline(arrived: float, stream_remaining: float | None, timeout_ms: int) -> float:
            """The documented rule (proto ClassifyStreamRequest.timeout_ms), as a monotonic time."""
            limits = [arrived + timeout_ms / 1000] if timeout_ms else []
            if stream_remaining is not None:
                limits.append(time.monotonic() + stream_remaining)
            return min(limits) if limits else arrived + settings.default_timeout_s

        store = ConversationStore(settings.stream_history_turns, settings.stream_max_conversations)
        pending: asyncio.Queue[asyncio.Task | BaseException | None] = asyncio.Queue(
            settings.stream_max_pending
        )
        code = grpc.StatusCode.OK
        opened = time.perf_counter()

        async def answer(
            message: pb.ClassifyStreamRequest, sequence: int, prepared
        ) -> pb.ClassifyStreamResponse:
            started = time.perf_counter()
            response = pb.ClassifyStreamResponse(sequence=sequence)
            if not isinstance(message, Undecodable):
                response.conversation_id = message.conversation_id
                response.message_id = message.message_id
            try:
                if isinstance(prepared, GatewayError):
                    raise prepared
                request, resolved, deadline = prepared
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                        result = await self.service.classify(request, deadline, resolved)
                except TimeoutError as exc:
                    raise DeadlineExceeded("the message deadline passed before an answer was ready") from exc
                response.result.CopyFrom(to_proto(result, started))
            except GatewayError as exc:
                response.error.CopyFrom(error_proto(exc))
                ITEM_ERRORS.labels("ClassifyStream", to_status(exc)[0].name).inc()
            except Exception as exc:
                _log_unhandled("ClassifyStream", exc)
                response.error.CopyFrom(error_proto(InternalError()))
                ITEM_ERRORS.labels("ClassifyStream", "INTERNAL").inc()
            return response

        def prepare(message: pb.ClassifyStreamRequest):
            """Validate, route and snapshot context in arrival order (before any await)."""
            arrived = time.monotonic()
            try:
                if isinstance(message, Undecodable):
                    raise InvalidArgument(message.field, message.problem)
                cid = message.conversation_id
                if not cid:
                    raise InvalidArgument("conversation_id", "must not be empty")
                if len(cid) > MAX_CONVERSATION_ID_CHARS:
                    raise InvalidArgument(
                        "conversation_id",
                        f"is {len(cid)} characters long; the limit is {MAX_CONVERSATION_ID_CHARS}",
                    )
                options = options_from(message.options)
                if options.long_text is LongTextMode.CHUNK:
                    raise InvalidArgument("options.long_text_mode", "chunk mode is not available on streams")
                resolved = self.service.resolve(message.model or settings.stream_model, options)
                spec = resolved.spec
                history = store.history(cid) if spec.context_turns else ()
                request = ClassifyInput(message.text, spec.name, options, history, message.speaker)
                self.service.check_request(request, resolved)
            except GatewayError as exc:
                return exc
            store.append(cid, Turn(message.speaker, message.text))
            return request, resolved, message_deadline(arrived, context.time_remaining(), message.timeout_ms)

        async def read() -> None:
            sequence = 0
            try:
                async for message in request_iterator:
                    task = asyncio.create_task(answer(message, sequence, prepare(message)))
                    await pending.put(task)
                    sequence += 1
                await pending.put(None)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the writer, which re-raises it
                await pending.put(exc)

        reader = asyncio.create_task(read())
        try:
            while True:
                item = await pending.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield await item
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            code = grpc.StatusCode.INTERNAL
            _log_unhandled("ClassifyStream", exc)
            await context.abort(*to_status(InternalError()))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            while not pending.empty():
                item = pending.get_nowait()
                if isinstance(item, asyncio.Task):
                    item.cancel()
            store.clear()
            REQUESTS.labels("ClassifyStream", code.name).inc()
            LATENCY.labels("ClassifyStream").observe(time.perf_counter() - opened)
