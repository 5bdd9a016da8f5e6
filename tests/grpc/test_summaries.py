"""Conversation summaries on ClassifyStream: on request, at the end (also when the last message
fails validation, or has no text), and when a conversation is evicted for room."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest

from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.server import GatewayServer

pytestmark = pytest.mark.grpc


def message(cid: str, speaker: str, text: str, **fields) -> pb.ClassifyStreamRequest:
    return pb.ClassifyStreamRequest(conversation_id=cid, speaker=speaker, text=text, **fields)


async def test_a_summary_on_request_and_at_an_end_that_fails_validation(stub):
    requests = [
        message("a", "ann", "I lost my job today."),
        message("a", "bob", "Oh no, I'm so sorry.", summarize=True),
        message("a", "ann", " \u200b ", end_conversation=True),  # invalid text, but the end holds
        message("a", "ann", "Hello again"),  # a new conversation with the same id
        message("b", "cat", "", end_conversation=True),  # only ends (a conversation never seen)
    ]
    replies = [r async for r in stub.ClassifyStream(iter(requests), timeout=60)]
    running = replies[1].summary
    assert (
        running.reason == pb.SUMMARY_REASON_REQUESTED
        and running.turns == 2
        and running.model == "conversation"
    )
    assert [s.speaker for s in running.speakers] == ["ann", "bob"]
    ended = replies[2]
    assert (
        ended.WhichOneof("outcome") == "error"
        and ended.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    )
    assert ended.summary.reason == pb.SUMMARY_REASON_ENDED and ended.summary.turns == 2
    assert replies[3].result.context_turns == 0  # the ended conversation's turns are gone
    assert replies[4].WhichOneof("outcome") is None and replies[4].summary.turns == 0


async def test_an_evicted_conversation_reports_its_final_summary(gateway, backend):
    settings, _ = gateway
    server = GatewayServer(
        replace(settings, listen="127.0.0.1:0", http_listen="", stream_max_conversations=2), backend=backend
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            requests = [
                message("a", "ann", "Great news, I passed!"),
                message("a", "bob", "Congratulations!"),
                message("b", "cat", "Is anyone there?"),
                message("c", "dan", "Hi."),  # a third conversation: "a" (least recently used) goes
            ]
            replies = [r async for r in stub.ClassifyStream(iter(requests), timeout=60)]
    finally:
        await server.stop()
    assert [len(r.evicted) for r in replies] == [0, 0, 0, 1]
    (evicted,) = replies[3].evicted
    assert (
        evicted.conversation_id == "a" and evicted.reason == pb.SUMMARY_REASON_EVICTED and evicted.turns == 2
    )
    assert {s.speaker for s in evicted.speakers} == {"ann", "bob"} and evicted.labels
