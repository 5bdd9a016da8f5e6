"""Who may call: bearer tokens, mTLS, grants, per-client quotas, audit lines, reload, privacy.

Real gateways on free loopback ports (embedded backend), real TLS with certificates made by
openssl for this module, real gRPC calls for every RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import shutil
import ssl
import subprocess
from collections import Counter
from dataclasses import replace
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY, generate_latest

from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.backends.onnxruntime import EmbeddedBackend
from gateway.server import GatewayServer
from gateway.tokens import token_hash
from tests.grpc.test_cli import cli

TOKENS = {
    "billing-bot": "tok-billing-0123456789",
    "reader": "tok-reader-0123456789",
    "slow": "tok-slow-0123456789",
    "other-slow": "tok-other-slow-0123456789",
    "narrow": "tok-narrow-0123456789",
}
EXPIRED = "tok-expired-0123456789"
REVOKED = "tok-revoked-0123456789"

CLIENTS = """
[clients.billing-bot]
models = ["goemotions"]

[clients.reader]
rpcs = ["ListModels", "GetModel"]

[clients.slow]
texts_per_s = 0.5
burst_texts = 2

[clients.other-slow]
texts_per_s = 0.5
burst_texts = 2

[clients.narrow]
max_concurrent_calls = 1
"""

# One well-formed request per RPC (the stream sends one message).
RPCS = ("Classify", "ClassifyBatch", "ClassifyStream", "ListModels", "GetModel")


async def call(stub: emotion_pb2_grpc.EmotionServiceStub, rpc: str, metadata=(), model: str = ""):
    """Make one ``rpc`` call; returns the response (the stream's first one)."""
    if rpc == "Classify":
        return await stub.Classify(pb.ClassifyRequest(text="thank you so much", model=model), metadata=metadata,
                                   timeout=10)  # fmt: skip
    if rpc == "ClassifyBatch":
        request = pb.ClassifyBatchRequest(texts=["great", "awful"], model=model)
        return await stub.ClassifyBatch(request, metadata=metadata, timeout=10)
    if rpc == "ClassifyStream":
        message = pb.ClassifyStreamRequest(conversation_id="c", text="hi there", model=model)
        replies = [r async for r in stub.ClassifyStream(iter([message]), metadata=metadata, timeout=10)]
        return replies[0]
    if rpc == "ListModels":
        return await stub.ListModels(pb.ListModelsRequest(), metadata=metadata, timeout=10)
    return await stub.GetModel(pb.GetModelRequest(model=model), metadata=metadata, timeout=10)


async def status_of(stub, rpc: str, metadata=(), model: str = "") -> grpc.StatusCode:
    try:
        await call(stub, rpc, metadata, model)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def write_tokens(path: Path, tokens: dict[str, str], extra: str = "") -> None:
    body = "".join(f'[[tokens]]\nclient = "{c}"\nsha256 = "{token_hash(t)}"\n\n' for c, t in tokens.items())
    path.write_text(body + extra)


def expired_entry(token: str) -> str:
    when = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'[[tokens]]\nclient = "old-bot"\nsha256 = "{token_hash(token)}"\nexpires = {when}\n\n'


# -- certificates ---------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(cert))  # fmt: skip
    return cert, key


def make_cert(folder: Path, name: str, cn: str, san: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    cert, key, csr, ext = (folder / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(csr)
    )
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "1", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("pki")
    ca, other = make_ca(folder, "ca"), make_ca(folder, "other-ca")
    return {
        "ca": ca,
        "other-ca": other,
        "server": make_cert(folder, "server", "localhost", "DNS:localhost", ca),
        "billing-bot": make_cert(folder, "billing-bot", "billing-bot", "DNS:billing.internal", ca),
        "rogue": make_cert(folder, "rogue", "billing-bot", "DNS:billing.internal", other),
        "other-client": make_cert(folder, "other-client", "billing-bot", "DNS:billing.internal", other),
    }


# -- servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_files(tmp_path_factory, routing_file):
    folder = tmp_path_factory.mktemp("auth")
    tokens = folder / "tokens.toml"
    write_tokens(tokens, {**TOKENS, "revoked": REVOKED}, expired_entry(EXPIRED))
    routing = folder / "routing.toml"
    routing.write_text(routing_file.read_text() + CLIENTS)
    return tokens, routing


@pytest.fixture(scope="module")
async def token_gateway(grpc_settings, exported_repo, auth_files):
    tokens, routing = auth_files
    settings = replace(
        grpc_settings,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        health_listen="127.0.0.1:0",
        routing_file=str(routing),
        auth_tokens_file=str(tokens),
        credentials_poll_s=0.1,
    )
    server = GatewayServer(settings, backend=EmbeddedBackend(exported_repo, threads=1))
    port = await server.start()
    await wait_serving(f"127.0.0.1:{server.health_port}")
    yield f"127.0.0.1:{port}", server
    await server.stop()


async def wait_serving(target: str, credentials=None) -> None:
    channel = (
        grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
    )
    async with channel:
        async for health in health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=60
        ):
            if health.status == health_pb2.HealthCheckResponse.SERVING:
                return


@pytest.fixture
async def token_stub(token_gateway):
    target, _ = token_gateway
    async with grpc.aio.insecure_channel(target) as channel:
        yield emotion_pb2_grpc.EmotionServiceStub(channel)


# -- bearer tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("rpc", RPCS)
async def test_every_rpc_needs_a_valid_token(token_stub, rpc):
    assert await status_of(token_stub, rpc) == grpc.StatusCode.UNAUTHENTICATED
    assert await status_of(token_stub, rpc, bearer("not-a-token")) == grpc.StatusCode.UNAUTHENTICATED
    assert await status_of(token_stub, rpc, bearer(EXPIRED)) == grpc.StatusCode.UNAUTHENTICATED
    assert (
        await status_of(token_stub, rpc, (("authorization", "Basic dXNlcg=="),))
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert await status_of(token_stub, rpc, bearer(TOKENS["billing-bot"])) == grpc.StatusCode.OK


async def test_unauthenticated_errors_say_what_is_wrong(token_stub):
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await call(token_stub, "Classify")
    assert "authorization: Bearer <token>" in missing.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as expired:
        await call(token_stub, "Classify", bearer(EXPIRED))
    assert "expired at" in expired.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await call(token_stub, "Classify", bearer("not-a-token"))
    assert "not-a-token" not in unknown.value.details()  # a credential is never echoed


@pytest.mark.parametrize("rpc", RPCS)
async def test_grants_give_permission_denied_outside_them(token_stub, rpc):
    reader = bearer(TOKENS["reader"])
    expected = grpc.StatusCode.OK if rpc in ("ListModels", "GetModel") else grpc.StatusCode.PERMISSION_DENIED
    assert await status_of(token_stub, rpc, reader) == expected
    billing = bearer(TOKENS["billing-bot"])
    if rpc == "ClassifyStream":  # per message: the stream stays up, the message gets the error
        reply = await call(token_stub, rpc, billing, model="conversation")
        assert reply.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        assert "may not use model conversation" in reply.error.message
    elif rpc != "ListModels":
        assert (
            await status_of(token_stub, rpc, billing, model="conversation")
            == grpc.StatusCode.PERMISSION_DENIED
        )
        # An alias resolving to a model outside the grant is refused the same way: the canary
        # sends half its calls to tiny-user-model, so 24 calls all landing on goemotions would
        # happen once in 16 million runs.
        codes = {await status_of(token_stub, rpc, billing, model="canary") for _ in range(24)}
        assert codes == {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.OK}


async def test_list_models_shows_only_granted_models_and_aliases(token_stub):
    reply = await call(token_stub, "ListModels", bearer(TOKENS["billing-bot"]))
    assert [m.name for m in reply.models] == ["goemotions"]
    assert {a.name for a in reply.aliases} == {"default", "stable"}  # not canary (half tiny-user-model)
    everything = await call(token_stub, "ListModels", bearer(TOKENS["reader"]))
    assert len(everything.models) == 3


async def test_a_revoked_token_stops_working_after_the_file_changes(token_stub, auth_files):
    tokens, _ = auth_files
    assert await status_of(token_stub, "Classify", bearer(REVOKED)) == grpc.StatusCode.OK
    write_tokens(tokens, TOKENS, expired_entry(EXPIRED))  # "revoked" removed
    try:
        for _ in range(50):
            if await status_of(token_stub, "Classify", bearer(REVOKED)) == grpc.StatusCode.UNAUTHENTICATED:
                break
            await asyncio.sleep(0.1)
        assert await status_of(token_stub, "Classify", bearer(REVOKED)) == grpc.StatusCode.UNAUTHENTICATED
        assert await status_of(token_stub, "Classify", bearer(TOKENS["billing-bot"])) == grpc.StatusCode.OK
        # A broken file is not applied: the previous tokens stay.
        tokens.write_text("[[tokens]]\nclient = ")
        await asyncio.sleep(0.3)
        assert await status_of(token_stub, "Classify", bearer(TOKENS["billing-bot"])) == grpc.StatusCode.OK
    finally:
        write_tokens(tokens, {**TOKENS, "revoked": REVOKED}, expired_entry(EXPIRED))


async def test_health_and_reflection_need_no_credentials_on_the_health_port(token_gateway):
    _, server = token_gateway
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = [r async for r in reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)]  # fmt: skip
        names = {s.name for s in replies[0].list_services_response.service}
        assert "grpc.health.v1.Health" in names
        with pytest.raises(grpc.aio.AioRpcError) as err:  # the API itself does not live there
            await call(
                emotion_pb2_grpc.EmotionServiceStub(channel), "Classify", bearer(TOKENS["billing-bot"])
            )
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- quotas ---------------------------------------------------------------------------------------


async def test_a_client_over_its_rate_is_refused_while_others_are_not(token_stub):
    slow, other = bearer(TOKENS["slow"]), bearer(TOKENS["other-slow"])
    assert await status_of(token_stub, "ClassifyBatch", slow) == grpc.StatusCode.OK  # the burst of 2 texts
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(token_stub, "Classify", slow)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "over its rate of 0.5 texts per second" in err.value.details()
    retry = dict(err.value.trailing_metadata())["retry-after-ms"]
    assert 1000 <= int(retry) <= 2000  # one text at 0.5/s: up to 2 s
    # Another client with the same limits still has its whole burst.
    assert await status_of(token_stub, "ClassifyBatch", other) == grpc.StatusCode.OK
    assert await status_of(token_stub, "Classify", bearer(TOKENS["billing-bot"])) == grpc.StatusCode.OK
    # ListModels costs no texts.
    assert await status_of(token_stub, "ListModels", slow) == grpc.StatusCode.OK
    # On a stream the message over the rate gets the error in its slot; the stream stays open.
    reply = await call(token_stub, "ClassifyStream", slow)
    assert reply.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "over its rate" in reply.error.message


async def test_a_batch_larger_than_the_burst_is_refused_clearly(token_stub):
    request = pb.ClassifyBatchRequest(texts=["a", "b", "c"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await token_stub.ClassifyBatch(request, metadata=bearer(TOKENS["other-slow"]), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 2 texts at once; this request has 3" in err.value.details()


async def test_concurrent_calls_are_limited_per_client(token_stub):
    narrow = bearer(TOKENS["narrow"])
    gate: asyncio.Queue = asyncio.Queue()

    async def messages():
        yield pb.ClassifyStreamRequest(conversation_id="c", text="hello")
        await gate.get()  # hold the stream open

    stream = token_stub.ClassifyStream(messages(), metadata=narrow, timeout=20)
    first = await stream.read()
    assert first.HasField("result")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(token_stub, "Classify", narrow)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "calls open" in err.value.details()
    assert await status_of(token_stub, "Classify", bearer(TOKENS["billing-bot"])) == grpc.StatusCode.OK
    await gate.put(None)  # the request iterator ends: the stream finishes
    assert await stream.read() == grpc.aio.EOF
    assert await stream.code() == grpc.StatusCode.OK
    for _ in range(20):  # the slot is released when the stream's handler finishes
        if await status_of(token_stub, "Classify", narrow) == grpc.StatusCode.OK:
            break
        await asyncio.sleep(0.05)
    assert await status_of(token_stub, "Classify", narrow) == grpc.StatusCode.OK


# -- audit and metrics ---------------------------------------------------------------------------


async def test_one_audit_line_per_call_with_client_rpc_status_and_sizes(token_stub, caplog):
    with caplog.at_level(logging.INFO, logger="emotionaware.audit"):
        await call(token_stub, "ClassifyBatch", bearer(TOKENS["billing-bot"]))
        await status_of(token_stub, "Classify")
        await status_of(token_stub, "Classify", bearer(TOKENS["reader"]))
    lines = [r for r in caplog.records if r.name == "emotionaware.audit"]
    assert len(lines) == 3
    ok, anonymous, denied = (r.audit for r in lines)
    assert ok["client"] == "billing-bot" and ok["rpc"] == "ClassifyBatch" and ok["code"] == "OK"
    assert ok["models"] == "goemotions" and ok["texts"] == 2
    assert ok["request_bytes"] > 0 and ok["response_bytes"] > ok["request_bytes"] and ok["latency_ms"] > 0
    assert anonymous["client"] == "-" and anonymous["code"] == "UNAUTHENTICATED"
    assert denied["client"] == "reader" and denied["code"] == "PERMISSION_DENIED"
    assert "client=billing-bot rpc=ClassifyBatch models=goemotions code=OK" in lines[0].getMessage()


def client_count(client: str, method: str, code: str) -> float:
    value = REGISTRY.get_sample_value(
        "emotionaware_client_requests_total", {"client": client, "method": method, "code": code}
    )
    return value or 0.0


async def test_metrics_count_calls_by_configured_client(token_stub):
    before = (
        client_count("billing-bot", "GetModel", "OK"),
        client_count("unauthenticated", "GetModel", "UNAUTHENTICATED"),
    )
    await call(token_stub, "GetModel", bearer(TOKENS["billing-bot"]))
    await status_of(token_stub, "GetModel")
    assert client_count("billing-bot", "GetModel", "OK") == before[0] + 1
    assert client_count("unauthenticated", "GetModel", "UNAUTHENTICATED") == before[1] + 1


async def test_audit_can_be_turned_off(grpc_settings, exported_repo, caplog):
    server = GatewayServer(replace(grpc_settings, listen="127.0.0.1:0", audit_log=False),
                           backend=EmbeddedBackend(exported_repo, threads=1))  # fmt: skip
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with caplog.at_level(logging.INFO, logger="emotionaware.audit"):
                await status_of(emotion_pb2_grpc.EmotionServiceStub(channel), "ListModels")
        assert not [r for r in caplog.records if r.name == "emotionaware.audit"]
    finally:
        await server.stop()


# -- privacy: the marker test --------------------------------------------------------------------


async def test_a_marker_in_every_field_never_reaches_logs_audit_or_metrics(token_stub, caplog):
    marker = "Zq7MARKERx93"
    good = bearer(TOKENS["billing-bot"])
    options = pb.ClassifyOptions(model_version=marker)
    with caplog.at_level(logging.DEBUG):
        await call(token_stub, "Classify", good)  # a clean call first: the audit line exists
        requests = [
            token_stub.Classify(pb.ClassifyRequest(text=marker, speaker=marker), metadata=good, timeout=10),
            token_stub.Classify(pb.ClassifyRequest(text=marker, model=marker), metadata=good, timeout=10),
            token_stub.Classify(pb.ClassifyRequest(text=marker, options=options), metadata=good, timeout=10),
            token_stub.Classify(
                pb.ClassifyRequest(
                    text=marker,
                    model="conversation",
                    speaker=marker,
                    context=[pb.Turn(speaker=marker, text=marker)],
                ),
                metadata=good,
                timeout=10,
            ),
            token_stub.ClassifyBatch(
                pb.ClassifyBatchRequest(texts=[marker, marker * 300]), metadata=good, timeout=10
            ),
            token_stub.GetModel(pb.GetModelRequest(model=marker), metadata=good, timeout=10),
            token_stub.Classify(pb.ClassifyRequest(text=marker), metadata=bearer(marker), timeout=10),
            token_stub.Classify(
                pb.ClassifyRequest(text=marker), metadata=(("authorization", marker),), timeout=10
            ),
        ]
        for request in requests:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await request
        stream_messages = [
            pb.ClassifyStreamRequest(conversation_id=marker, message_id=marker, speaker=marker, text=marker),
            pb.ClassifyStreamRequest(conversation_id=marker, text=marker, model=marker),
        ]
        replies = [
            r async for r in token_stub.ClassifyStream(iter(stream_messages), metadata=good, timeout=10)
        ]
        assert len(replies) == 2
    audit = [r for r in caplog.records if r.name == "emotionaware.audit"]
    assert len(audit) >= 10
    assert marker not in caplog.text
    assert not any(marker in str(r.__dict__) for r in caplog.records)
    assert marker not in generate_latest(REGISTRY).decode()


# -- mTLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def mtls_gateway(grpc_settings, exported_repo, pki, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mtls")
    ca_file = folder / "client-ca.crt"
    shutil.copy(pki["ca"][0], ca_file)
    settings = replace(
        grpc_settings,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        health_listen="127.0.0.1:0",
        tls_cert_file=str(pki["server"][0]),
        tls_key_file=str(pki["server"][1]),
        tls_client_ca_file=str(ca_file),
        credentials_poll_s=0.1,
    )
    server = GatewayServer(settings, backend=EmbeddedBackend(exported_repo, threads=1))
    port = await server.start()
    await wait_serving(f"127.0.0.1:{server.health_port}")
    yield f"localhost:{port}", server, ca_file
    await server.stop()


def client_credentials(pki, who: str | None) -> grpc.ChannelCredentials:
    kwargs = {"root_certificates": pki["ca"][0].read_bytes()}
    if who is not None:
        cert, key = pki[who]
        kwargs.update(private_key=key.read_bytes(), certificate_chain=cert.read_bytes())
    return grpc.ssl_channel_credentials(**kwargs)


@pytest.mark.parametrize("rpc", RPCS)
async def test_mtls_admits_only_certificates_of_the_client_ca(mtls_gateway, pki, rpc):
    target, _, _ = mtls_gateway
    for who, expected in (("billing-bot", grpc.StatusCode.OK), ("rogue", grpc.StatusCode.UNAVAILABLE),
                          (None, grpc.StatusCode.UNAVAILABLE)):  # fmt: skip
        async with grpc.aio.secure_channel(target, client_credentials(pki, who)) as channel:
            # A failed handshake never reaches a handler: the client sees UNAVAILABLE.
            assert await status_of(emotion_pb2_grpc.EmotionServiceStub(channel), rpc) == expected, who


async def test_the_certificate_names_the_client_in_the_audit_line(mtls_gateway, pki, caplog):
    target, _, _ = mtls_gateway
    async with grpc.aio.secure_channel(target, client_credentials(pki, "billing-bot")) as channel:
        with caplog.at_level(logging.INFO, logger="emotionaware.audit"):
            await call(emotion_pb2_grpc.EmotionServiceStub(channel), "Classify")
    (line,) = [r for r in caplog.records if r.name == "emotionaware.audit"]
    assert line.audit["client"] == "billing-bot"


async def test_health_needs_no_certificate_on_the_health_port(mtls_gateway):
    _, server, _ = mtls_gateway
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_new_client_ca_applies_to_new_connections_without_restart(mtls_gateway, pki):
    target, server, ca_file = mtls_gateway
    try:
        ca_file.write_bytes(pki["other-ca"][0].read_bytes())  # rotate: trust the other CA only
        await asyncio.sleep(0.3)
        for _ in range(20):
            async with grpc.aio.secure_channel(target, client_credentials(pki, "other-client")) as channel:
                if (
                    await status_of(emotion_pb2_grpc.EmotionServiceStub(channel), "ListModels")
                    == grpc.StatusCode.OK
                ):
                    break
            await asyncio.sleep(0.1)
        async with grpc.aio.secure_channel(target, client_credentials(pki, "other-client")) as channel:
            assert (
                await status_of(emotion_pb2_grpc.EmotionServiceStub(channel), "ListModels")
                == grpc.StatusCode.OK
            )
        async with grpc.aio.secure_channel(target, client_credentials(pki, "billing-bot")) as channel:
            assert (
                await status_of(emotion_pb2_grpc.EmotionServiceStub(channel), "ListModels")
                == grpc.StatusCode.UNAVAILABLE
            )
        assert server.certificates.reloads >= 1
    finally:
        ca_file.write_bytes(pki["ca"][0].read_bytes())


# -- secure defaults -----------------------------------------------------------------------------


def test_a_non_loopback_address_needs_authentication_or_an_explicit_opt_out(grpc_settings):
    with pytest.raises(ValueError, match="without authentication"):
        replace(grpc_settings, listen="0.0.0.0:50051")
    replace(grpc_settings, listen="0.0.0.0:50051", allow_unauthenticated=True)
    replace(grpc_settings, listen="0.0.0.0:50051", auth_tokens_file="/run/tokens.toml")
    replace(grpc_settings, listen="[::1]:50051")
    with pytest.raises(ValueError, match="needs TLS"):
        replace(grpc_settings, tls_client_ca_file="/run/ca.crt")


# -- the client CLI -------------------------------------------------------------------------------


async def test_the_cli_sends_a_token_and_presents_a_client_certificate(
    token_gateway, mtls_gateway, pki, tmp_path
):
    target, _ = token_gateway
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["billing-bot"] + "\n")
    code, out, err = await cli(target, "--token-file", str(token_file), "classify", "thank you so much")
    assert code == 0, err
    assert out.splitlines()[1].startswith("predicted: gratitude")
    code, out, err = await cli(
        target, "--token-file", str(token_file), "stream", stdin='{"conversation_id": "c", "text": "hi"}\n'
    )
    assert code == 0 and "[0] c:" in out, err
    code, _, err = await cli(target, "classify", "thank you")
    assert code == 2 and "UNAUTHENTICATED" in err

    mtls_target, _, _ = mtls_gateway
    cert, key = pki["billing-bot"]
    code, out, err = await cli(mtls_target, "--ca-file", str(pki["ca"][0]), "--cert-file", str(cert),
                               "--key-file", str(key), "models")  # fmt: skip
    assert code == 0 and any(line.startswith("goemotions ") for line in out.splitlines()), err


def test_the_auth_cost_benchmark_prints_its_table(exported_repo, tmp_path, capsys):
    """The short form of ``make auth-cost``: every setup measured, ratios against the baseline."""
    from bench.auth import SETUPS, main

    out = tmp_path / "auth-cost.md"
    assert main(["--calls", "100", "--repository", str(exported_repo), "--out", str(out)]) == 0
    table = out.read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "setup" not in line]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [s.name for s in SETUPS]
    assert rows[0].split(" | ")[3] == "1.00"  # the baseline against itself
    assert "audit lines written" in table and " 0 audit lines" not in table


async def test_a_refused_stream_always_ends_with_its_status(token_stub):
    # grpcio's asyncio client reports INTERNAL instead of the server's status when one of its
    # writes lands after the server ended the stream (grpc/grpc#36066); the gateway reads a
    # refused stream's first messages before ending it, so the refusal is what the client sees.
    message = pb.ClassifyStreamRequest(conversation_id="c", text="hi there")
    codes = Counter()
    for _ in range(150):
        try:
            [
                r
                async for r in token_stub.ClassifyStream(
                    iter([message] * 3), metadata=bearer("nope"), timeout=10
                )
            ]
            codes["OK"] += 1
        except grpc.aio.AioRpcError as err:
            codes[err.code().name] += 1
    assert codes == {"UNAUTHENTICATED": 150}


# -- the same credentials on HTTP ------------------------------------------------------------------


def https_context(pki, who: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"][0]))
    if who is not None:
        cert, key = pki[who]
        context.load_cert_chain(str(cert), str(key))
    return context


async def https_classify(server, pki, who: str | None, host: str = "localhost") -> int:
    """POST /v1/classify over HTTPS presenting ``who``'s certificate; the HTTP status, or 0
    when the TLS handshake fails."""
    url = f"https://{host}:{server.http_port}/v1/classify"
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(url, json={"text": "thank you"}, ssl=https_context(pki, who),
                                    server_hostname="localhost") as response:  # fmt: skip
                return response.status
        except aiohttp.ClientError:
            return 0


async def test_https_takes_the_same_client_certificates(mtls_gateway, pki, caplog):
    _, server, _ = mtls_gateway
    with caplog.at_level(logging.INFO, logger="emotionaware.audit"):
        assert await https_classify(server, pki, "billing-bot") == 200
    (line,) = [r for r in caplog.records if r.name == "emotionaware.audit"]
    assert line.audit["client"] == "billing-bot" and line.audit["transport"] == "http"
    assert await https_classify(server, pki, "rogue") == 0  # another CA: no handshake
    assert await https_classify(server, pki, None) == 0  # no certificate: no handshake


async def test_a_new_client_ca_applies_to_new_https_connections(mtls_gateway, pki):
    _, server, ca_file = mtls_gateway
    try:
        ca_file.write_bytes(pki["other-ca"][0].read_bytes())
        for _ in range(30):
            if await https_classify(server, pki, "other-client", host="127.0.0.1") == 200:
                break
            await asyncio.sleep(0.1)
        assert await https_classify(server, pki, "other-client", host="127.0.0.1") == 200
        assert await https_classify(server, pki, "billing-bot") == 0
    finally:
        ca_file.write_bytes(pki["ca"][0].read_bytes())
        for _ in range(30):  # the module's other tests expect the first CA back
            if await https_classify(server, pki, "billing-bot") == 200:
                break
            await asyncio.sleep(0.1)
