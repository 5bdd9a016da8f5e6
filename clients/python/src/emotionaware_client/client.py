"""The synchronous client, :class:`EmotionClient`."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, Literal, TypeVar

import grpc

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
from emotionaware_client.errors import EmotionAwareError, UnavailableError
from emotionaware_client.retry import RetryPolicy, call_with_retry
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

__all__ = ["DEFAULT_TIMEOUT_S", "Conversation", "EmotionClient"]

T = TypeVar("T")

#: Default deadline of a call, retries included, in seconds.
DEFAULT_TIMEOUT_S = 10.0
#: Default number of ClassifyBatch calls ``classify_batch`` keeps open at once.
DEFAULT_CONCURRENCY = 4
_UNSET: Any = object()


def _grpc_timeout(remaining: float | None) -> float | None:
    return None if remaining is None else max(remaining, 0.001)


class EmotionClient:
    """Synchronous client of ``emotionaware.v1.EmotionService``.

    Args:
        target: the gateway's ``host:port``.
        token: bearer token, sent as ``authorization: Bearer <token>`` on every call.
        tls: False for plaintext, True for TLS with the system's CAs, or a :class:`TlsConfig`
            (own CA, mutual TLS).
        timeout: default deadline of each call in seconds, retries included (None: no
            client deadline; the server applies its own, 10 s by default).
        retries: how UNAVAILABLE and RESOURCE_EXHAUSTED are retried (:class:`RetryPolicy`;
            ``RetryPolicy.none()`` disables retries).

    Use it as a context manager, or call :meth:`close` when done. It is thread-safe.
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
        self._channel: grpc.Channel = (
            grpc.secure_channel(target, config.credentials(), options=options)
            if config is not None
            else grpc.insecure_channel(target, options=options)
        )
        stub_class: Any = emotion_pb2_grpc.EmotionServiceStub  # generated, untyped
        self._stub: Any = stub_class(self._channel)
        self._limits = _batching.LimitCache()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; calls still running are cancelled."""
        self._channel.close()

    def __enter__(self) -> EmotionClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _unary(self, method: str, request: object, timeout: float | None, retry: bool = True) -> Any:
        """Call ``method`` with retries; raises :class:`EmotionAwareError`."""
        multicallable: Callable[..., Any] = getattr(self._stub, method)

        def attempt(remaining: float | None) -> Any:
            try:
                return multicallable(request, timeout=_grpc_timeout(remaining), metadata=self._metadata)
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None

        policy = self.retries if retry else RetryPolicy.none()
        return call_with_retry(attempt, policy, timeout)

    def _timeout(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is _UNSET else timeout

    # -- classification --------------------------------------------------------------------

    def classify(
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
        """Classify one text.

        Args:
            text: the text (at least one visible character, at most the model's limit).
            model: model name or alias ("": the server's ``default`` alias).
            context: earlier turns, oldest first, as :class:`Turn` or ``(speaker, text)``
                (for models that read context, e.g. ``conversation``).
            speaker: speaker of ``text``, compared with the context's speakers.
            view: label set (:class:`View` or its value, e.g. ``"ekman"``).
            top_k: at most this many labels in ``predicted`` and ``scores`` (0: no limit).
            threshold: one decision threshold for every label (multi-label models).
            return_all_scores: list every label of the view in ``scores``.
            long_text: what to do with text over the token limit (:class:`LongTextMode`).
            traffic_class: how the server admits the call when busy (:class:`TrafficClass`).
            model_version: pin a model version ("": the routed one).
            timeout: deadline in seconds, retries included (default: the client's).

        Raises:
            EmotionAwareError: the subclass of the call's status code, e.g.
                :class:`InvalidArgumentError` (the message names the field) or
                :class:`NotFoundError` (unknown model).
        """
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
        response: pb.ClassifyResponse = self._unary("Classify", request, self._timeout(timeout))
        return _convert.result(response)

    def analyze(
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
        response: pb.AnalyzeResponse = self._unary("Analyze", request, self._timeout(timeout))
        return _convert.analyze(response)

    def submit_feedback(
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
        response: pb.SubmitFeedbackResponse = self._unary("SubmitFeedback", request, self._timeout(timeout))
        return int(response.feedback_id)

    def batch_limit(self, model: str = "") -> int:
        """Most texts per ClassifyBatch call for ``model`` (GetModel's ``max_batch_texts``, cached).

        Falls back to 256 when GetModel fails for any reason but NOT_FOUND (which is raised).
        """
        cached = self._limits.get(model)
        if cached is not None:
            return cached
        try:
            info = self.model(model)
        except EmotionAwareError as error:
            return self._limits.put(model, _batching.LimitCache.fallback(error))
        return self._limits.put(model, info.max_batch_texts)

    def classify_batch(
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
        """Classify any number of texts with one model; results come back in input order.

        The texts are split into ClassifyBatch calls of at most the model's
        ``max_batch_texts`` (read once with GetModel and cached; 256 when it cannot be read),
        at most ``concurrency`` of them open at once, each retried per the client's policy.

        Returns:
            One item per text, in order: a :class:`ClassifyResult`, or an :class:`ItemError`
            for a text that is invalid on its own (empty, too long); one bad text never
            fails the others.

        Args:
            texts: the texts (a sequence of strings, any length; empty: no call).
            model: model name or alias, as in :meth:`classify`.
            concurrency: most calls open at once (default 4).
            on_call_error: when a whole call fails (after retries): ``"raise"`` its error
                (default), or ``"items"`` to put an :class:`ItemError` in each of its slots
                and go on with the other calls.
            timeout: deadline of each call in seconds, retries included.

            The other options are those of :meth:`classify`, applied to every text.

        Raises:
            EmotionAwareError: a call-level failure (unknown model, bad options, ...).
        """
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
        slices = _batching.plan(len(texts), self.batch_limit(model))
        deadline = self._timeout(timeout)

        def run(start: int, stop: int) -> list[BatchItem]:
            request = pb.ClassifyBatchRequest(texts=texts[start:stop], model=model, options=options)
            try:
                response: pb.ClassifyBatchResponse = self._unary("ClassifyBatch", request, deadline)
            except EmotionAwareError as error:
                if on_call_error == "raise":
                    raise
                return [ItemError(i, error.code, error.message) for i in range(start, stop)]
            return _convert.batch_items(response, start)

        if len(slices) == 1:
            return run(*slices[0])
        results: list[BatchItem] = []
        with ThreadPoolExecutor(max_workers=min(concurrency, len(slices))) as pool:
            futures: list[Future[list[BatchItem]]] = [pool.submit(run, *s) for s in slices]
            try:
                for future in futures:
                    results.extend(future.result())
            finally:
                for future in futures:
                    future.cancel()
        return results

    # -- conversations ---------------------------------------------------------------------

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
    ) -> Conversation:
        """Open a conversation on the ClassifyStream stream; use it as a context manager.

        Args:
            model: model name or alias ("": the server's conversation model).
            conversation_id: the conversation's id (default: a random one).
            message_timeout: deadline of each message in seconds (default: the client's
                timeout), counted by the server from when it reads the message.

            The other options are those of :meth:`classify`, applied to every message.
        """
        timeout = self._timeout(message_timeout)
        return Conversation(
            self._stub,
            self._metadata,
            model=model,
            conversation_id=conversation_id or uuid.uuid4().hex,
            options=_convert.options(
                view=view, top_k=top_k, threshold=threshold, return_all_scores=return_all_scores
            ),
            timeout_ms=0 if timeout is None else max(1, round(timeout * 1000)),
        )

    # -- models and health -----------------------------------------------------------------

    def models(self, *, timeout: float | None = _UNSET) -> Models:
        """Every served model and alias (ListModels)."""
        response: pb.ListModelsResponse = self._unary(
            "ListModels", pb.ListModelsRequest(), self._timeout(timeout)
        )
        return _convert.models(response)

    def model(self, name: str = "", *, timeout: float | None = _UNSET) -> ModelInfo:
        """One model, named directly or through an alias ("": ``default``) (GetModel).

        Raises:
            NotFoundError: the name is not served.
        """
        response: pb.GetModelResponse = self._unary(
            "GetModel", pb.GetModelRequest(model=name), self._timeout(timeout)
        )
        info = _convert.model_info(response.model)
        self._limits.put(name, info.max_batch_texts)
        return info

    def health(self, service: str = "", *, timeout: float | None = _UNSET) -> str:
        """The server's grpc.health.v1 status of ``service`` ("": the whole server).

        Returns ``"SERVING"``, ``"NOT_SERVING"``, ``"SERVICE_UNKNOWN"`` or ``"UNKNOWN"``.
        """
        check = self._channel.unary_unary(
            HEALTH_CHECK,
            request_serializer=encode_health_request,
            response_deserializer=decode_health_response,
        )
        try:
            status: str = check(service, timeout=self._timeout(timeout), metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return status


class Conversation:
    """One conversation on a ClassifyStream stream (from :meth:`EmotionClient.conversation`).

    Each :meth:`send` classifies one turn with the conversation's earlier turns as context
    (kept by the server for the lifetime of the stream) and returns its result. Turns are
    not retried: a failed turn may already be in the server's context.
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
        self._options = options
        self._timeout_ms = timeout_ms
        self._requests: queue.Queue[pb.ClassifyStreamRequest | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._responses: Iterator[pb.ClassifyStreamResponse] = stub.ClassifyStream(
            self._feed(), metadata=call_metadata
        )

    def _feed(self) -> Iterator[pb.ClassifyStreamRequest]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def send(
        self, speaker: str, text: str, *, message_id: str = "", summarize: bool = False
    ) -> ClassifyResult:
        """Classify the next turn of the conversation and return its result.

        ``summarize``: also fetch the conversation's running summary (in :attr:`summary`).
        Conversation rules this turn made match are in :attr:`alerts`.

        Raises:
            EmotionAwareError: this turn failed (the stream goes on), or the stream did.
        """
        with self._lock:
            if self._closed:
                raise ValueError("the conversation is closed")
            self._requests.put(
                pb.ClassifyStreamRequest(
                    conversation_id=self.conversation_id,
                    speaker=speaker,
                    text=text,
                    message_id=message_id,
                    model=self.model,
                    options=self._options,
                    timeout_ms=self._timeout_ms,
                    summarize=summarize,
                )
            )
            try:
                response = next(self._responses)
            except grpc.RpcError as error:
                self._closed = True
                raise from_rpc_error(error) from None
            except StopIteration:
                self._closed = True
                raise UnavailableError("the server ended the stream") from None
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

    def end(self) -> ConversationSummary:
        """End the conversation and return its final summary; the server forgets it (a later
        :meth:`send` starts a new conversation on the same stream)."""
        with self._lock:
            if self._closed:
                raise ValueError("the conversation is closed")
            self._requests.put(
                pb.ClassifyStreamRequest(conversation_id=self.conversation_id, end_conversation=True)
            )
            try:
                response = next(self._responses)
            except grpc.RpcError as error:
                self._closed = True
                raise from_rpc_error(error) from None
            except StopIteration:
                self._closed = True
                raise UnavailableError("the server ended the stream") from None
            failure = _convert.stream_error(response)
            if failure is not None:
                raise failure
            if not response.HasField("summary"):
                raise UnavailableError("the server did not send the conversation's final summary")
            self._note(response)
            return _convert.summary(response.summary)

    def close(self) -> None:
        """End the stream (waits for the server to close it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._requests.put(None)
            try:
                for _ in self._responses:
                    pass
            except grpc.RpcError:
                pass

    def __enter__(self) -> Conversation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
