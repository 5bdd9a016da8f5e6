"""Every RPC and option through the in-process gateway (embedded ONNX Runtime backend)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from emotionaware.artifact import ArtifactManifest
from emotionaware.paths import MODELS_DIR
from emotionaware.taxonomy import EKMAN_LABELS
from emotionaware.v1 import emotion_pb2 as pb

THANKS = "Thank you so much for your help!"
LONG = "I am furious about this broken promise and I will not forgive it. " * 40


async def test_classify_defaults_list_the_predicted_labels(stub):
    reply = await stub.Classify(pb.ClassifyRequest(text=THANKS), timeout=10)
    assert list(reply.predicted) == ["gratitude"]
    assert [s.label for s in reply.scores] == ["gratitude"] and reply.scores[0].predicted
    assert reply.scores[0].score > reply.scores[0].threshold > 0
    assert reply.score_type == pb.SCORE_TYPE_SIGMOID
    assert (reply.model, reply.model_version, reply.view) == ("goemotions", "1", pb.VIEW_UNSPECIFIED)
    assert reply.chunk_count == 1 and not reply.chunks and reply.context_turns == 0
    assert reply.token_count == 10 and not reply.truncated and reply.max_tokens == 128


async def test_return_all_scores_and_top_k(stub):
    everything = await stub.Classify(
        pb.ClassifyRequest(text=THANKS, options=pb.ClassifyOptions(return_all_scores=True)), timeout=10
    )
    assert len(everything.scores) == 28
    scores = [s.score for s in everything.scores]
    assert scores == sorted(scores, reverse=True)
    top = await stub.Classify(
        pb.ClassifyRequest(text=THANKS, options=pb.ClassifyOptions(top_k=3)), timeout=10
    )
    assert [s.label for s in top.scores] == [s.label for s in everything.scores[:3]]
    assert list(top.predicted) == ["gratitude"]


async def test_threshold_override_applies_to_every_label(stub):
    low = await stub.Classify(
        pb.ClassifyRequest(text=THANKS, options=pb.ClassifyOptions(threshold=0.0)), timeout=10
    )
    assert len(low.predicted) == 28 and {s.threshold for s in low.scores} == {0.0}
    high = await stub.Classify(
        pb.ClassifyRequest(text=THANKS, options=pb.ClassifyOptions(threshold=1.0)), timeout=10
    )
    assert list(high.predicted) == [] and list(high.scores) == []


@pytest.mark.parametrize(
    ("view", "labels", "expected"),
    [
        (pb.VIEW_EKMAN, set(EKMAN_LABELS), "joy"),
        (pb.VIEW_SENTIMENT, {"positive", "negative", "ambiguous", "neutral"}, "positive"),
        (pb.VIEW_GOEMOTIONS, None, "gratitude"),
    ],
)
async def test_views_project_the_model_labels(stub, view, labels, expected):
    options = pb.ClassifyOptions(view=view, return_all_scores=True)
    reply = await stub.Classify(pb.ClassifyRequest(text=THANKS, options=options), timeout=10)
    assert reply.view == view and list(reply.predicted) == [expected]
    if labels is not None:
        assert {s.label for s in reply.scores} == labels
        # A group's score is its best member's (sigmoid): joy >= gratitude's score.
        native = await stub.Classify(pb.ClassifyRequest(text=THANKS), timeout=10)
        assert reply.scores[0].score == pytest.approx(native.scores[0].score, abs=1e-6)


async def test_long_text_truncates_by_default_and_chunks_on_request(stub):
    cut = await stub.Classify(pb.ClassifyRequest(text=LONG), timeout=10)
    assert cut.truncated and cut.chunk_count == 1 and cut.token_count > 128
    # Truncate mode tokenizes only a prefix of a long text: the count is a lower bound.
    assert cut.token_count_is_lower_bound
    options = pb.ClassifyOptions(long_text_mode=pb.LONG_TEXT_MODE_CHUNK)
    chunked = await stub.Classify(pb.ClassifyRequest(text=LONG, options=options), timeout=10)
    assert not chunked.truncated and not chunked.token_count_is_lower_bound
    assert cut.token_count < chunked.token_count
    assert chunked.chunk_count == len(chunked.chunks) > 1
    assert chunked.aggregation == pb.AGGREGATION_MAX
    assert chunked.chunks[0].first_token == 0 and chunked.chunks[0].token_count == 126
    # Windows overlap by 32 tokens and together cover every token of the text.
    assert chunked.chunks[1].first_token == 126 - 32
    last = chunked.chunks[-1]
    assert last.first_token + last.token_count == chunked.token_count - 2
    assert "anger" in chunked.predicted
    # Max aggregation: the text's score of a label is its best window's.
    best = max(s.score for c in chunked.chunks for s in c.scores if s.label == "anger")
    assert next(s.score for s in chunked.scores if s.label == "anger") == pytest.approx(best)


async def test_chunk_limit_reports_truncation(stub):
    options = pb.ClassifyOptions(long_text_mode=pb.LONG_TEXT_MODE_CHUNK)
    reply = await stub.Classify(pb.ClassifyRequest(text="sad " * 1990, options=options), timeout=20)
    assert reply.chunk_count == 16 and reply.truncated


async def test_classify_batch_keeps_order_and_reports_item_errors(stub):
    texts = [THANKS, "", "This is terrifying, I am so scared.", "x" * 10_001, "I love you so much"]
    reply = await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=texts), timeout=10)
    kinds = [item.WhichOneof("outcome") for item in reply.items]
    assert kinds == ["result", "error", "result", "error", "result"]
    assert [list(reply.items[i].result.predicted) for i in (0, 2, 4)] == [["gratitude"], ["fear"], ["love"]]
    assert reply.items[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert reply.items[1].error.message == "texts[1]: must contain at least one visible character"
    assert reply.items[3].error.message == "texts[3]: is 10001 characters long; the limit is 10000"


async def test_batch_texts_are_sent_as_one_batch(stub, backend):
    texts = [f"I am happy about number {i}" for i in range(8)]
    await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=texts), timeout=10)
    assert [call[2][0] for call in backend.calls] == [8]


async def test_list_and_get_models(stub):
    listing = await stub.ListModels(pb.ListModelsRequest(), timeout=10)
    assert [m.name for m in listing.models] == ["conversation", "goemotions", "tiny-user-model"]
    assert [a.name for a in listing.aliases] == ["canary", "default", "stable"]
    canary = {t.model: t.weight for t in listing.aliases[0].targets}
    assert canary == {"goemotions": 0.5, "tiny-user-model": 0.5}
    goemotions = (await stub.GetModel(pb.GetModelRequest(model="stable"), timeout=10)).model
    assert (
        goemotions.name == "goemotions"
        and goemotions.max_text_chars == 10_000
        and goemotions.max_batch_texts == 8
    )
    assert list(goemotions.views) == [pb.VIEW_GOEMOTIONS, pb.VIEW_EKMAN, pb.VIEW_SENTIMENT]
    assert len(goemotions.labels) == 28 and all(0 < label.threshold < 1 for label in goemotions.labels)
    assert list(goemotions.aliases) == ["canary", "default", "stable"]
    assert goemotions.default_long_text_mode == pb.LONG_TEXT_MODE_TRUNCATE
    conversation = (await stub.GetModel(pb.GetModelRequest(model="conversation"), timeout=10)).model
    # The served artifact's own limit (round 3 reads 2 turns), not a constant of the gateway.
    turns = ArtifactManifest.load(MODELS_DIR / "conversation").context_turns
    assert conversation.score_type == pb.SCORE_TYPE_SOFTMAX and conversation.context_turns == turns == 2
    assert [label.name for label in conversation.labels] == list(EKMAN_LABELS)
    assert list(conversation.views) == [pb.VIEW_EKMAN, pb.VIEW_SENTIMENT]


async def test_canary_alias_splits_by_weight(stub):
    replies = await asyncio.gather(
        *(stub.Classify(pb.ClassifyRequest(text=THANKS, model="canary"), timeout=10) for _ in range(40))
    )
    served = {r.model for r in replies}
    assert served == {"goemotions", "tiny-user-model"}


async def test_single_label_model_reports_softmax(stub):
    options = pb.ClassifyOptions(return_all_scores=True)
    reply = await stub.Classify(
        pb.ClassifyRequest(text=THANKS, model="tiny-user-model", options=options), timeout=10
    )
    assert reply.score_type == pb.SCORE_TYPE_SOFTMAX and len(reply.predicted) == 1
    assert sum(s.score for s in reply.scores) == pytest.approx(1.0, abs=1e-5)


async def test_health_follows_backend_readiness(channel, backend):
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", "emotionaware.v1.EmotionService"):
        assert (
            await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        ).status == serving
    backend.ready = False
    await asyncio.sleep(0.3)
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    backend.ready = True
    await asyncio.sleep(0.3)
    assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status == serving


async def test_reflection_lists_the_public_service(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for reply in stub.ServerReflectionInfo(requests()):
        names = {s.name for s in reply.list_services_response.service}
        break
    assert {"emotionaware.v1.EmotionService", "grpc.health.v1.Health"} <= names


async def test_stream_answers_two_interleaved_conversations_in_order(stub):
    messages = [
        ("a", "ann", "I finally got the job offer!"),
        ("b", "carl", "My cat died this morning."),
        ("a", "bob", "No way, congratulations!"),
        ("b", "dina", "Oh no, I'm so sorry."),
        ("a", "ann", "Thanks, I can't believe it."),
    ]
    requests = [
        pb.ClassifyStreamRequest(conversation_id=c, speaker=s, text=t, message_id=f"m{i}")
        for i, (c, s, t) in enumerate(messages)
    ]
    replies = [r async for r in stub.ClassifyStream(iter(requests), timeout=20)]
    assert [(r.sequence, r.conversation_id, r.message_id) for r in replies] == [
        (i, c, f"m{i}") for i, (c, _, _) in enumerate(messages)
    ]
    # Each conversation's own earlier turns are its context, and only those.
    assert [r.result.context_turns for r in replies] == [0, 0, 1, 1, 2]
    assert {r.result.model for r in replies} == {"conversation"}
    assert all(r.result.score_type == pb.SCORE_TYPE_SOFTMAX and len(r.result.predicted) == 1 for r in replies)


async def test_stream_messages_can_name_another_model_and_view(stub):
    requests = [
        pb.ClassifyStreamRequest(conversation_id="x", text=THANKS, model="goemotions"),
        pb.ClassifyStreamRequest(
            conversation_id="x", text=THANKS, options=pb.ClassifyOptions(view=pb.VIEW_SENTIMENT)
        ),
    ]
    first, second = [r async for r in stub.ClassifyStream(iter(requests), timeout=20)]
    assert first.result.model == "goemotions" and list(first.result.predicted) == ["gratitude"]
    assert first.result.context_turns == 0  # goemotions reads no context
    assert second.result.model == "conversation" and second.result.view == pb.VIEW_SENTIMENT
    assert second.result.context_turns == 1


async def test_classify_with_explicit_context(stub):
    request = pb.ClassifyRequest(
        text="Are you serious?",
        model="conversation",
        speaker="bob",
        context=[
            pb.Turn(speaker="ann", text="I won the lottery!"),
            pb.Turn(speaker="ann", text="Ten million!"),
        ],
    )
    reply = await stub.Classify(request, timeout=10)
    assert reply.context_turns == 2 and reply.model == "conversation"
    assert reply.token_count == 6  # the text's own tokens; context is extra


async def test_routing_file_reload_does_not_drop_requests(grpc_settings, backend, tmp_path):
    from dataclasses import replace

    from emotionaware.v1.emotion_pb2_grpc import EmotionServiceStub
    from gateway.server import GatewayServer
    from tests.grpc.conftest import ROUTING

    path = tmp_path / "routing.toml"
    path.write_text(ROUTING)
    server = GatewayServer(
        replace(grpc_settings, routing_file=str(path), routing_poll_s=0.05), backend=backend
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = EmotionServiceStub(channel)
            calls = [
                stub.Classify(pb.ClassifyRequest(text=THANKS, model="stable"), timeout=10) for _ in range(100)
            ]
            traffic = asyncio.gather(*calls)
            path.write_text(ROUTING.replace('stable = "goemotions"', 'stable = "tiny-user-model"'))
            replies = await traffic  # none fails while the table is swapped
            assert len(replies) == 100
            for _ in range(100):
                await asyncio.sleep(0.05)
                info = (await stub.GetModel(pb.GetModelRequest(model="stable"), timeout=5)).model
                if info.name == "tiny-user-model":
                    break
            assert info.name == "tiny-user-model"
            reply = await stub.Classify(pb.ClassifyRequest(text=THANKS, model="stable"), timeout=10)
            assert reply.model == "tiny-user-model"
    finally:
        await server.stop()


async def test_metrics_cover_every_stage_batches_and_padding(stub):
    from prometheus_client import REGISTRY, generate_latest

    await asyncio.gather(
        *(stub.Classify(pb.ClassifyRequest(text=f"I am glad {i} times"), timeout=10) for i in range(8))
    )
    text = generate_latest(REGISTRY).decode()
    for stage in ("tokenize", "queue", "infer", "postprocess"):
        assert f'emotionaware_stage_seconds_count{{stage="{stage}"}}' in text
    for name in ("emotionaware_batch_texts_count", "emotionaware_batch_padding_efficiency_count",
                 "emotionaware_queue_depth", 'emotionaware_requests_total{code="OK",method="Classify"}'):  # fmt: skip
        assert name in text
    efficiency = REGISTRY.get_sample_value(
        "emotionaware_batch_padding_efficiency_sum", {"model": "goemotions@1"}
    ) / REGISTRY.get_sample_value("emotionaware_batch_padding_efficiency_count", {"model": "goemotions@1"})
    assert 0.3 < efficiency <= 1.0


async def test_stream_message_deadlines_follow_the_documented_rule(grpc_settings, backend):
    """Stream deadline, else timeout_ms, else the default request deadline; never a hidden constant."""
    from dataclasses import replace

    from emotionaware.v1.emotion_pb2_grpc import EmotionServiceStub
    from gateway.server import GatewayServer

    server = GatewayServer(replace(grpc_settings, default_timeout_s=0.5), backend=backend)
    port = await server.start()
    backend.delay_s = 1.0  # every answer takes longer than the 0.5 s default
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = EmotionServiceStub(channel)

            def message(i: int, timeout_ms: int = 0) -> pb.ClassifyStreamRequest:
                return pb.ClassifyStreamRequest(conversation_id=f"c{i}", text=THANKS, timeout_ms=timeout_ms)

            # A stream deadline (20 s) governs its messages: the 0.5 s default does not apply.
            with_deadline = [r async for r in stub.ClassifyStream(iter([message(0), message(1)]), timeout=20)]
            assert [r.WhichOneof("outcome") for r in with_deadline] == ["result", "result"]
            # timeout_ms shortens the stream's deadline for one message. Past it the message
            # gets DEADLINE_EXCEEDED, or RESOURCE_EXHAUSTED at once when the measured cost says
            # it cannot make it (admission by time).
            late = {grpc.StatusCode.DEADLINE_EXCEEDED.value[0], grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
            mixed = [
                r async for r in stub.ClassifyStream(iter([message(0, 200), message(1, 5000)]), timeout=20)
            ]
            assert [r.WhichOneof("outcome") for r in mixed] == ["error", "result"]
            assert mixed[0].error.code in late
            # No stream deadline and no timeout_ms: the default request deadline, from arrival.
            bare = [r async for r in stub.ClassifyStream(iter([message(0)]))]
            assert bare[0].error.code in late
            timed = [r async for r in stub.ClassifyStream(iter([message(0, 3000)]))]
            assert timed[0].WhichOneof("outcome") == "result"
    finally:
        backend.reset()
        await server.stop()
