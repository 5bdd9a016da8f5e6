"""ClassifyStream sessions on the API's messages, for every transport (gRPC's bidirectional
stream, HTTP's WebSocket)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from emotionaware.context import Turn
from emotionaware.v1 import emotion_pb2 as pb
from gateway.conversations import ConversationStore
from gateway.errors import (
    Code,
    DeadlineExceeded,
    GatewayError,
    InternalError,
    InvalidArgument,
    log_unhandled,
    to_status,
)
from gateway.metrics import ITEM_ERRORS, LATENCY, REQUESTS
from gateway.pipeline import Pipeline
from gateway.protocol.convert import Undecodable, error_proto, options_from, to_proto
from gateway.settings import Settings
from gateway.types import ClassifyInput, LongTextMode

MAX_CONVERSATION_ID_CHARS = 128


class StreamSession:
    """One ClassifyStream: answer each message in arrival order, classifying them concurrently.

    Messages are validated, routed and given their conversation's context in arrival order
    (:meth:`prepare`, before any await), then classified as tasks (:meth:`answer`); at most
    ``stream_max_pending`` are in flight, and the stream is not read beyond. Each message gets
    its answer or its error in its own slot; the stream's deadline and a message's
    ``timeout_ms`` bound each message (:meth:`deadline`).
    """

    def __init__(
        self, pipeline: Pipeline, settings: Settings, remaining_s: Callable[[], float | None]
    ) -> None:
        """``remaining_s`` gives the stream's own time left (None: it has no deadline)."""
        self.pipeline = pipeline
        self.settings = settings
        self.remaining_s = remaining_s
        self.store = ConversationStore(
            self.settings.stream_history_turns, self.settings.stream_max_conversations
        )
        # Answers in arrival order: a task per message, None at the end, or the reader's error.
        self.pending: asyncio.Queue[asyncio.Task | BaseException | None] = asyncio.Queue(
            self.settings.stream_max_pending
        )

    def deadline(self, arrived: float, timeout_ms: int) -> float:
        """The documented rule (proto ClassifyStreamRequest.timeout_ms), as a monotonic time."""
        limits = [arrived + timeout_ms / 1000] if timeout_ms else []
        if (stream_remaining := self.remaining_s()) is not None:
            limits.append(time.monotonic() + stream_remaining)
        return min(limits) if limits else arrived + self.settings.default_timeout_s

    def prepare(self, message: pb.ClassifyStreamRequest | Undecodable):
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
            resolved = self.pipeline.resolve(message.model or self.settings.stream_model, options)
            spec = resolved.spec
            history = self.store.history(cid) if spec.context_turns else ()
            request = ClassifyInput(message.text, spec.name, options, history, message.speaker)
            self.pipeline.check_request(request, resolved)
        except GatewayError as exc:
            return exc
        self.store.append(cid, Turn(message.speaker, message.text))
        return request, resolved, self.deadline(arrived, message.timeout_ms)

    async def answer(self, message, sequence: int, prepared) -> pb.ClassifyStreamResponse:
        """The response to one message: its result, or its error in its slot."""
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
                    result = await self.pipeline.classify(request, deadline, resolved, flow=True)
            except TimeoutError as exc:
                raise DeadlineExceeded("the message deadline passed before an answer was ready") from exc
            response.result.CopyFrom(to_proto(result, started))
        except GatewayError as exc:
            response.error.CopyFrom(error_proto(exc))
            ITEM_ERRORS.labels("ClassifyStream", to_status(exc)[0].name).inc()
        except Exception as exc:
            log_unhandled("ClassifyStream", exc)
            response.error.CopyFrom(error_proto(InternalError()))
            ITEM_ERRORS.labels("ClassifyStream", "INTERNAL").inc()
        return response

    async def read(self, request_iterator: AsyncIterator[pb.ClassifyStreamRequest]) -> None:
        """Read messages while fewer than stream_max_pending are unanswered."""
        sequence = 0
        try:
            async for message in request_iterator:
                task = asyncio.create_task(self.answer(message, sequence, self.prepare(message)))
                await self.pending.put(task)
                sequence += 1
            await self.pending.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the writer, which re-raises it
            await self.pending.put(exc)

    async def run(
        self, request_iterator: AsyncIterator[pb.ClassifyStreamRequest]
    ) -> AsyncIterator[pb.ClassifyStreamResponse]:
        """The responses, in arrival order of their messages, until the client half-closes.

        A failure of the session itself (not of one message) raises :class:`InternalError`
        after the responses so far; the transport ends the stream with it.
        """
        code = Code.OK
        opened = time.perf_counter()
        reader = asyncio.create_task(self.read(request_iterator))
        try:
            while (item := await self.pending.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield await item
        except asyncio.CancelledError:
            code = Code.CANCELLED
            raise
        except Exception as exc:
            code = Code.INTERNAL
            log_unhandled("ClassifyStream", exc)
            raise InternalError() from None
        finally:
            await self._close(reader)
            REQUESTS.labels("ClassifyStream", code.name).inc()
            LATENCY.labels("ClassifyStream").observe(time.perf_counter() - opened)

    async def _close(self, reader: asyncio.Task) -> None:
        """Stop reading, cancel unanswered messages, forget the conversations."""
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        while not self.pending.empty():
            item = self.pending.get_nowait()
            if isinstance(item, asyncio.Task):
                item.cancel()
        self.store.clear()
