"""TLS on the public port, and a plaintext health-only port for kubelet probes."""

import subprocess
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotionaware.v1 import emotion_pb2, emotion_pb2_grpc
from gateway.backends.onnxruntime import EmbeddedBackend
from gateway.server import GatewayServer
from gateway.settings import Settings


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_tls_port_serves_classify_and_plaintext_port_serves_health(
    grpc_settings, exported_repo, certificate
):
    cert, key = certificate
    settings = replace(
        grpc_settings,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        health_listen="127.0.0.1:0",
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        metrics_port=0,
        health_poll_s=0.05,
    )
    server = GatewayServer(settings, backend=EmbeddedBackend(exported_repo))
    port = await server.start()
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
            reply = await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(
                emotion_pb2.ClassifyRequest(text="hello world, I am so happy"), timeout=5
            )
            assert list(reply.predicted) == ["joy"]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError):  # no plaintext on the TLS port
                await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(
                    emotion_pb2.ClassifyRequest(text="hello world"), timeout=2
                )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
            # Watch: the first answer is NOT_SERVING until every routed model is loaded.
            async for health in health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(), timeout=30
            ):
                if health.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            with pytest.raises(grpc.aio.AioRpcError) as err:  # only health lives there
                await emotion_pb2_grpc.EmotionServiceStub(channel).Classify(
                    emotion_pb2.ClassifyRequest(text="hello world"), timeout=2
                )
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop()


def test_tls_needs_both_files():
    with pytest.raises(ValueError, match="together"):
        Settings(tls_cert_file="/x.crt")


async def test_a_port_already_in_use_fails_start_up_clearly(grpc_settings, exported_repo):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        server = GatewayServer(replace(grpc_settings, listen=address), backend=EmbeddedBackend(exported_repo))
        with pytest.raises(RuntimeError, match=address):
            await server.start()
