"""gRPC servicer: protobuf <-> domain objects at the boundary, errors -> status codes."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from emotionaware.artifact import ProblemType
from emotionaware.v1 import emotion_pb2, emotion_pb2_grpc
from gateway.errors import DeadlineExceeded, GatewayError, InternalError, to_status
from gateway.metrics import LATENCY, REQUESTS
from gateway.service import EmotionService
from gateway.types import ClassifyInput, ClassifyResult

log = logging.getLogger(__name__)
Request = TypeVar("Request")
Response = TypeVar("Response")

SCORE_TYPES = {
    ProblemType.MULTI_LABEL: emotion_pb2.SCORE_TYPE_SIGMOID,
    ProblemType.SINGLE_LABEL: emotion_pb2.SCORE_TYPE_SOFTMAX,
}


def rpc(method: str) -> Callable:
    """Wrap a handler: deadline, metrics, and the one error-to-status mapping."""

    def decorate(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
        @functools.wraps(handler)
        async def wrapper(
            self: EmotionServicer, request: Request, context: grpc.aio.ServicerContext
        ) -> Response:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                remaining = context.time_remaining()
                timeout_s = self.service.settings.default_timeout_s if remaining is None else remaining
                if timeout_s <= 0:
                    raise DeadlineExceeded("the request deadline had already passed")
                try:
                    async with asyncio.timeout(timeout_s):
                        return await handler(self, request, context, timeout_s, started)
                except TimeoutError as exc:
                    raise DeadlineExceeded("the request deadline passed before an answer was ready") from exc
            except GatewayError as exc:
                code, message = to_status(exc)
                await context.abort(code, message)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                # The log gets the type and the stack, not the message (it could quote request
                # text); the client gets a fixed message.
                stack = "".join(traceback.format_tb(exc.__traceback__))
                log.error("unhandled %s in %s:\n%s", type(exc).__name__, method, stack)
                code, message = to_status(InternalError())
                await context.abort(code, message)
            finally:
                REQUESTS.labels(method, code.name).inc()
                LATENCY.labels(method).observe(time.perf_counter() - started)

        return wrapper

    return decorate


def to_proto(result: ClassifyResult, started: float) -> emotion_pb2.ClassifyResponse:
    return emotion_pb2.ClassifyResponse(
        scores=[
            emotion_pb2.LabelScore(label=s.label, score=s.score, threshold=s.threshold, predicted=s.predicted)
            for s in result.scores
        ],
        predicted=list(result.predicted),
        score_type=SCORE_TYPES[result.problem_type],
        token_count=result.token_count,
        truncated=result.truncated,
        max_tokens=result.max_tokens,
        model=result.model,
        model_version=result.model_version,
        server_latency_us=int((time.perf_counter() - started) * 1e6),
    )


class EmotionServicer(emotion_pb2_grpc.EmotionServiceServicer):
    """Implements emotionaware.v1.EmotionService on top of :class:`EmotionService`."""

    def __init__(self, service: EmotionService) -> None:
        self.service = service

    @rpc("Classify")
    async def Classify(
        self,
        request: emotion_pb2.ClassifyRequest,
        context: grpc.aio.ServicerContext,
        timeout_s: float,
        started: float,
    ) -> emotion_pb2.ClassifyResponse:
        result = await self.service.classify(ClassifyInput(text=request.text, model=request.model), timeout_s)
        return to_proto(result, started)
