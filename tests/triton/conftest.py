"""A real Triton server on free loopback ports, serving a model freshly exported for this run."""

from __future__ import annotations

import os
import signal
from dataclasses import replace

import grpc
import pytest

from emotionaware.v1 import emotion_pb2_grpc
from gateway.server import GatewayServer
from gateway.settings import Settings
from launcher.tritonserver import TritonServer


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def triton(exported_repo, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("logs") / "triton.log"
    server = TritonServer(exported_repo, log_path=log_path)
    server.start()
    pgid = server.pid
    try:
        server.wait_ready(timeout_s=120)
        yield server
    finally:
        server.stop()
        if group_alive(pgid):  # pragma: no cover - would leak processes into CI
            os.killpg(pgid, signal.SIGKILL)
            pytest.fail("tritonserver left processes behind after stop()")


@pytest.fixture(scope="session")
async def gateway_server(triton, exported_repo):
    """The gateway in front of the session's Triton: (its settings with the bound gRPC port, server)."""
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        triton_url=triton.grpc_url,
        model_repository=exported_repo,
        metrics_port=0,
        health_poll_s=0.2,
    )
    server = GatewayServer(settings)
    port = await server.start()
    yield replace(settings, listen=f"127.0.0.1:{port}"), server
    await server.stop()


@pytest.fixture(scope="session")
def gateway_target(gateway_server) -> Settings:
    return gateway_server[0]


@pytest.fixture(scope="session")
def http_url(gateway_server) -> str:
    """Base URL of the same gateway's HTTP/JSON port."""
    return f"http://127.0.0.1:{gateway_server[1].http_port}"


@pytest.fixture
async def stub(gateway_target):
    async with grpc.aio.insecure_channel(gateway_target.listen) as channel:
        yield emotion_pb2_grpc.EmotionServiceStub(channel)
