"""gRPC servicer: the thin adapter between gRPC calls and the API's methods.

Each unary handler hands its decoded request and the call's remaining time to
:meth:`gateway.protocol.service.EmotionApi.call` and maps a raised error through the one
table (gateway/grpc/status.py); ClassifyStream runs a stream session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.errors import GatewayError
from gateway.grpc.status import grpc_status, set_status
from gateway.protocol.service import EmotionApi


def _unary(method: str) -> Callable[..., Any]:
    async def handler(self: EmotionServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await self.api.call(method, request, context.time_remaining())
        except GatewayError as exc:
            set_status(context, exc)
            return None

    handler.__name__ = method
    return handler


class EmotionServicer(emotion_pb2_grpc.EmotionServiceServicer):
    """Implements emotionaware.v1.EmotionService over gRPC."""

    def __init__(self, api: EmotionApi) -> None:
        self.api = api

    Classify = _unary("Classify")
    ClassifyBatch = _unary("ClassifyBatch")
    Analyze = _unary("Analyze")
    SubmitFeedback = _unary("SubmitFeedback")
    ListModels = _unary("ListModels")
    GetModel = _unary("GetModel")

    async def ClassifyStream(
        self, request_iterator: AsyncIterator[pb.ClassifyStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ClassifyStreamResponse]:
        """Answer each message in arrival order (see :class:`gateway.protocol.stream.StreamSession`)."""
        try:
            async for response in self.api.stream(context.time_remaining).run(request_iterator):
                yield response
        except GatewayError as exc:
            await context.abort(*grpc_status(exc))
