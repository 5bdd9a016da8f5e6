"""The HTTP/JSON transport of the in-process gateway: every endpoint, the one JSON error shape
with each HTTP status mapped from the error table, and credentials as on gRPC."""

from __future__ import annotations

import json
from dataclasses import replace

import aiohttp
import pytest

from gateway.backends.onnxruntime import EmbeddedBackend
from gateway.errors import BackendUnavailable, Overloaded
from gateway.server import GatewayServer
from tests.grpc.test_auth import CLIENTS, TOKENS, wait_serving, write_tokens

pytestmark = pytest.mark.grpc


@pytest.fixture
async def http(gateway, backend):
    backend.reset()
    _, server = gateway
    async with aiohttp.ClientSession(f"http://127.0.0.1:{server.http_port}") as session:
        yield session


async def post(session: aiohttp.ClientSession, path: str, body, headers=None) -> tuple[int, dict, dict]:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    async with session.post(path, data=data, headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)


async def get(session: aiohttp.ClientSession, path: str, headers=None) -> tuple[int, dict]:
    async with session.get(path, headers=headers) as response:
        return response.status, await response.json()


# -- every endpoint ---------------------------------------------------------------------------


async def test_classify_answers_in_the_canonical_json_mapping(http):
    status, body, headers = await post(
        http, "/v1/classify", {"text": "Thank you so much!", "options": {"view": "VIEW_EKMAN", "topK": 3}}
    )
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body["model"] == "goemotions" and body["view"] == "VIEW_EKMAN"
    assert body["scoreType"] == "SCORE_TYPE_SIGMOID" and body["truncated"] is False
    assert len(body["scores"]) == 3 and {"label", "score", "threshold", "predicted"} <= set(body["scores"][0])
    assert int(body["serverLatencyUs"]) > 0  # int64: a string, as the mapping says


async def test_batch_keeps_per_item_errors_in_order(http):
    status, body, _ = await post(http, "/v1/classify/batch", {"texts": ["great", " ", "awful"]})
    assert status == 200
    items = body["items"]
    assert [("result" in i, "error" in i) for i in items] == [(True, False), (False, True), (True, False)]
    assert items[1]["error"]["code"] == 3 and items[1]["error"]["message"].startswith("texts[1]")


async def test_models_and_one_model(http):
    status, body = await get(http, "/v1/models")
    assert status == 200 and {m["name"] for m in body["models"]} >= {"goemotions", "conversation"}
    assert any(a["name"] == "default" for a in body["aliases"])
    status, body = await get(http, "/v1/models/stable")
    assert status == 200 and body["model"]["name"] == "goemotions" and body["model"]["maxBatchTexts"] == 8


async def test_stream_is_a_websocket_answering_in_order_with_context(http):
    turns = [("ann", "I got the job!"), ("bob", "No way, congratulations!"), ("ann", "I start Monday.")]
    async with http.ws_connect("/v1/stream") as ws:
        for i, (speaker, text) in enumerate(turns):
            await ws.send_str(json.dumps({"conversationId": "c1", "messageId": f"m{i}", "speaker": speaker,
                                          "text": text}))  # fmt: skip
        await ws.send_str("{not json")
        replies = [json.loads((await ws.receive(timeout=30)).data) for _ in range(len(turns) + 1)]
    assert [int(r["sequence"]) for r in replies] == [0, 1, 2, 3]
    assert [r.get("messageId") for r in replies[:3]] == ["m0", "m1", "m2"]
    assert [r["result"]["contextTurns"] for r in replies[:3]] == [0, 1, 2]
    assert replies[3]["error"]["code"] == 3 and "is not JSON" in replies[3]["error"]["message"]


async def test_health_openapi_and_playground_are_served(http):
    assert await get(http, "/v1/health") == (200, {"status": "SERVING"})
    status, document = await get(http, "/openapi.json")
    assert status == 200 and document["openapi"] == "3.1.0" and "/v1/classify" in document["paths"]
    async with http.get("/", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/playground/"
    async with http.get("/playground/") as response:
        assert response.status == 200 and "text/html" in response.headers["Content-Type"]
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    async with http.get("/playground/..%2Fapp.py") as response:
        assert response.status == 404


# -- errors: one shape, each status ---------------------------------------------------------------


def assert_error(status: int, body: dict, http_status: int, code: str, message_start: str) -> None:
    assert status == http_status, body
    assert set(body) == {"error"} and body["error"]["code"] == http_status and body["error"]["status"] == code
    assert body["error"]["message"].startswith(message_start), body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": ""}, "text: "),
        ({"text": "hi", "txet": "typo"}, "body: is not a valid ClassifyRequest: "),
        (b"{not json", "body: is not JSON"),
        (b"[1, 2]", "body: must be a JSON object"),
        ({"text": "hi", "options": {"view": "VIEW_NOPE"}}, "body: is not a valid ClassifyRequest"),
        ({"text": "x" * 20_000}, "text: is 20000 characters long"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(http, body, message):
    status, answer, _ = await post(http, "/v1/classify", body)
    assert_error(status, answer, 400, "INVALID_ARGUMENT", message)


async def test_a_long_bad_value_is_quoted_short(http):
    status, answer, _ = await post(http, "/v1/classify", {"text": "hi", "options": {"view": "V" * 5000}})
    assert status == 400 and len(answer["error"]["message"]) < 400


async def test_unknown_model_path_and_method(http):
    status, body, _ = await post(http, "/v1/classify", {"text": "hi", "model": "nope"})
    assert_error(status, body, 404, "NOT_FOUND", "model 'nope' is not served")
    assert_error(*await get(http, "/v1/nothing-here"), 404, "NOT_FOUND", "no such path '/v1/nothing-here'")
    assert_error(*await get(http, "/v1/classify"), 405, "UNIMPLEMENTED", "GET is not allowed")


async def test_refusals_are_429_with_retry_after(http, backend):
    backend.error = Overloaded("model goemotions is busy", 1500)
    status, body, headers = await post(http, "/v1/classify", {"text": "hello there"})
    assert_error(status, body, 429, "RESOURCE_EXHAUSTED", "model goemotions is busy")
    assert body["error"]["retryAfterMs"] == 1500 and headers["Retry-After"] == "2"


async def test_backend_failures_deadlines_and_internal_errors(http, backend):
    backend.error = BackendUnavailable("inference server is unavailable")
    assert_error(
        *(await post(http, "/v1/classify", {"text": "hi"}))[:2], 503, "UNAVAILABLE", "inference server"
    )
    backend.error = RuntimeError("secret stack detail")
    status, body, _ = await post(http, "/v1/classify", {"text": "hi"})
    assert_error(status, body, 500, "INTERNAL", "internal error")
    assert "secret" not in json.dumps(body)
    backend.error = None
    status, body, _ = await post(http, "/v1/classify", {"text": "hi"}, headers={"X-Timeout-Ms": "0"})
    assert_error(status, body, 504, "DEADLINE_EXCEEDED", "the request deadline had already passed")
    status, body, _ = await post(http, "/v1/classify", {"text": "hi"}, headers={"X-Timeout-Ms": "soon"})
    assert_error(status, body, 400, "INVALID_ARGUMENT", "X-Timeout-Ms: must be a number")


# -- credentials as on gRPC -----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def token_http(grpc_settings, exported_repo, routing_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("http-auth")
    tokens, routing = folder / "tokens.toml", folder / "routing.toml"
    write_tokens(tokens, TOKENS)
    routing.write_text(routing_file.read_text() + CLIENTS)
    settings = replace(grpc_settings, listen="127.0.0.1:0", http_listen="127.0.0.1:0",
                       health_listen="127.0.0.1:0", routing_file=str(routing), auth_tokens_file=str(tokens))  # fmt: skip
    server = GatewayServer(settings, backend=EmbeddedBackend(exported_repo, threads=1))
    await server.start()
    await wait_serving(f"127.0.0.1:{server.health_port}")
    async with aiohttp.ClientSession(f"http://127.0.0.1:{server.http_port}") as session:
        yield session
    await server.stop()


def bearer(client: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[client]}"}


async def test_http_calls_need_a_valid_token_and_a_grant(token_http):
    request = {"text": "thank you so much"}
    status, body, _ = await post(token_http, "/v1/classify", request)
    assert_error(status, body, 401, "UNAUTHENTICATED", "credentials required")
    status, body, _ = await post(token_http, "/v1/classify", request, {"Authorization": "Bearer not-a-token"})
    assert_error(status, body, 401, "UNAUTHENTICATED", "the bearer token is not valid")
    status, body, _ = await post(token_http, "/v1/classify", request, {"Authorization": "Basic dXNlcg=="})
    assert_error(status, body, 401, "UNAUTHENTICATED", "the authorization header must be")
    status, body, _ = await post(token_http, "/v1/classify", request, bearer("billing-bot"))
    assert status == 200 and body["model"] == "goemotions"
    status, body, _ = await post(token_http, "/v1/classify", request, bearer("reader"))
    assert_error(status, body, 403, "PERMISSION_DENIED", "client reader may not call Classify")
    status, body, _ = await post(
        token_http, "/v1/classify", {**request, "model": "conversation"}, bearer("billing-bot")
    )
    assert_error(status, body, 403, "PERMISSION_DENIED", "")
    assert (await get(token_http, "/v1/models", bearer("reader")))[0] == 200
    # Health, the API's description and the page carry no data: no credentials needed.
    assert (await get(token_http, "/v1/health"))[0] == 200
    assert (await get(token_http, "/openapi.json"))[0] == 200


async def test_the_websocket_stream_needs_a_token_too(token_http):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with token_http.ws_connect("/v1/stream"):
            pass
    assert refused.value.status == 401
    async with token_http.ws_connect("/v1/stream", headers=bearer("billing-bot")) as ws:
        await ws.send_str(json.dumps({"conversationId": "c", "text": "hi there", "model": "goemotions"}))
        reply = json.loads((await ws.receive(timeout=30)).data)
    assert reply["result"]["model"] == "goemotions"


async def test_a_non_loopback_http_port_needs_authentication(grpc_settings):
    with pytest.raises(ValueError, match=r"refusing to serve 0\.0\.0\.0:8080 without authentication"):
        replace(grpc_settings, http_listen="0.0.0.0:8080")
    replace(grpc_settings, http_listen="0.0.0.0:8080", allow_unauthenticated=True)


def _client_requests(method: str, code: str) -> float:
    from gateway.metrics import CLIENT_REQUESTS

    return sum(
        s.value
        for metric in CLIENT_REQUESTS.collect()
        for s in metric.samples
        if s.name.endswith("_total") and s.labels["method"] == method and s.labels["code"] == code
    )


async def test_a_body_over_the_limit_is_a_json_413_counted_as_invalid_argument(http, gateway):
    settings, _ = gateway
    before = {c: _client_requests("Classify", c) for c in ("INVALID_ARGUMENT", "UNKNOWN")}
    body = {"text": "a" * (settings.max_message_bytes + 10)}
    status, answer, _ = await post(http, "/v1/classify", body)
    assert status == 413 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"] == (
        f"body: the request body is larger than the limit of {settings.max_message_bytes} bytes"
    )
    # The audit line and the client metrics carry the answered code, not UNKNOWN.
    assert _client_requests("Classify", "INVALID_ARGUMENT") == before["INVALID_ARGUMENT"] + 1
    assert _client_requests("Classify", "UNKNOWN") == before["UNKNOWN"]
