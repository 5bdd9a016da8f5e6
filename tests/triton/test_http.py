"""HTTP/JSON against real Triton: the same scores as gRPC, every endpoint."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import grpc
import pytest

from emotionaware.datasets import DEFAULT_DATA_DIR, load_goemotions
from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [example.text for example in load_goemotions(DEFAULT_DATA_DIR).dev[:200]]


async def test_http_answers_the_same_scores_as_grpc_for_200_texts(gateway_target, http_url, texts):
    options = pb.ClassifyOptions(return_all_scores=True)
    calls = asyncio.Semaphore(8)  # interactive callers: a few at a time, as admission expects
    async with grpc.aio.insecure_channel(gateway_target.listen) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)

        async def by_grpc_one(text: str) -> pb.ClassifyResponse:
            async with calls:
                return await stub.Classify(pb.ClassifyRequest(text=text, options=options), timeout=60)

        by_grpc = await asyncio.gather(*(by_grpc_one(t) for t in texts))
    async with aiohttp.ClientSession(http_url) as session:

        async def one(text: str) -> dict:
            body = {"text": text, "options": {"returnAllScores": True}}
            async with calls, session.post("/v1/classify", json=body) as response:
                assert response.status == 200
                return await response.json()

        by_http = await asyncio.gather(*(one(t) for t in texts))
    worst = 0.0
    for g, h in zip(by_grpc, by_http, strict=True):
        assert [s.label for s in g.scores] == [s["label"] for s in h["scores"]]
        assert list(g.predicted) == h["predicted"] and g.token_count == h["tokenCount"]
        worst = max(worst, *(abs(a.score - b["score"]) for a, b in zip(g.scores, h["scores"], strict=True)))
    assert worst <= 1e-6


async def test_every_endpoint_against_triton(http_url):
    async with aiohttp.ClientSession(http_url) as session:
        async with session.get("/v1/models") as response:
            models = await response.json()
        assert {m["name"] for m in models["models"]} >= {"goemotions", "conversation"}
        async with session.get("/v1/models/conversation") as response:
            assert (await response.json())["model"]["contextTurns"] > 0
        body = {"texts": ["I love it", "This is scary"], "model": "goemotions"}
        async with session.post("/v1/classify/batch", json=body) as response:
            items = (await response.json())["items"]
        assert [i["result"]["predicted"] for i in items] == [["love"], ["fear"]]
        async with session.ws_connect("/v1/stream") as ws:
            for text in ("I got the job!", "Congratulations!"):
                await ws.send_str(json.dumps({"conversationId": "c", "text": text}))
            replies = [json.loads((await ws.receive(timeout=30)).data) for _ in range(2)]
        assert [r["result"]["contextTurns"] for r in replies] == [0, 1]
        assert all(r["result"]["model"] == "conversation" for r in replies)
        async with session.get("/v1/health") as response:
            assert response.status == 200


async def test_transport_benchmark_short_form(http_url, texts):
    """`make transports` measures this loop against gRPC's; here one second of it, error-free."""
    from bench.admission import Outcome
    from bench.transports import http_closed_loop, lines

    http = await http_closed_loop(http_url, texts, 4, 1.0, warmup_s=0.2)
    assert http.texts > 0 and not http.errors and http.refused == 0
    grpc_like = Outcome("gRPC c4", seconds=1.0, texts=http.texts, latencies_ms=http.latencies_ms)
    table = "\n".join(lines([(4, grpc_like, http)], 1.0, 1))
    assert "| c4 | HTTP |" in table and "| 1.00 |" in table


async def test_docs_http_stream_example_runs(http_url):
    """docs/http.md's WebSocket example, against this gateway."""
    import re
    import sys

    from emotionaware.paths import ROOT

    (code,) = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "http.md").read_text(), re.S)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code.replace("http://127.0.0.1:8080", http_url), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0 and len(out.decode().splitlines()) == 2
