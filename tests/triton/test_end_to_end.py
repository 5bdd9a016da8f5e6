"""Client -> gateway (gRPC) -> real Triton -> the trained model, asserting on real predictions.

The sentences were written for this test; none of them occurs in GoEmotions (checked by
``test_sentences_are_not_in_the_training_data``).
"""

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotionaware.v1 import emotion_pb2, emotion_pb2_grpc
from gateway.server import GatewayServer
from gateway.settings import Settings

# text, labels of which at least one must be among the top `k` scores
CASES = [
    ("Thank you so much for your help!", {"gratitude"}, 1),
    ("I miss her so much, I can't stop crying", {"sadness", "grief"}, 2),
    ("This is hilarious, I can't stop laughing lol", {"amusement"}, 1),
    ("I love you more than anything in the world", {"love"}, 1),
    ("I'm terrified of what the biopsy results will show", {"fear", "nervousness"}, 2),
    ("That is absolutely disgusting, I feel sick looking at it", {"disgust"}, 2),
    ("I'm so sorry, it was my fault and I regret it", {"remorse"}, 2),
    ("Wait, what do you mean? I don't understand", {"confusion"}, 2),
    ("Stop lying to me, I'm furious with you", {"anger", "annoyance"}, 2),
    ("The train leaves at 9 from platform 4.", {"neutral"}, 1),
]


def test_sentences_are_not_in_the_training_data(data_dir):
    from emotionaware.datasets import load_goemotions

    data = load_goemotions(data_dir)
    seen = {e.text.lower() for split in (data.train, data.dev, data.test) for e in split}
    assert not [text for text, _, _ in CASES if text.lower() in seen]


@pytest.mark.parametrize(("text", "expected", "k"), CASES, ids=[c[0][:30] for c in CASES])
async def test_real_predictions(stub, text, expected, k):
    options = emotion_pb2.ClassifyOptions(top_k=k)
    reply = await stub.Classify(emotion_pb2.ClassifyRequest(text=text, options=options), timeout=10)
    top = [s.label for s in reply.scores]
    assert expected & set(top), f"{text!r}: top {k} = {top}, expected one of {sorted(expected)}"


async def test_response_shape_from_triton(stub):
    options = emotion_pb2.ClassifyOptions(return_all_scores=True)
    reply = await stub.Classify(
        emotion_pb2.ClassifyRequest(text="Thank you so much for your help!", options=options), timeout=10
    )
    assert len(reply.scores) == 28 and len({s.label for s in reply.scores}) == 28
    assert reply.score_type == emotion_pb2.SCORE_TYPE_SIGMOID
    assert "gratitude" in reply.predicted
    assert all(0.0 <= s.score <= 1.0 for s in reply.scores)
    assert reply.token_count == 10 and not reply.truncated and reply.max_tokens == 128
    assert reply.model == "goemotions" and reply.model_version == "1"
    assert reply.server_latency_us > 0


async def test_long_text_is_truncated_through_triton(stub):
    reply = await stub.Classify(emotion_pb2.ClassifyRequest(text="so happy today " * 100), timeout=10)
    # 302 tokens in all; the gateway tokenizes only a prefix that holds more than the model reads.
    assert reply.truncated and reply.max_tokens == 128
    assert reply.token_count_is_lower_bound and 128 < reply.token_count < 302
    assert reply.scores[0].label in {"joy", "excitement"}


async def test_gateway_is_serving_once_triton_is_ready(gateway_target):
    # Polled, not sampled once: this gateway runs in the test's event loop, and a readiness
    # probe that a busy CI host delays past its 2 s timeout says NOT_SERVING until the next.
    async with grpc.aio.insecure_channel(gateway_target.listen) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(50):
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                break
            await asyncio.sleep(0.2)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_without_triton_the_gateway_is_not_serving_and_answers_unavailable(exported_repo):
    from launcher.tritonserver import free_port

    settings = Settings(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        triton_url=f"127.0.0.1:{free_port()}",
        model_repository=exported_repo,
        metrics_port=0,
        health_poll_s=0.1,
    )
    server = GatewayServer(settings)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(
                    emotion_pb2.ClassifyRequest(text="hello"), timeout=5
                )
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop()


async def test_a_user_checkpoint_is_served_without_code_changes(stub):
    """The exported Hugging Face checkpoint (single-label: softmax) answers through the same API."""
    from tests.helpers import TINY_LABELS

    options = emotion_pb2.ClassifyOptions(return_all_scores=True)
    reply = await stub.Classify(
        emotion_pb2.ClassifyRequest(text="hello there", model="tiny-user-model", options=options), timeout=10
    )
    assert reply.model == "tiny-user-model" and reply.model_version == "1"
    assert reply.score_type == emotion_pb2.SCORE_TYPE_SOFTMAX
    assert sorted(s.label for s in reply.scores) == sorted(TINY_LABELS)
    assert abs(sum(s.score for s in reply.scores) - 1.0) < 1e-5
    assert list(reply.predicted) == [reply.scores[0].label]
