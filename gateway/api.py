"""gRPC servicer: the thin adapter between protobuf and the request pipeline.

Handlers convert the request into typed domain objects (gateway/convert.py), call the
pipeline (:class:`gateway.pipeline.Pipeline`) and convert the result back; ClassifyStream
runs a stream session (gateway/streams.py). Every error goes through the one mapping table
of ``gateway.errors``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from emotionaware.context import Turn
from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.callers import current_call
from gateway.convert import error_proto, model_info, options_from, to_proto
from gateway.decoding import Undecodable
from gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    InternalError,
    InvalidArgument,
    log_unhandled,
    set_status,
    to_status,
)
from gateway.metrics import ITEM_ERRORS, LATENCY, REQUESTS
from gateway.pipeline import Pipeline
from gateway.settings import Settings
from gateway.streams import StreamSession
from gateway.types import ClassifyInput

log = logging.getLogger(__name__)
Request = TypeVar("Request")
Response = TypeVar("Response")


# -- the one error boundary -------------------------------------------------------------------


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
                timeout_s = self.settings.default_timeout_s if remaining is None else remaining
                if timeout_s <= 0:
                    raise DeadlineExceeded("the request deadline had already passed")
                try:
                    async with asyncio.timeout(timeout_s):
                        return await handler(self, request, context, time.monotonic() + timeout_s, started)
                except TimeoutError as exc:
                    raise DeadlineExceeded("the request deadline passed before an answer was ready") from exc
            except GatewayError as exc:
                code = set_status(context, exc)
                return None
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                log_unhandled(method, exc)
                code = set_status(context, InternalError())
                return None
            finally:
                REQUESTS.labels(method, code.name).inc()
                LATENCY.labels(method).observe(time.perf_counter() - started)

        return wrapper

    return decorate


class EmotionServicer(emotion_pb2_grpc.EmotionServiceServicer):
    """Implements emotionaware.v1.EmotionService on top of the request pipeline."""

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings

    @rpc("Classify")
    async def Classify(
        self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext, deadline: float, started: float
    ) -> pb.ClassifyResponse:
        options = options_from(request.options)
        turns = tuple(Turn(t.speaker, t.text) for t in request.context)
        result = await self.pipeline.classify(
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
        outcomes = await self.pipeline.classify_batch(list(request.texts), request.model, options, deadline)
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
        table = self.pipeline.table
        call = current_call()
        granted = {name for name in table.routes if call is None or call.may_use(name)}
        return pb.ListModelsResponse(
            models=[model_info(table, name, self.settings) for name in sorted(granted)],
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
        table = self.pipeline.table
        resolved = table.resolve(request.model)
        if (call := current_call()) is not None:
            call.check_model(resolved.spec.name)
        return pb.GetModelResponse(model=model_info(table, resolved.spec.name, self.settings))

    async def ClassifyStream(
        self, request_iterator: AsyncIterator[pb.ClassifyStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ClassifyStreamResponse]:
        """Answer each message in arrival order (see :class:`gateway.streams.StreamSession`)."""
        async for response in StreamSession(self.pipeline, self.settings, context).run(request_iterator):
            yield response
