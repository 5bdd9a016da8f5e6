"""ClassifyStream sessions on the API's messages, for every transport (gRPC's bidirectional
stream, HTTP's WebSocket)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

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
from gateway.feedback.ids import RequestIds
from gateway.metrics import ITEM_ERRORS, LATENCY, REQUESTS
from gateway.pipeline import Pipeline
from gateway.protocol.convert import (
    Undecodable,
    error_proto,
    flags_proto,
    options_from,
    summary_proto,
    to_proto,
)
from gateway.routing import Resolved
from gateway.settings import Settings
from gateway.summaries import Reason, SummaryBook
from gateway.types import ClassifyInput, ClassifyResult, LongTextMode

MAX_CONVERSATION_ID_CHARS = 128


@dataclass(frozen=True)
class _Message:
    """A message as read, in arrival order: what to classify (or why not) and what the
    conversation's summary needs when its answer is written."""

    work: tuple[ClassifyInput, Resolved, float] | GatewayError | None  # None: only ends it
    conversation_id: str = ""
    speaker: str = ""
    counted: bool = False  # added to the conversation's context (a turn of its summary)
    summarize: bool = False
    end: bool = False
    evicted: str | None = None  # a conversation forgotten to make room for this one


class StreamSession:
    """One ClassifyStream: answer each message in arrival order, classifying them concurrently.

    Messages are validated, routed and given their conversation's context in arrival order
    (:meth:`prepare`, before any await), then classified as tasks (:meth:`answer`); at most
    ``stream_max_pending`` are in flight, and the stream is not read beyond. Each message gets
    its answer or its error in its own slot; the stream's deadline and a message's
    ``timeout_ms`` bound each message (:meth:`deadline`).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        settings: Settings,
        remaining_s: Callable[[], float | None],
        ids: RequestIds,
    ) -> None:
        """``remaining_s`` gives the stream's own time left (None: it has no deadline); ``ids``
        signs each answer's request id."""
        self.pipeline = pipeline
        self.ids = ids
        self.settings = settings
        self.remaining_s = remaining_s
        self.store = ConversationStore(
            self.settings.stream_history_turns, self.settings.stream_max_conversations
        )
        self.summaries = SummaryBook(self.settings.stream_summary_turns)
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

    def prepare(self, message: pb.ClassifyStreamRequest | Undecodable) -> _Message:
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
            if message.end_conversation and not message.text:
                self.store.end(cid)
                return _Message(None, cid, message.speaker, summarize=message.summarize, end=True)
            options = options_from(message.options)
            if options.long_text is LongTextMode.CHUNK:
                raise InvalidArgument("options.long_text_mode", "chunk mode is not available on streams")
            resolved = self.pipeline.resolve(message.model or self.settings.stream_model, options)
            spec = resolved.spec
            history = self.store.history(cid) if spec.context_turns else ()
            request = ClassifyInput(message.text, spec.name, options, history, message.speaker)
            self.pipeline.check_request(request, resolved)
        except GatewayError as exc:
            if (
                not isinstance(message, Undecodable)
                and message.end_conversation
                and 0 < len(message.conversation_id) <= MAX_CONVERSATION_ID_CHARS
            ):
                # A last message that fails validation still ends its conversation.
                self.store.end(message.conversation_id)
                return _Message(
                    exc, message.conversation_id, message.speaker, summarize=message.summarize, end=True
                )
            return _Message(exc)
        evicted = self.store.append(cid, Turn(message.speaker, message.text))
        if message.end_conversation:
            self.store.end(cid)
        work = (request, resolved, self.deadline(arrived, message.timeout_ms))
        return _Message(
            work, cid, message.speaker, True, message.summarize, message.end_conversation, evicted
        )

    async def answer(
        self, message, sequence: int, prepared: _Message
    ) -> tuple[pb.ClassifyStreamResponse, _Message, ClassifyResult | None]:
        """The response to one message: its result, or its error in its slot."""
        started = time.perf_counter()
        response = pb.ClassifyStreamResponse(sequence=sequence)
        result = None
        if not isinstance(message, Undecodable):
            response.conversation_id = message.conversation_id
            response.message_id = message.message_id
        try:
            if isinstance(prepared.work, GatewayError):
                raise prepared.work
            if prepared.work is not None:
                request, resolved, deadline = prepared.work
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                        result = await self.pipeline.classify(request, deadline, resolved, flow=True)
                except TimeoutError as exc:
                    raise DeadlineExceeded("the message deadline passed before an answer was ready") from exc
                response.result.CopyFrom(to_proto(result, started))
                response.result.request_id = self.ids.issue(result.model, result.model_version, request.text)
        except GatewayError as exc:
            response.error.CopyFrom(error_proto(exc))
            ITEM_ERRORS.labels("ClassifyStream", to_status(exc)[0].name).inc()
        except Exception as exc:
            log_unhandled("ClassifyStream", exc)
            response.error.CopyFrom(error_proto(InternalError()))
            ITEM_ERRORS.labels("ClassifyStream", "INTERNAL").inc()
        return response, prepared, result

    def summarize(
        self, response: pb.ClassifyStreamResponse, prepared: _Message, result: ClassifyResult | None
    ) -> pb.ClassifyStreamResponse:
        """Summaries and conversation rules, in the order the messages arrived (as answers are
        written), so a summary never counts a later turn before an earlier one."""
        if prepared.evicted is not None:
            response.evicted.append(summary_proto(self.summaries.summary(prepared.evicted, Reason.EVICTED)))
            self.summaries.drop(prepared.evicted)
        cid = prepared.conversation_id
        if prepared.counted:
            spec = prepared.work[1].spec if isinstance(prepared.work, tuple) else None
            _, flags = self.summaries.record(
                cid, prepared.speaker, result, spec, self.pipeline.table.policies
            )
            response.flags.extend(flags_proto(flags))
        if prepared.end:
            response.summary.CopyFrom(summary_proto(self.summaries.summary(cid, Reason.ENDED)))
            self.summaries.drop(cid)
        elif prepared.summarize and cid:
            response.summary.CopyFrom(summary_proto(self.summaries.summary(cid, Reason.REQUESTED)))
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
                yield self.summarize(*await item)
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
