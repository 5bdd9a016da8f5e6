"""The API's unary methods on its protobuf messages, for every transport.

A transport decodes a request (gRPC from protobuf bytes, HTTP from the canonical JSON
mapping), calls :meth:`EmotionApi.call` with the caller's remaining time, and encodes the
response or maps the raised :class:`gateway.errors.GatewayError` through the one error table.
Deadlines, the request metrics and the error boundary live here once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from emotionaware.context import Turn
from emotionaware.v1 import emotion_pb2 as pb
from gateway.callers import current_call
from gateway.errors import (
    Code,
    DeadlineExceeded,
    GatewayError,
    InternalError,
    InvalidArgument,
    Unimplemented,
    log_unhandled,
    to_status,
)
from gateway.feedback.ids import RequestIds, load_key
from gateway.feedback.writer import FeedbackWriter
from gateway.metrics import ITEM_ERRORS, LATENCY, REQUESTS
from gateway.pipeline import Pipeline
from gateway.protocol.convert import (
    Undecodable,
    analyze_proto,
    error_proto,
    model_info,
    options_from,
    to_proto,
)
from gateway.protocol.feedback import feedback_submission
from gateway.protocol.stream import StreamSession
from gateway.settings import Settings
from gateway.types import AnalyzeInput, ClassifyInput

# The unary methods: name -> (request type, response type).
UNARY_METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "Classify": (pb.ClassifyRequest, pb.ClassifyResponse),
    "ClassifyBatch": (pb.ClassifyBatchRequest, pb.ClassifyBatchResponse),
    "Analyze": (pb.AnalyzeRequest, pb.AnalyzeResponse),
    "SubmitFeedback": (pb.SubmitFeedbackRequest, pb.SubmitFeedbackResponse),
    "ListModels": (pb.ListModelsRequest, pb.ListModelsResponse),
    "GetModel": (pb.GetModelRequest, pb.GetModelResponse),
}


class EmotionApi:
    """Implements emotionaware.v1.EmotionService on top of the request pipeline."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: Settings,
        ids: RequestIds | None = None,
        feedback: FeedbackWriter | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.ids = ids or RequestIds(load_key(settings.request_id_key_file))
        self.feedback = feedback
        self._handlers: dict[str, Callable[[Message, float, float], Awaitable[Message]]] = {
            "Classify": self.classify,  # type: ignore[dict-item]
            "ClassifyBatch": self.classify_batch,  # type: ignore[dict-item]
            "Analyze": self.analyze,  # type: ignore[dict-item]
            "SubmitFeedback": self.submit_feedback,  # type: ignore[dict-item]
            "ListModels": self.list_models,  # type: ignore[dict-item]
            "GetModel": self.get_model,  # type: ignore[dict-item]
        }

    async def call(self, method: str, request: Message | Undecodable, remaining_s: float | None) -> Message:
        """Run one unary ``method``: the response, or a raised :class:`GatewayError`.

        ``remaining_s`` is the caller's time left (None: ``default_timeout_s``). Counts the call
        in the request metrics under the code it ends with.
        """
        started = time.perf_counter()
        code = Code.OK
        try:
            if isinstance(request, Undecodable):
                raise InvalidArgument(request.field, request.problem)
            timeout_s = self.settings.default_timeout_s if remaining_s is None else remaining_s
            if timeout_s <= 0:
                raise DeadlineExceeded("the request deadline had already passed")
            try:
                async with asyncio.timeout(timeout_s):
                    return await self._handlers[method](request, time.monotonic() + timeout_s, started)
            except TimeoutError as exc:
                raise DeadlineExceeded("the request deadline passed before an answer was ready") from exc
        except GatewayError as exc:
            code = to_status(exc)[0]
            raise
        except asyncio.CancelledError:
            code = Code.CANCELLED
            raise
        except Exception as exc:
            log_unhandled(method, exc)
            code = Code.INTERNAL
            raise InternalError() from None
        finally:
            REQUESTS.labels(method, code.name).inc()
            LATENCY.labels(method).observe(time.perf_counter() - started)

    def stream(self, remaining_s: Callable[[], float | None]) -> StreamSession:
        """A ClassifyStream session; ``remaining_s`` gives the stream's time left (None: no deadline)."""
        return StreamSession(self.pipeline, self.settings, remaining_s, self.ids)

    async def classify(
        self, request: pb.ClassifyRequest, deadline: float, started: float
    ) -> pb.ClassifyResponse:
        options = options_from(request.options)
        turns = tuple(Turn(t.speaker, t.text) for t in request.context)
        result = await self.pipeline.classify(
            ClassifyInput(request.text, request.model, options, turns, request.speaker), deadline
        )
        response = to_proto(result, started)
        response.request_id = self.ids.issue(result.model, result.model_version, request.text)
        return response

    async def classify_batch(
        self, request: pb.ClassifyBatchRequest, deadline: float, started: float
    ) -> pb.ClassifyBatchResponse:
        options = options_from(request.options)
        outcomes = await self.pipeline.classify_batch(list(request.texts), request.model, options, deadline)
        items = []
        for text, outcome in zip(request.texts, outcomes, strict=True):
            if isinstance(outcome, GatewayError):
                items.append(pb.BatchItem(error=error_proto(outcome)))
                ITEM_ERRORS.labels("ClassifyBatch", to_status(outcome)[0].name).inc()
            else:
                item = pb.BatchItem(result=to_proto(outcome, started))
                item.result.request_id = self.ids.issue(outcome.model, outcome.model_version, text)
                items.append(item)
        return pb.ClassifyBatchResponse(
            items=items, server_latency_us=int((time.perf_counter() - started) * 1e6)
        )

    async def analyze(
        self, request: pb.AnalyzeRequest, deadline: float, started: float
    ) -> pb.AnalyzeResponse:
        options = options_from(request.options)
        result = await self.pipeline.analyze(AnalyzeInput(request.text, request.model, options), deadline)
        response = analyze_proto(result, started)
        response.request_id = self.ids.issue(
            result.document.model, result.document.model_version, request.text
        )
        return response

    async def submit_feedback(
        self, request: pb.SubmitFeedbackRequest, deadline: float, started: float
    ) -> pb.SubmitFeedbackResponse:
        if self.feedback is None:
            raise Unimplemented("SubmitFeedback is off on this gateway (it has no --feedback-database)")
        submission = feedback_submission(request, self.ids, self.pipeline, current_call())
        return pb.SubmitFeedbackResponse(feedback_id=await self.feedback.submit(submission))

    async def list_models(
        self, request: pb.ListModelsRequest, deadline: float, started: float
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

    async def get_model(
        self, request: pb.GetModelRequest, deadline: float, started: float
    ) -> pb.GetModelResponse:
        table = self.pipeline.table
        resolved = table.resolve(request.model)
        if (call := current_call()) is not None:
            call.check_model(resolved.spec.name)
        return pb.GetModelResponse(model=model_info(table, resolved.spec.name, self.settings))
