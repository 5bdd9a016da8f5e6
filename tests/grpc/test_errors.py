"""Every error path of the API: the status code and the exact message a client sees."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1.emotion_pb2_grpc import EmotionServiceStub
from gateway.backends.onnxruntime import EmbeddedBackend
from gateway.errors import BackendUnavailable
from gateway.server import GatewayServer
from tests.grpc.fakes import FaultyBackend

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
Opts = pb.ClassifyOptions
Turn = pb.Turn


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (pb.ClassifyRequest(text=""), INVALID, "text: must contain at least one visible character"),
        (
            pb.ClassifyRequest(text=" \n\t"),
            INVALID,
            "text: must contain at least one visible character",
        ),
        *(
            (pb.ClassifyRequest(text=blank), INVALID, "text: must contain at least one visible character")
            for blank in ("\x00\x00", "\u200b", "\ufeff", "\u0301", "\u3000\u2028")
        ),
        (
            pb.ClassifyRequest(text="hi", model="m" * 20_000),
            NOT_FOUND,
            "model 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm'... (20000 characters) is not served; available: "
            "canary, conversation, default, goemotions, stable, tiny-user-model",
        ),
        (
            pb.ClassifyRequest(text="hi", options=Opts(model_version="9" * 5000)),
            NOT_FOUND,
            "model 'goemotions' has no served version '9999999999999999999999999999999999999999'... "
            "(5000 characters); served: 1",
        ),
        (
            pb.ClassifyRequest(text="x" * 10_001),
            INVALID,
            "text: is 10001 characters long; the limit is 10000",
        ),
        (
            pb.ClassifyRequest(text="x" * 51, model="tiny-user-model"),
            INVALID,
            "text: is 51 characters long; the limit is 50",
        ),
        (
            pb.ClassifyRequest(text="hi", model="nope"),
            NOT_FOUND,
            "model 'nope' is not served; available: canary, conversation, default, goemotions, stable, tiny-user-model",
        ),
        (
            pb.ClassifyRequest(text="hi", options=Opts(model_version="9")),
            NOT_FOUND,
            "model 'goemotions' has no served version '9'; served: 1",
        ),
        (
            pb.ClassifyRequest(text="hi", model="tiny-user-model", options=Opts(view=pb.VIEW_EKMAN)),
            INVALID,
            "options.view: model tiny-user-model offers native; got ekman",
        ),
        (
            pb.ClassifyRequest(text="hi", options=Opts(view=99)),
            INVALID,
            "options.view: unknown View value 99",
        ),
        (
            pb.ClassifyRequest(text="hi", options=Opts(long_text_mode=7)),
            INVALID,
            "options.long_text_mode: unknown LongTextMode value 7",
        ),
        (
            pb.ClassifyRequest(text="hi", options=Opts(top_k=29)),
            INVALID,
            "options.top_k: must be at most 28 (labels of the view); got 29",
        ),
        (
            pb.ClassifyRequest(text="hi", options=Opts(view=pb.VIEW_EKMAN, top_k=8)),
            INVALID,
            "options.top_k: must be at most 7 (labels of the view); got 8",
        ),
        (
            pb.ClassifyRequest(text="hi", options=Opts(threshold=1.5)),
            INVALID,
            "options.threshold: must be in [0, 1]; got 1.5",
        ),
        (
            pb.ClassifyRequest(text="hi", model="conversation", options=Opts(threshold=0.3)),
            INVALID,
            "options.threshold: applies to multi-label models only; model conversation is single-label (softmax)",
        ),
        (
            pb.ClassifyRequest(text="hi", context=[Turn(speaker="a", text="hello")]),
            INVALID,
            "context: model goemotions reads no conversation context; send no turns",
        ),
        (
            pb.ClassifyRequest(text="hi", model="conversation", context=[Turn(speaker="a", text="yo")] * 65),
            INVALID,
            "context: has 65 turns; the limit is 64",
        ),
        (
            pb.ClassifyRequest(text="hi", model="conversation", context=[Turn(speaker="a", text=" ")]),
            INVALID,
            "context[0].text: must contain at least one visible character",
        ),
        (
            pb.ClassifyRequest(text="hi", model="conversation", context=[Turn(speaker="a" * 129, text="yo")]),
            INVALID,
            "context[0].speaker: is 129 characters long; the limit is 128",
        ),
        (
            pb.ClassifyRequest(
                text="hi",
                model="conversation",
                context=[Turn(speaker="a", text="yo")],
                options=Opts(long_text_mode=pb.LONG_TEXT_MODE_CHUNK),
            ),
            INVALID,
            "options.long_text_mode: chunk mode cannot be combined with context",
        ),
        (
            pb.ClassifyRequest(text="hi", model="conversation", speaker="s" * 129),
            INVALID,
            "speaker: is 129 characters long; the limit is 128",
        ),
    ],
    ids=lambda v: v.name if isinstance(v, grpc.StatusCode) else None,
)
async def test_classify_rejects_bad_requests(stub, request_, code, message):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(request_, timeout=10)
    assert (err.value.code(), err.value.details()) == (code, message)


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (pb.ClassifyBatchRequest(), INVALID, "texts: must hold at least one text"),
        (pb.ClassifyBatchRequest(texts=["a"] * 9), INVALID, "texts: holds 9 texts; the limit is 8"),
        (pb.ClassifyBatchRequest(texts=["a"], model="nope"), NOT_FOUND, None),
        (
            pb.ClassifyBatchRequest(texts=["a"], options=Opts(threshold=-0.1)),
            INVALID,
            "options.threshold: must be in [0, 1]; got -0.10000000149011612",
        ),
    ],
)
async def test_classify_batch_rejects_bad_calls(stub, request_, code, message):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ClassifyBatch(request_, timeout=10)
    assert err.value.code() == code
    if message:
        assert err.value.details() == message


async def test_get_model_of_unknown_name_is_not_found(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetModel(pb.GetModelRequest(model="nope"), timeout=10)
    assert err.value.code() == NOT_FOUND and err.value.details().startswith("model 'nope' is not served")


async def test_stream_reports_bad_messages_in_place_and_goes_on(stub):
    messages = [
        pb.ClassifyStreamRequest(conversation_id="", text="hello"),
        pb.ClassifyStreamRequest(conversation_id="c" * 129, text="hello"),
        pb.ClassifyStreamRequest(
            conversation_id="a", text="hello", options=Opts(long_text_mode=pb.LONG_TEXT_MODE_CHUNK)
        ),
        pb.ClassifyStreamRequest(conversation_id="a", text="hello", model="nope"),
        pb.ClassifyStreamRequest(conversation_id="a", text=""),
        pb.ClassifyStreamRequest(conversation_id="a", text="That is wonderful news!", message_id="ok"),
    ]
    replies = [r async for r in stub.ClassifyStream(iter(messages), timeout=20)]
    assert [r.sequence for r in replies] == list(range(6))
    errors = [(r.error.code, r.error.message) for r in replies[:5]]
    assert errors == [
        (3, "conversation_id: must not be empty"),
        (3, "conversation_id: is 129 characters long; the limit is 128"),
        (3, "options.long_text_mode: chunk mode is not available on streams"),
        (5, errors[3][1]),
        (3, "text: must contain at least one visible character"),
    ]
    assert errors[3][1].startswith("model 'nope' is not served")
    # Rejected messages were not added to the conversation: the good one has no context.
    assert replies[5].message_id == "ok" and replies[5].result.context_turns == 0


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            BackendUnavailable("inference server is unavailable"),
            grpc.StatusCode.UNAVAILABLE,
            "inference server is unavailable",
        ),
        (RuntimeError("secret stack detail"), grpc.StatusCode.INTERNAL, "internal error"),
    ],
)
async def test_backend_failures_map_to_status(stub, backend, error, code, message):
    backend.error = error
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(pb.ClassifyRequest(text="hi"), timeout=10)
    assert (err.value.code(), err.value.details()) == (code, message)


async def test_client_deadline_is_propagated_and_enforced(grpc_settings, exported_repo):
    # A gateway of its own: on the session-wide one, the batch cost measured under earlier tests'
    # injected delays makes admission refuse a 0.3 s deadline up front (RESOURCE_EXHAUSTED,
    # "would need about 319 ms"), which is right there but not what this test is about.
    backend = FaultyBackend(EmbeddedBackend(exported_repo))
    backend.delay_s = 2.0
    server = GatewayServer(grpc_settings, backend=backend)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await EmotionServiceStub(ch).Classify(pb.ClassifyRequest(text="hi"), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0 < backend.calls[0][3] <= 0.31  # the remaining deadline, not a default
    finally:
        await server.stop()


async def test_server_side_timeout_applies_without_client_deadline(grpc_settings, exported_repo):
    from dataclasses import replace

    backend = FaultyBackend(EmbeddedBackend(exported_repo))
    backend.delay_s = 1.0
    server = GatewayServer(replace(grpc_settings, default_timeout_s=0.2), backend=backend)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await EmotionServiceStub(ch).Classify(pb.ClassifyRequest(text="hi"))
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert err.value.details() == "the request deadline passed before an answer was ready"
        assert time.monotonic() - started < 0.9
        assert backend.calls[0][3] == pytest.approx(0.2, abs=0.05)
    finally:
        await server.stop()


async def test_overload_is_resource_exhausted_with_a_retry_hint(stub, backend):
    backend.delay_s = 0.5  # slow batches in flight, 256 queued (the limit), 64 waiting, the rest refused
    # Long deadlines: the count limits are under test, not the deadline check, whose estimate may
    # still carry the slow batches of earlier tests on this session-wide gateway.
    calls = [stub.Classify(pb.ClassifyRequest(text=f"text {i}"), timeout=600) for i in range(500)]
    outcomes = await asyncio.gather(*(c for c in calls), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    served = [o for o in outcomes if isinstance(o, pb.ClassifyResponse)]
    # No call is lost: each is answered or refused, and every queued or waiting one is answered.
    assert len(served) + len(refused) == 500 and len(served) >= 256 + 64 and refused
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    first = refused[0]
    assert first.details().startswith("model goemotions has 64 interactive calls waiting for room (limit 64)")
    hint = dict(first.trailing_metadata())["retry-after-ms"]
    assert int(hint) >= 100 and f"retry after {hint} ms" in first.details()


async def test_messages_over_the_size_limit_are_refused(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=["x" * 1_000_000] * 17), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_request_text_never_reaches_the_log(stub, backend, caplog):
    secret = "my private diary entry about Alice"
    backend.error = RuntimeError(f"backend choked on {secret}")
    with caplog.at_level("DEBUG"):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Classify(pb.ClassifyRequest(text=secret), timeout=10)
        backend.error = None
        await stub.Classify(pb.ClassifyRequest(text=secret), timeout=10)
        await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=[secret, ""]), timeout=10)
    assert "RuntimeError" in caplog.text  # the failure is logged, without its message
    assert secret not in caplog.text


async def test_a_full_size_batch_above_grpc_default_limit_is_accepted(stub):
    texts = ["é" * 10_000] * 220  # 4.4 MB on the wire: more than gRPC's 4 MiB default
    reply = await stub.ClassifyBatch(pb.ClassifyBatchRequest(texts=texts, model="conversation"), timeout=30)
    assert len(reply.items) == 220 and all(i.WhichOneof("outcome") == "result" for i in reply.items)


async def test_a_batch_that_does_not_fit_the_queue_in_time_is_refused_whole(stub, backend):
    backend.delay_s = 0.5
    # ClassifyBatch is bulk: its own lane (256 sequences here). A first call fills most of it
    # behind the slow batches; a second does not fit, waits, and is refused whole in time.
    first = asyncio.ensure_future(
        stub.ClassifyBatch(
            pb.ClassifyBatchRequest(texts=[f"filler {i}" for i in range(200)], model="conversation"),
            timeout=600,
        )
    )
    from prometheus_client import REGISTRY

    for _ in range(500):  # until most of the filler is queued behind the slow batches
        await asyncio.sleep(0.01)
        if (REGISTRY.get_sample_value("emotionaware_queue_depth", {"model": "conversation@1"}) or 0) >= 100:
            break
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ClassifyBatch(
            pb.ClassifyBatchRequest(texts=["hi"] * 200, model="conversation"), timeout=1.5
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "bulk sequences queued (limit 256); 200 more did not fit in time" in err.value.details()
    reply = await first
    assert all(item.HasField("result") for item in reply.items)  # the first is served whole


def raw(channel, method: str):
    """A call that sends bytes as they are, bypassing the client's protobuf encoder."""
    return channel.unary_unary(f"/emotionaware.v1.EmotionService/{method}")


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("Classify", b"\n\x03\xed\xa0\x80", "text: is not valid UTF-8"),  # a lone surrogate
        ("Classify", b"\n\x02hi\x12\x01\xff", "model: is not valid UTF-8"),
        ("Classify", b'\n\x02hi"\x04\n\x02\xc3(', "context[0].speaker: is not valid UTF-8"),
        (
            "Classify",
            b'\n\x02hi"\x02\x12\x00"\x03\x12\x01\xfe',
            "context[1].text: is not valid UTF-8",
        ),
        ("Classify", b"\x1a\x03\n\x01\x80", "options.model_version: is not valid UTF-8"),
        ("Classify", b"\n\x09hi", "text: is cut short (the message ends inside it)"),
        ("ClassifyBatch", b"\n\x01a\n\x01\x80", "texts[1]: is not valid UTF-8"),
        ("GetModel", b"\n\x01\x80", "model: is not valid UTF-8"),
        ("ListModels", b"\x0b", "field 1: uses wire type 3, which this API does not accept"),
    ],
)
async def test_undecodable_requests_are_invalid_argument_naming_the_field(channel, method, body, message):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await raw(channel, method)(body, timeout=10)
    assert (err.value.code(), err.value.details()) == (INVALID, message)


async def test_undecodable_requests_are_logged_at_most_once_per_interval(channel, caplog):
    from gateway.grpc.decoding import UNDECODABLE_LOG

    UNDECODABLE_LOG._last = float("-inf")
    for _ in range(50):
        with pytest.raises(grpc.aio.AioRpcError):
            await raw(channel, "Classify")(b"\n\x03\xed\xa0\x80", timeout=10)
    lines = [r for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(lines) == 1 and "\xed" not in lines[0].getMessage()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_an_undecodable_stream_message_gets_its_error_in_place(channel):
    good = pb.ClassifyStreamRequest(conversation_id="a", text="thanks!", message_id="ok").SerializeToString()
    call = channel.stream_stream("/emotionaware.v1.EmotionService/ClassifyStream",
                                 response_deserializer=pb.ClassifyStreamResponse.FromString)  # fmt: skip
    replies = [r async for r in call(iter([b"\n\x01a\x1a\x01\x80", good]), timeout=20)]
    assert [r.sequence for r in replies] == [0, 1]
    assert (replies[0].error.code, replies[0].error.message) == (3, "text: is not valid UTF-8")
    assert replies[1].message_id == "ok" and replies[1].result.predicted


async def test_streams_past_the_per_connection_limit_are_refused_before_any_handler(
    grpc_settings, exported_repo
):
    """max_streams_per_connection: gRPC's HTTP/2 layer resets a connection's streams past the
    limit (REFUSED_STREAM, UNAVAILABLE at the client); the gateway never handles them."""
    from dataclasses import replace

    from gateway.metrics import REQUESTS

    backend = FaultyBackend(EmbeddedBackend(exported_repo))
    backend.delay_s = 0.5  # every call stays open while the others arrive
    server = GatewayServer(replace(grpc_settings, max_streams_per_connection=4), backend=backend)
    port = await server.start()

    def handled() -> float:
        return sum(s.value for m in REQUESTS.collect() for s in m.samples
                   if s.name.endswith("_total") and s.labels["method"] == "Classify")  # fmt: skip

    try:
        before = handled()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = EmotionServiceStub(ch)
            outcomes = await asyncio.gather(
                *(stub.Classify(pb.ClassifyRequest(text=f"text {i}"), timeout=30) for i in range(32)),
                return_exceptions=True,
            )
        refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
        assert refused and len(refused) < len(outcomes)
        assert all(r.code() == grpc.StatusCode.UNAVAILABLE and "RST_STREAM" in r.details() for r in refused)
        assert handled() - before == len(outcomes) - len(refused)  # the refused ones reached no handler
    finally:
        await server.stop()
