import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from emotionaware.v1 import emotion_pb2
from emotionaware.v1.emotion_pb2_grpc import EmotionServiceStub
from gateway.errors import BackendUnavailable, Overloaded
from gateway.models import ModelRegistry
from gateway.server import GatewayServer
from gateway.settings import Settings
from tests.grpc.fakes import ScriptedBackend


async def test_classify_returns_every_label_with_sigmoid_scores(stub, backend):
    reply = await stub.Classify(emotion_pb2.ClassifyRequest(text="hello world"), timeout=5)
    assert len(reply.scores) == 28
    assert reply.score_type == emotion_pb2.SCORE_TYPE_SIGMOID
    # 4 tokens -> the scripted backend favours label index 4 ("approval")
    assert reply.scores[0].label == "approval" and reply.predicted == ["approval"]
    assert reply.token_count == 4 and not reply.truncated and reply.max_tokens == 16
    assert reply.model == "goemotions" and reply.model_version == "3"
    assert [s.score for s in reply.scores] == sorted((s.score for s in reply.scores), reverse=True)
    assert backend.calls[0][:3] == ("goemotions", "3", 4)


async def test_long_text_is_truncated_and_reported(stub, backend):
    reply = await stub.Classify(emotion_pb2.ClassifyRequest(text="word " * 40), timeout=5)
    assert reply.truncated and reply.token_count == 42 and reply.max_tokens == 16
    assert backend.calls[0][2] == 16


@pytest.mark.parametrize(
    ("text", "model", "code", "fragment"),
    [
        ("", "", grpc.StatusCode.INVALID_ARGUMENT, "text: must contain"),
        ("   \n", "", grpc.StatusCode.INVALID_ARGUMENT, "text: must contain"),
        ("x" * 201, "", grpc.StatusCode.INVALID_ARGUMENT, "text: is 201 characters long; the limit is 200"),
        ("hi", "nope", grpc.StatusCode.NOT_FOUND, "model 'nope' is not served"),
    ],
)
async def test_bad_requests_get_clear_errors(stub, text, model, code, fragment):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(emotion_pb2.ClassifyRequest(text=text, model=model), timeout=5)
    assert err.value.code() == code
    assert fragment in err.value.details()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BackendUnavailable("inference server is unavailable"), grpc.StatusCode.UNAVAILABLE),
        (Overloaded("inference queue is full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
async def test_backend_errors_map_to_status(stub, backend, error, code):
    backend.error = error
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(emotion_pb2.ClassifyRequest(text="hi"), timeout=5)
    assert err.value.code() == code


async def test_unexpected_errors_do_not_leak_details(stub, backend):
    backend.error = RuntimeError("secret stack detail")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(emotion_pb2.ClassifyRequest(text="hi"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details() == "internal error"


async def test_client_deadline_is_propagated_and_enforced(stub, backend):
    backend.delay_s = 2.0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(emotion_pb2.ClassifyRequest(text="hi"), timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0 < backend.calls[0][3] <= 0.31  # the remaining deadline, not a default


async def test_server_side_timeout_applies_without_client_deadline(spec):
    backend = ScriptedBackend()
    backend.delay_s = 1.0
    settings = Settings(listen="127.0.0.1:0", default_timeout_s=0.1, metrics_port=0, shutdown_grace_s=0.5)
    server = GatewayServer(
        settings, backend=backend, registry=ModelRegistry({"goemotions": spec}, "goemotions")
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await EmotionServiceStub(ch).Classify(emotion_pb2.ClassifyRequest(text="hi"))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert backend.calls[0][3] == pytest.approx(0.1, abs=0.01)
    finally:
        await server.stop()


async def test_health_follows_backend_readiness(channel, backend):
    health = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", "emotionaware.v1.EmotionService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == serving
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


async def test_request_text_never_reaches_the_log(stub, backend, caplog):
    secret = "my private diary entry about Alice"
    backend.error = RuntimeError(f"backend choked on {secret}")
    with caplog.at_level("DEBUG"):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Classify(emotion_pb2.ClassifyRequest(text=secret), timeout=5)
        backend.error = None
        await stub.Classify(emotion_pb2.ClassifyRequest(text=secret), timeout=5)
    assert "RuntimeError" in caplog.text  # the failure is logged, without its message
    assert secret not in caplog.text
