"""The client against an in-process fake server: real gRPC, retry-after honoured, token sent,
typed errors, conversations (runs in the client's dev venv)."""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import pytest
from emotionaware_client import (
    AsyncEmotionClient,
    EmotionClient,
    InvalidArgumentError,
    ResourceExhaustedError,
    RetryEvent,
    RetryPolicy,
    UnimplementedError,
)
from emotionaware_client._proto import emotion_pb2 as pb

pytestmark = pytest.mark.grpc

RETRY_AFTER_MS = 300


class Fake:
    """Classify refuses the first ``refusals`` calls with RESOURCE_EXHAUSTED and retry-after-ms."""

    def __init__(self, refusals: int = 1) -> None:
        self.refusals = refusals
        self.arrivals: list[float] = []
        self.authorization: list[str] = []

    def classify(self, request: pb.ClassifyRequest, context: grpc.ServicerContext) -> pb.ClassifyResponse:
        self.arrivals.append(time.monotonic())
        self.authorization.append(dict(context.invocation_metadata()).get("authorization", ""))
        if not request.text.strip():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text: must hold at least one visible character")
        if self.refusals:
            self.refusals -= 1
            context.set_trailing_metadata((("retry-after-ms", str(RETRY_AFTER_MS)),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "over quota; retry after 300 ms")
        return pb.ClassifyResponse(
            scores=[pb.LabelScore(label="joy", score=0.9, threshold=0.5, predicted=True)],
            predicted=["joy"],
            score_type=pb.SCORE_TYPE_SIGMOID,
            model="goemotions",
            model_version="1",
            token_count=4,
        )

    def stream(self, requests, context):
        turns: dict[str, int] = {}
        for i, request in enumerate(requests):
            seen = turns.get(request.conversation_id, 0)
            turns[request.conversation_id] = seen + 1
            if request.text == "bad":
                yield pb.ClassifyStreamResponse(sequence=i, error=pb.Error(code=3, message="text: empty"))
                continue
            yield pb.ClassifyStreamResponse(
                conversation_id=request.conversation_id,
                sequence=i,
                result=pb.ClassifyResponse(
                    predicted=[request.speaker], context_turns=seen, model="conversation"
                ),
            )


@pytest.fixture
def server():
    fake = Fake()
    handlers = {
        "Classify": grpc.unary_unary_rpc_method_handler(
            fake.classify,
            request_deserializer=pb.ClassifyRequest.FromString,
            response_serializer=pb.ClassifyResponse.SerializeToString,
        ),
        "ClassifyStream": grpc.stream_stream_rpc_method_handler(
            fake.stream,
            request_deserializer=pb.ClassifyStreamRequest.FromString,
            response_serializer=pb.ClassifyStreamResponse.SerializeToString,
        ),
    }
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    grpc_server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("emotionaware.v1.EmotionService", handlers),)
    )
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield fake, f"127.0.0.1:{port}"
    grpc_server.stop(None)


def test_retry_after_is_honoured_and_token_sent(server):
    fake, target = server
    events: list[RetryEvent] = []
    with EmotionClient(
        target, token="s3cret", retries=RetryPolicy(initial_backoff_s=0.01, on_retry=events.append)
    ) as client:
        result = client.classify("I am so happy")
    assert result.predicted == ["joy"] and result.score_type == "sigmoid"
    assert len(fake.arrivals) == 2
    slept = fake.arrivals[1] - fake.arrivals[0]
    assert slept >= RETRY_AFTER_MS / 1000, slept
    assert events[0].error.retry_after_ms == RETRY_AFTER_MS and isinstance(
        events[0].error, ResourceExhaustedError
    )
    assert fake.authorization == ["Bearer s3cret"] * 2


def test_without_retries_the_typed_error_carries_retry_after(server):
    fake, target = server
    with (
        EmotionClient(target, retries=RetryPolicy.none()) as client,
        pytest.raises(ResourceExhaustedError) as raised,
    ):
        client.classify("hello")
    assert raised.value.retry_after_ms == RETRY_AFTER_MS and "over quota" in raised.value.message
    assert fake.authorization == [""]


def test_invalid_argument_is_not_retried(server):
    fake, target = server
    with EmotionClient(target) as client, pytest.raises(InvalidArgumentError, match="text"):
        client.classify("   ")
    assert len(fake.arrivals) == 1


def test_unimplemented_health(server):
    _, target = server
    with EmotionClient(target) as client, pytest.raises(UnimplementedError):
        client.health()


def test_conversation_turns(server):
    fake, target = server
    fake.refusals = 0
    with EmotionClient(target) as client, client.conversation(conversation_id="c1") as talk:
        assert talk.send("ann", "hi").context_turns == 0
        with pytest.raises(InvalidArgumentError):
            talk.send("bob", "bad")
        third = talk.send("bob", "hello")
    assert third.predicted == ["bob"] and third.context_turns == 2 and talk.turns == 3


async def test_async_client_retry_and_conversation(server):
    fake, target = server
    async with AsyncEmotionClient(target, token="t", retries=RetryPolicy(initial_backoff_s=0.01)) as client:
        result = await client.classify("yay")
        async with client.conversation() as talk:
            await talk.send("ann", "one")
            second = await talk.send("bob", "two")
    assert result.predicted == ["joy"] and fake.arrivals[1] - fake.arrivals[0] >= RETRY_AFTER_MS / 1000
    assert second.context_turns == 1


def test_deadline_exceeded_is_typed(server):
    from emotionaware_client import DeadlineExceededError

    fake, target = server
    fake.refusals = (
        100  # every call refused with retry-after 300 ms: a 0.5 s deadline allows 2 attempts at most
    )
    started = time.monotonic()
    with (
        EmotionClient(target, timeout=0.5) as client,
        pytest.raises((ResourceExhaustedError, DeadlineExceededError)),
    ):
        client.classify("x")
    assert time.monotonic() - started < 0.8 and len(fake.arrivals) <= 2
