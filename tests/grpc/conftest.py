"""In-process gateway on a free loopback port with the embedded ONNX Runtime backend.

It serves the graphs exported for this test session (the same the Triton tier serves),
through a routing file with per-model limits and aliases, wrapped in fault injection for
the backend error paths.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from emotionaware.v1 import emotion_pb2_grpc
from gateway.backends.onnxruntime import EmbeddedBackend
from gateway.server import GatewayServer
from gateway.settings import Settings
from tests.grpc.fakes import FaultyBackend

ROUTING = """
[models.goemotions]
max_batch_texts = 8

[models.conversation]

[models.tiny-user-model]
max_text_chars = 50

[aliases]
default = "goemotions"
stable = "goemotions"
canary = { "goemotions" = 0.5, "tiny-user-model" = 0.5 }
"""


@pytest.fixture(scope="session")
def routing_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("routing") / "routing.toml"
    path.write_text(ROUTING)
    return path


@pytest.fixture(scope="session")
def grpc_settings(exported_repo, routing_file, tmp_path_factory) -> Settings:
    return Settings(
        feedback_database=f"sqlite:///{tmp_path_factory.mktemp('feedback') / 'feedback.sqlite3'}",
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        backend="embedded",
        model_repository=exported_repo,
        routing_file=str(routing_file),
        routing_poll_s=0.1,
        health_poll_s=0.05,
        shutdown_grace_s=1.0,
        metrics_port=0,
        queue_max_texts=256,
        bulk_queue_max_texts=256,
        admission_hold_max=64,
        # The count limits are what this tier's overload test drives; time-based admission is
        # tested on the batcher itself and against the serve program (tests/triton/test_admission.py).
        queue_budget_ms=0,
    )


@pytest.fixture(scope="session")
def backend(exported_repo):
    return FaultyBackend(EmbeddedBackend(exported_repo, threads=2))


@pytest.fixture(scope="session")
async def gateway(grpc_settings, backend):
    server = GatewayServer(grpc_settings, backend=backend)
    port = await server.start()
    yield replace(grpc_settings, listen=f"127.0.0.1:{port}"), server
    await server.stop()


@pytest.fixture
async def channel(gateway, backend):
    await backend.idle()
    backend.reset()
    settings, _ = gateway
    async with grpc.aio.insecure_channel(settings.listen) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return emotion_pb2_grpc.EmotionServiceStub(channel)
