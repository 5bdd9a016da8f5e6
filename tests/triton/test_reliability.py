"""Hard to break: `make serve`'s program under hostile input, overload and faults (short forms).

One supervised serve (real Triton + gateway processes) for the module. The long forms are
make targets: `make fuzz` (10,000 cases), `make overload` (60 s), `make correspondence`
(100,000 answers), `make chaos` (three rounds); docs/reliability.md has their last figures.
"""

from __future__ import annotations

import os

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bench import reliability
from emotionaware.v1 import emotion_pb2 as pb

pytestmark = pytest.mark.triton

# The documented status codes (proto service comment); INTERNAL and UNKNOWN are bugs.
DOCUMENTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
EXAMPLES = int(os.environ.get("EMOTIONAWARE_FUZZ_EXAMPLES", "40"))  # per RPC; make fuzz raises it
METHODS = (
    "Classify",
    "ClassifyBatch",
    "ClassifyStream",
    "Analyze",
    "SubmitFeedback",
    "ListModels",
    "GetModel",
)


@pytest.fixture(scope="module")
def serve(exported_repo, tmp_path_factory):
    server = reliability.Serve(exported_repo, tmp_path_factory.mktemp("serve-logs"))
    yield server
    code = server.stop()
    assert code == 0, server.log_path.read_text()[-3000:]
    assert server.leftovers() == [], "processes or shared memory left behind by serve"


@pytest.fixture(scope="module")
def channel(serve):
    with grpc.insecure_channel(serve.target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        yield ch


# -- fuzz ---------------------------------------------------------------------------------------

# Text that exercises the limits: invisible characters, surrogates are impossible in protobuf
# strings (they cannot be UTF-8, so the client cannot send them), long runs, long words, every plane.
hostile_text = st.one_of(
    st.text(max_size=64),
    st.text(alphabet=st.sampled_from("\x00\u200b\ufeff\u0301 \n\t\u3000"), max_size=16),
    st.builds(lambda c, n: c * n, st.characters(exclude_categories=("Cs",)), st.integers(9_990, 10_010)),
    st.builds(lambda w, n: " ".join([w] * n), st.text(min_size=1, max_size=200), st.integers(1, 400)),
)
VALID_NAMES = st.sampled_from(["", "goemotions", "conversation", "poems", "default", "stable"])


def mostly(valid, anything):
    """Valid values three times in four, so most cases reach inference, the rest the checks."""
    return st.one_of(valid, valid, valid, anything)


names = mostly(VALID_NAMES, st.text(max_size=300))
options = st.builds(
    pb.ClassifyOptions,
    model_version=mostly(st.sampled_from(["", "1"]), st.text(max_size=50)),
    view=mostly(st.integers(0, 3), st.integers(-3, 8)),
    top_k=mostly(st.integers(0, 7), st.integers(0, 40)),
    return_all_scores=st.booleans(),
    long_text_mode=mostly(st.integers(0, 2), st.integers(-2, 4)),
)
thresholds = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32))
turns = mostly(
    st.just([]), st.lists(st.builds(pb.Turn, speaker=st.text(max_size=140), text=hostile_text), max_size=70)
)


def with_threshold(message, threshold):
    if threshold is not None:
        message.options.threshold = threshold
    return message


# Half the cases are well-formed (a served model, options it offers, visible text of any size),
# so they reach tokenization, batching and Triton; the other half may break any rule.
visible_text = st.one_of(
    st.text(min_size=1, max_size=64).filter(lambda t: t.strip() and any(c.isalnum() for c in t)),
    st.builds(
        lambda w, n: (" ".join([w] * n))[:10_000],
        st.sampled_from(["sad", "wow!", "東京", "a" * 150]),
        st.integers(1, 3000),
    ),
)
plain_options = st.builds(
    pb.ClassifyOptions,
    top_k=st.integers(0, 7),
    return_all_scores=st.booleans(),
    long_text_mode=st.integers(0, 2),
)
good_turns = st.lists(st.builds(pb.Turn, speaker=st.sampled_from(["a", "b"]), text=visible_text), max_size=12)
classify = st.one_of(
    st.builds(
        pb.ClassifyRequest,
        text=visible_text,
        model=st.sampled_from(["goemotions", "poems", ""]),
        options=plain_options,
    ),
    st.builds(
        pb.ClassifyRequest,
        text=visible_text,
        model=st.just("conversation"),
        context=good_turns,
        speaker=st.sampled_from(["a", "b", ""]),
        options=st.builds(pb.ClassifyOptions, top_k=st.integers(0, 7), return_all_scores=st.booleans()),
    ),
    st.builds(
        with_threshold,
        st.builds(
            pb.ClassifyRequest,
            text=hostile_text,
            model=names,
            options=options,
            context=turns,
            speaker=st.text(max_size=140),
        ),
        thresholds,
    ),
)
batch = st.one_of(
    st.builds(
        pb.ClassifyBatchRequest,
        texts=st.lists(visible_text, min_size=1, max_size=64),
        model=st.sampled_from(["goemotions", "poems", "conversation"]),
        options=plain_options,
    ),
    st.builds(
        pb.ClassifyBatchRequest, texts=st.lists(hostile_text, max_size=300), model=names, options=options
    ),
)
# Sentences of every size and count around the limit, joined by every kind of separator.
sentence_runs = st.builds(
    lambda pieces, separator, n: (separator.join(pieces * n))[:10_000],
    st.lists(st.one_of(visible_text, hostile_text), min_size=1, max_size=4),
    st.sampled_from([". ", "! ", "\r\n", "\n\n", "。", "\u2029", " ", ".", "?!\u200b "]),
    st.integers(1, 140),
)
analyze = st.one_of(
    st.builds(
        pb.AnalyzeRequest,
        text=sentence_runs,
        model=st.sampled_from(["goemotions", "poems", "conversation", ""]),
        options=plain_options,
    ),
    st.builds(
        with_threshold,
        st.builds(
            pb.AnalyzeRequest, text=st.one_of(hostile_text, sentence_runs), model=names, options=options
        ),
        thresholds,
    ),
)
stream = st.lists(
    st.one_of(
        st.builds(
            pb.ClassifyStreamRequest,
            conversation_id=st.sampled_from(["a", "b", "c"]),
            speaker=st.sampled_from(["x", "y"]),
            text=visible_text,
            message_id=st.text(max_size=10),
        ),
        st.builds(
            pb.ClassifyStreamRequest,
            conversation_id=st.text(max_size=140),
            speaker=st.text(max_size=10),
            text=hostile_text,
            message_id=st.text(max_size=10),
            model=names,
            options=options,
            timeout_ms=st.integers(0, 5000),
        ),
    ),
    min_size=1,
    max_size=8,
)


def check_status(err: grpc.RpcError) -> None:
    event(err.code().name)
    assert err.code() in DOCUMENTED, (err.code(), err.details())
    assert len(err.details() or "") < 600  # user values are quoted short


def check_item(error: pb.Error) -> None:
    event(f"item {grpc.StatusCode.INVALID_ARGUMENT.name if error.code == 3 else error.code}")
    assert error.code in {c.value[0] for c in DOCUMENTED}, (error.code, error.message)
    assert len(error.message) < 600


fuzz_settings = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@fuzz_settings
@given(request=classify)
def test_fuzz_classify(channel, request):
    stub = reliability.emotion_pb2_grpc.EmotionServiceStub(channel)
    try:
        reply = stub.Classify(request, timeout=30)
        event("OK")
        assert reply.scores or not reply.predicted
    except grpc.RpcError as err:
        check_status(err)


@fuzz_settings
@given(request=batch)
def test_fuzz_classify_batch(channel, request):
    stub = reliability.emotion_pb2_grpc.EmotionServiceStub(channel)
    try:
        reply = stub.ClassifyBatch(request, timeout=60)
        event("OK")
        assert len(reply.items) == len(request.texts)
        for item in reply.items:
            if item.HasField("error"):
                check_item(item.error)
    except grpc.RpcError as err:
        check_status(err)


@fuzz_settings
@given(request=analyze)
def test_fuzz_analyze(channel, request):
    stub = reliability.emotion_pb2_grpc.EmotionServiceStub(channel)
    try:
        reply = stub.Analyze(request, timeout=60)
    except grpc.RpcError as err:
        check_status(err)
        return
    event("OK")
    text, raw = request.text, request.text.encode()
    assert 1 <= len(reply.sentences) <= 128
    for sentence in reply.sentences:
        assert text[sentence.span.start : sentence.span.end] == sentence.text
        assert raw[sentence.span.utf8_start : sentence.span.utf8_end].decode() == sentence.text


@pytest.fixture(scope="module")
def answer_ids(channel):
    stub = reliability.emotion_pb2_grpc.EmotionServiceStub(channel)
    return [
        stub.Classify(pb.ClassifyRequest(text=t, model=m), timeout=30).request_id
        for t, m in (("I love it", "goemotions"), ("No way!", "conversation"), ("A quiet evening.", "poems"))
    ]


@fuzz_settings
@given(data=st.data())
def test_fuzz_submit_feedback(channel, answer_ids, data):
    stub = reliability.emotion_pb2_grpc.EmotionServiceStub(channel)
    request_id = data.draw(mostly(st.sampled_from(answer_ids), st.text(max_size=500)))
    request = pb.SubmitFeedbackRequest(
        request_id=request_id,
        verdict=data.draw(mostly(st.integers(1, 2), st.integers(-3, 8))),
        labels=data.draw(
            st.lists(
                mostly(st.sampled_from(["joy", "anger", "love", "neutral"]), st.text(max_size=60)),
                max_size=40,
            )
        ),
        store_text=data.draw(st.booleans()),
    )
    if data.draw(st.booleans()):
        request.text = data.draw(
            mostly(st.sampled_from(["I love it", "No way!", "A quiet evening."]), hostile_text)
        )
    try:
        reply = stub.SubmitFeedback(request, timeout=30)
        event("OK")
        assert reply.feedback_id >= 1
    except grpc.RpcError as err:
        check_status(err)


@fuzz_settings
@given(messages=stream)
def test_fuzz_classify_stream(channel, messages):
    stub = reliability.emotion_pb2_grpc.EmotionServiceStub(channel)
    try:
        replies = list(stub.ClassifyStream(iter(messages), timeout=60))
    except grpc.RpcError as err:
        check_status(err)
        return
    assert [r.sequence for r in replies] == list(range(len(messages)))
    for reply in replies:
        if reply.HasField("error"):
            check_item(reply.error)
        else:
            event("item OK")


@fuzz_settings
@given(method=st.sampled_from(METHODS), body=st.binary(max_size=512))
def test_fuzz_raw_bytes(channel, method, body):
    path = f"/emotionaware.v1.EmotionService/{method}"
    try:
        if method == "ClassifyStream":
            list(channel.stream_stream(path)(iter([body, body]), timeout=30))
        else:
            channel.unary_unary(path)(body, timeout=30)
    except grpc.RpcError as err:
        check_status(err)


def test_fuzzing_left_memory_bounded(serve):
    """Runs after the fuzz tests (file order): the gateway holds no more than a few hundred MiB."""
    assert reliability.rss_mib(serve.gateway_pid()) < 600


# -- correspondence, overload, chaos (short forms) ------------------------------------------------


def test_every_answer_belongs_to_its_request(serve):
    result = reliability.correspondence(serve, requests=3000, concurrency=16)
    assert result["answers"] >= 3000 and result["mismatches"] == 0, result


def test_overload_is_refused_fast_and_recovers_at_once(serve):
    result = reliability.overload(serve, seconds=8, factor=4.0)
    print("\n".join(result.lines(500)))
    # What the gateway answered, and what the client saw: on a saturated host gRPC's core drops
    # some calls before any handler and the client sees CANCELLED (OverloadResult.never_handled).
    assert result.codes_ok(), (result.codes, result.answered)
    assert result.answered["OK"] == result.codes["OK"]
    assert result.refused and result.accepted
    assert result.rss_max < result.rss_start + 300  # memory bounded under 4x the capacity
    # Near the budget, not growing with the queue (the calls' 5 s deadlines). The 60 s form
    # (`make overload`) checks the budget itself; 8 s on a shared CI host is too short for that.
    assert reliability.percentile(result.served, 99) < 2000
    assert result.after_ms < 1000  # the queue drained: the next calls are served at once


@pytest.mark.parametrize("fault", reliability.FAULTS)
def test_faults_under_load_recover_without_leaks(serve, fault):
    result = reliability.inject(serve, fault)
    print("\n".join([*reliability.CHAOS_HEADER, result.row()]))
    assert reliability.chaos_ok([result]), result


def test_the_largest_accepted_requests_have_bounded_cost(serve, channel):
    """The probes that took the gateway down: 100 stream messages of 10,000 random characters in
    one conversation (22 GB before), and a 10,000-character text with 10,000-character turns."""
    import random

    rng = random.Random(7)
    noise = lambda: "".join(chr(rng.randrange(0x21, 0x3000)) for _ in range(10_000))  # noqa: E731
    stub = reliability.emotion_pb2_grpc.EmotionServiceStub(channel)
    before = reliability.rss_mib(serve.gateway_pid())
    messages = [
        pb.ClassifyStreamRequest(conversation_id="one", speaker=str(i % 2), text=noise()) for i in range(100)
    ]
    replies = list(stub.ClassifyStream(iter(messages), timeout=120))
    assert [r.sequence for r in replies] == list(range(100))
    # A burst of 100 full-length messages is more than the queue-time budget: the stream is
    # slowed down (flow control), and every message is answered.
    answered = [r.result for r in replies if r.HasField("result")]
    assert len(answered) == 100, [r.error for r in replies if r.HasField("error")][:3]
    assert all(a.truncated and a.token_count_is_lower_bound for a in answered)
    turns = [pb.Turn(speaker="a", text=noise()) for _ in range(64)]
    reply = stub.Classify(pb.ClassifyRequest(model="conversation", text=noise(), context=turns), timeout=30)
    assert reply.truncated and reply.token_count_is_lower_bound
    # Analyze at its limits: 128 sentences filling the character limit, and one sentence of
    # 10,000 characters (windowed up to the chunk limit, then truncated).
    letters = "".join(c for _ in range(4) for c in noise() if c.isalpha())  # no sentence ends
    many = "\n".join(letters[i * 77 : (i + 1) * 77] for i in range(128))
    analyzed = stub.Analyze(pb.AnalyzeRequest(text=many), timeout=60)
    assert len(analyzed.sentences) == 128 and len(many) <= 10_000
    words = " ".join(letters[i : i + 2] for i in range(0, 6668, 2))[:10_000]
    one = stub.Analyze(pb.AnalyzeRequest(text=words), timeout=60)
    assert len(one.sentences) == 1 and one.sentences[0].chunk_count == 16 and one.truncated
    assert reliability.rss_mib(serve.gateway_pid()) - before < 200


def test_a_hung_triton_is_replaced_after_the_hang_restart_time(exported_repo, tmp_path):
    """SIGSTOP without SIGCONT: Triton answers nothing but has not exited. serve must kill it
    (its group and shared memory) once it has been silent for --hang-restart-s, and start another."""
    import signal
    import time

    serve = reliability.Serve(exported_repo, tmp_path / "logs", extra=["--hang-restart-s=3"])
    try:
        hung = serve.triton_pid()
        os.kill(hung, signal.SIGSTOP)
        stopped = time.monotonic()
        replaced = None
        while time.monotonic() - stopped < 60 and replaced in (None, hung):
            time.sleep(0.2)
            replaced = serve.triton_pid()
        assert replaced not in (None, hung), "the hung Triton was not replaced"
        assert time.monotonic() - stopped >= 3  # not before the hang time
        assert "did not answer for" in serve.log_path.read_text()
        assert reliability._state(hung) in ("gone", "Z")
        while time.monotonic() - stopped < 120 and reliability.health(serve.target) != "SERVING":
            time.sleep(0.2)
        with grpc.insecure_channel(serve.target) as channel:
            reply = reliability.emotion_pb2_grpc.EmotionServiceStub(channel).Classify(
                pb.ClassifyRequest(text="Back again, thank you!"), timeout=10
            )
        assert reply.scores
    finally:
        code = serve.stop()
    assert code == 0, serve.log_path.read_text()[-3000:]
    assert serve.leftovers() == []
