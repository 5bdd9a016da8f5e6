"""The asyncio client, :class:`AsyncEmotionClient` (grpc.aio)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Literal

import grpc
import grpc.aio

from emotionaware_client import _batching, _convert
from emotionaware_client._channel import (
    HEALTH_CHECK,
    TlsConfig,
    channel_options,
    decode_health_response,
    encode_health_request,
    from_rpc_error,
    metadata,
    tls_config,
)
from emotionaware_client._proto import emotion_pb2 as pb
from emotionaware_client._proto import emotion_pb2_grpc
from emotionaware_client.client import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S, _grpc_timeout
from emotionaware_client.errors import EmotionAwareError, UnavailableError
from emotionaware_client.retry import RetryPolicy, call_with_retry_async
from emotionaware_client.types import (
    AnalyzeResult,
    BatchItem,
    ClassifyResult,
    ConversationSummary,
    Flag,
    ItemError,
    LongTextMode,
    ModelInfo,
    Models,
    TrafficClass,
    Turn,
    View,
)

__all__ = ["AsyncConversation", "AsyncEmotionClient"]

_UNSET: Any = object()
# The end-of-stream marker of grpc.aio reads (missing from the type stubs).
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]


class AsyncEmotionClient:
    """asyncio client of ``emotionaware.v1.EmotionService``, with the API of :class:`EmotionClient`.

    Every method is a coroutine; :meth:`conversation` returns an async context manager.
    Create it inside a running event loop and use it from that loop only.

    Args:
        target: the gateway's ``host:port``.
        token: bearer token, sent as ``authorization: Bearer <token>`` on every call.
        tls: False for plaintext, True for TLS with the system's CAs, or a :class:`TlsConfig`.
        timeout: default deadline of each call in seconds, retries included.
        retries: how UNAVAILABLE and RESOURCE_EXHAUSTED are retried (:class:`RetryPolicy`).
    """

    def __init__(
        self,
        target: str,
        token: str | None = None,
        tls: bool | TlsConfig = False,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        retries: RetryPolicy | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.retries = retries if retries is not None else RetryPolicy()
        self._metadata = metadata(token)
        config = tls_config(tls)
        options = channel_options(config)
        self._channel: grpc.aio.Channel = (
            grpc.aio.secure_channel(target, config.credentials(), options=options)
            if config is not None
            else grpc.aio.insecure_channel(target, options=options)
        )
        stub_class: Any = emotion_pb2_grpc.EmotionServiceStub  # generated, untyped
        self._stub: Any = stub_class(self._channel)
        self._limits = _batching.LimitCache()

    async def close(self) -> None:
        """Close the channel; calls still running are cancelled."""
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncEmotionClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _unary(self, method: str, request: object, timeout: float | None) -> Any:
        multicallable: Callable[..., Awaitable[Any]] = getattr(self._stub, method)

        async def attempt(remaining: float | None) -> Any:
            try:
                return await multicallable(request, timeout=_grpc_timeout(remaining), metadata=self._metadata)
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None

        return await call_with_retry_async(attempt, self.retries, timeout)

    def _timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is _UNSET else timeout

    async def classify(
        self,
        text: str,
        model: str = "",
        context: Iterable[Turn | tuple[str, str]] = (),
        speaker: str = "",
        *,
        view: View | str = View.NATIVE,
        top_k: int = 0,
        threshold: float | None = None,
        return_all_scores: bool = False,
        long_text: LongTextMode | str = LongTextMode.DEFAULT,
        traffic_class: TrafficClass | str = TrafficClass.DEFAULT,
        model_version: str = "",
        timeout: float | None = _UNSET,
    ) -> ClassifyResult:
        """Classify one text (see :meth:`EmotionClient.classify`)."""
        request = pb.ClassifyRequest(
            text=text,
            model=model,
            context=_convert.turns(context),
            speaker=speaker,
            options=_convert.options(
                model_version=model_version,
                view=view,
                top_k=top_k,
                threshold=threshold,
                return_all_scores=return_all_scores,
                long_text=long_text,
                traffic_class=traffic_class,
            ),
        )
        response: pb.ClassifyResponse = await self._unary("Classify", request, self._timeout(timeout))
        return _convert.result(response)

    async def analyze(
        self,
        text: str,
        model: str = "",
        *,
        view: View | str = View.NATIVE,
        top_k: int = 0,
        threshold: float | None = None,
        return_all_scores: bool = False,
        long_text: LongTextMode | str = LongTextMode.DEFAULT,
        traffic_class: TrafficClass | str = TrafficClass.DEFAULT,
        model_version: str = "",
        timeout: float | None = _UNSET,
    ) -> AnalyzeResult:
        """Split ``text`` into sentences and classify each, with a document aggregate.

        Each sentence comes back with its offsets in ``text`` (code points, UTF-8 bytes, UTF-16
        units), its scores and its intensity; the document's scores aggregate the sentences'
        (``AnalyzeResult.aggregation`` names how). At most ``ModelInfo.max_sentences``
        sentences (128 by default).

        Args:
            text: the text (at least one visible character, at most the model's limit).
            model: model name or alias ("": the server's ``default`` alias).
            view, top_k, threshold, return_all_scores, traffic_class, model_version: as for
                :meth:`classify`, applied to every sentence and to the document.
            long_text: per sentence; :attr:`LongTextMode.DEFAULT` windows a sentence longer
                than the token limit, :attr:`LongTextMode.TRUNCATE` cuts it.
            timeout: deadline in seconds, retries included (default: the client's).

        Raises:
            EmotionAwareError: e.g. :class:`InvalidArgumentError` for too many sentences.
        """
        request = pb.AnalyzeRequest(
            text=text,
            model=model,
            options=_convert.options(
                model_version=model_version,
                view=view,
                top_k=top_k,
                threshold=threshold,
                return_all_scores=return_all_scores,
                long_text=long_text,
                traffic_class=traffic_class,
            ),
        )
        response: pb.AnalyzeResponse = await self._unary("Analyze", request, self._timeout(timeout))
        return _convert.analyze(response)

    async def submit_feedback(
        self,
        request_id: str,
        *,
        correct: bool,
        labels: Sequence[str],
        text: str | None = None,
        store_text: bool = False,
        timeout: float | None = _UNSET,
    ) -> int:
        """Tell the service whether an answer was right (stored in its feedback database).

        Args:
            request_id: the answer's ``request_id`` (:attr:`ClassifyResult.request_id`,
                :attr:`AnalyzeResult.request_id`).
            correct: True when the answer was right, False when it was wrong.
            labels: the labels the text should have, among the model's own (for a right answer,
                its predicted labels); exactly one for single-label models.
            text: the answer's text, optional; the server keeps only a salted hash of it
                unless ``store_text`` (needed to train on the feedback).
            store_text: keep ``text`` itself.
            timeout: deadline in seconds, retries included (default: the client's).

        Returns:
            The feedback row's id (the same when the same answer gets feedback again: the
            later verdict replaces the earlier).

        Raises:
            EmotionAwareError: e.g. :class:`InvalidArgumentError` (an id this service did not
                issue, an unknown label, another text), :class:`UnavailableError` (the
                feedback database is not reachable; retried), :class:`UnimplementedError`
                (the server keeps no feedback).
        """
        request = pb.SubmitFeedbackRequest(
            request_id=request_id,
            verdict=pb.VERDICT_CORRECT if correct else pb.VERDICT_WRONG,
            labels=list(labels),
            store_text=store_text,
        )
        if text is not None:
            request.text = text
        response: pb.SubmitFeedbackResponse = await self._unary(
            "SubmitFeedback", request, self._timeout(timeout)
        )
        return int(response.feedback_id)

    async def batch_limit(self, model: str = "") -> int:
        """Most texts per ClassifyBatch call for ``model`` (see :meth:`EmotionClient.batch_limit`)."""
        cached = self._limits.get(model)
        if cached is not None:
            return cached
        try:
            info = await self.model(model)
        except EmotionAwareError as error:
            return self._limits.put(model, _batching.LimitCache.fallback(error))
        return self._limits.put(model, info.max_batch_texts)

    async def classify_batch(
        self,
        texts: Sequence[str],
        model: str = "",
        *,
        view: View | str = View.NATIVE,
        top_k: int = 0,
        threshold: float | None = None,
        return_all_scores: bool = False,
        long_text: LongTextMode | str = LongTextMode.DEFAULT,
        traffic_class: TrafficClass | str = TrafficClass.DEFAULT,
        model_version: str = "",
        concurrency: int = DEFAULT_CONCURRENCY,
        on_call_error: Literal["raise", "items"] = "raise",
        timeout: float | None = _UNSET,
    ) -> list[BatchItem]:
        """Classify any number of texts, in order (see :meth:`EmotionClient.classify_batch`)."""
        texts = _convert.texts_of(texts)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not texts:
            return []
        options = _convert.options(
            model_version=model_version,
            view=view,
            top_k=top_k,
            threshold=threshold,
            return_all_scores=return_all_scores,
            long_text=long_text,
            traffic_class=traffic_class,
        )
        slices = _batching.plan(len(texts), await self.batch_limit(model))
        deadline = self._timeout(timeout)
        gate = asyncio.Semaphore(concurrency)

        async def run(start: int, stop: int) -> list[BatchItem]:
            request = pb.ClassifyBatchRequest(texts=texts[start:stop], model=model, options=options)
            async with gate:
                try:
                    response: pb.ClassifyBatchResponse = await self._unary("ClassifyBatch", request, deadline)
                except EmotionAwareError as error:
                    if on_call_error == "raise":
                        raise
                    return [ItemError(i, error.code, error.message) for i in range(start, stop)]
            return _convert.batch_items(response, start)

        tasks = [asyncio.ensure_future(run(*s)) for s in slices]
        try:
            parts = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        return [item for part in parts for item in part]

    def conversation(
        self,
        model: str = "",
        conversation_id: str | None = None,
        *,
        view: View | str = View.NATIVE,
        top_k: int = 0,
        threshold: float | None = None,
        return_all_scores: bool = False,
        message_timeout: float | None = _UNSET,
    ) -> AsyncConversation:
        """A conversation on the ClassifyStream stream; use ``async with`` (see :meth:`EmotionClient.conversation`)."""
        timeout = self._timeout(message_timeout)
        return AsyncConversation(
            self._stub,
            self._metadata,
            model=model,
            conversation_id=conversation_id or uuid.uuid4().hex,
            options=_convert.options(
                view=view, top_k=top_k, threshold=threshold, return_all_scores=return_all_scores
            ),
            timeout_ms=0 if timeout is None else max(1, round(timeout * 1000)),
        )

    async def models(self, *, timeout: float | None = _UNSET) -> Models:
        """Every served model and alias (ListModels)."""
        response: pb.ListModelsResponse = await self._unary(
            "ListModels", pb.ListModelsRequest(), self._timeout(timeout)
        )
        return _convert.models(response)

    async def model(self, name: str = "", *, timeout: float | None = _UNSET) -> ModelInfo:
        """One model, named directly or through an alias (GetModel); NotFoundError if not served."""
        response: pb.GetModelResponse = await self._unary(
            "GetModel", pb.GetModelRequest(model=name), self._timeout(timeout)
        )
        info = _convert.model_info(response.model)
        self._limits.put(name, info.max_batch_texts)
        return info

    async def health(self, service: str = "", *, timeout: float | None = _UNSET) -> str:
        """The server's grpc.health.v1 status of ``service`` (see :meth:`EmotionClient.health`)."""
        check = self._channel.unary_unary(
            HEALTH_CHECK,
            request_serializer=encode_health_request,
            response_deserializer=decode_health_response,
        )
        try:
            status: str = await check(service, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return status


class AsyncConversation:
    """One conversation on a ClassifyStream stream (from :meth:`AsyncEmotionClient.conversation`).

    ``async with client.conversation() as talk: result = await talk.send("ann", "Hi!")``.
    Turns are not retried: a failed turn may already be in the server's context.
    """

    def __init__(
        self,
        stub: Any,
        call_metadata: tuple[tuple[str, str], ...],
        *,
        model: str,
        conversation_id: str,
        options: pb.ClassifyOptions,
        timeout_ms: int,
    ) -> None:
        self.conversation_id = conversation_id
        self.model = model
        self.turns = 0
        self.summary: ConversationSummary | None = None
        """The latest summary the server sent (``send(..., summarize=True)``, :meth:`end`)."""
        self.alerts: tuple[Flag, ...] = ()
        """Conversation rules the latest turn made match (the server's policies)."""
        self._stub = stub
        self._metadata = call_metadata
        self._options = options
        self._timeout_ms = timeout_ms
        self._call: Any = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def open(self) -> AsyncConversation:
        """Open the stream (``async with`` does it)."""
        if self._call is None:
            self._call = self._stub.ClassifyStream(metadata=self._metadata)
        return self

    async def send(
        self, speaker: str, text: str, *, message_id: str = "", summarize: bool = False
    ) -> ClassifyResult:
        """Classify the next turn of the conversation and return its result.

        ``summarize``: also fetch the conversation's running summary (in :attr:`summary`).
        Conversation rules this turn made match are in :attr:`alerts`.

        Raises:
            EmotionAwareError: this turn failed (the stream goes on), or the stream did.
        """
        async with self._lock:
            if self._closed:
                raise ValueError("the conversation is closed")
            await self.open()
            request = pb.ClassifyStreamRequest(
                conversation_id=self.conversation_id,
                speaker=speaker,
                text=text,
                message_id=message_id,
                model=self.model,
                options=self._options,
                timeout_ms=self._timeout_ms,
                summarize=summarize,
            )
            try:
                await self._call.write(request)
                response = await self._call.read()
            except grpc.RpcError as error:
                self._closed = True
                raise from_rpc_error(error) from None
            if response is _EOF:
                self._closed = True
                raise UnavailableError("the server ended the stream")
            self.turns += 1
            self._note(response)
            failure = _convert.stream_error(response)
            if failure is not None:
                raise failure
            return _convert.result(response.result)

    def _note(self, response: pb.ClassifyStreamResponse) -> None:
        if response.HasField("summary"):
            self.summary = _convert.summary(response.summary)
        self.alerts = tuple(_convert.flag(f) for f in response.flags)

    async def end(self) -> ConversationSummary:
        """End the conversation and return its final summary; the server forgets it (a later
        :meth:`send` starts a new conversation on the same stream)."""
        async with self._lock:
            if self._closed:
                raise ValueError("the conversation is closed")
            await self.open()
            try:
                await self._call.write(
                    pb.ClassifyStreamRequest(conversation_id=self.conversation_id, end_conversation=True)
                )
                response = await self._call.read()
            except grpc.RpcError as error:
                self._closed = True
                raise from_rpc_error(error) from None
            if response is _EOF:
                self._closed = True
                raise UnavailableError("the server ended the stream")
            failure = _convert.stream_error(response)
            if failure is not None:
                raise failure
            if not response.HasField("summary"):
                raise UnavailableError("the server did not send the conversation's final summary")
            self._note(response)
            return _convert.summary(response.summary)

    async def close(self) -> None:
        """End the stream (waits for the server to close it)."""
        async with self._lock:
            if self._closed or self._call is None:
                self._closed = True
                return
            self._closed = True
            try:
                await self._call.done_writing()
                while await self._call.read() is not _EOF:
                    pass
            except grpc.RpcError:
                pass

    async def __aenter__(self) -> AsyncConversation:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
