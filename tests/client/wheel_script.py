"""Runs in a clean venv holding only the emotionaware-client wheel (and grpcio, protobuf):
every method against a real gateway. Prints one JSON line of measurements; exits non-zero on
a failed check. Usage: python wheel_script.py TARGET MAIN_TOKEN LIMITED_TOKEN RETRY_AFTER_MS"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
import time

import emotionaware_client as ea

target, main_token, limited_token, retry_after_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
report: dict[str, object] = {}
assert importlib.util.find_spec("emotionaware") is None, "the repository's package must not be importable"
assert not any(name == "emotionaware" or name.startswith("emotionaware.") for name in sys.modules)

with ea.EmotionClient(target, token=main_token, timeout=30) as client:
    assert client.health() == "SERVING"

    # classify
    result = client.classify("Thank you so much for your help!", top_k=3)
    assert isinstance(result, ea.ClassifyResult) and result.model == "goemotions", result
    assert "gratitude" in result.predicted and result.score_type == "sigmoid", result
    assert isinstance(result.scores[0], ea.LabelScore) and result.scores[0].label == "gratitude"
    ekman = client.classify("I miss her so much", view="ekman", return_all_scores=True)
    assert ekman.view is ea.View.EKMAN and len(ekman.scores) == 7

    assert result.intensity is not None and 0.5 < result.intensity <= 1.0

    # feedback on that answer: stored once per answer (a second verdict replaces the first)
    row = client.submit_feedback(result.request_id, correct=True, labels=["gratitude"])
    again = client.submit_feedback(
        result.request_id, correct=False, labels=["gratitude", "joy"], text="Thank you so much for your help!"
    )
    assert row == again >= 1
    try:
        client.submit_feedback(result.request_id, correct=True, labels=["gratitude"], text="another text")
        raise AssertionError("feedback with another text was accepted")
    except ea.InvalidArgumentError as error:
        assert "text: is not the text of the answer" in str(error), error

    # analyze: sentences with offsets that slice the text in each unit, and the document
    message = "The parcel is late again.\r\nYour agent was rude to me! 你好。Thanks anyway 🙂"
    analyzed = client.analyze(message, return_all_scores=True)
    assert isinstance(analyzed, ea.AnalyzeResult) and analyzed.aggregation == "max", analyzed
    assert [s.text for s in analyzed.sentences] == [
        "The parcel is late again.", "Your agent was rude to me!", "你好。", "Thanks anyway 🙂"
    ], analyzed.sentences  # fmt: skip
    for s in analyzed.sentences:
        assert isinstance(s, ea.SentenceResult) and isinstance(s.span, ea.TextSpan)
        assert message[s.span.start : s.span.end] == s.text
        assert message.encode()[s.span.utf8_start : s.span.utf8_end].decode() == s.text
        assert (
            message.encode("utf-16-le")[2 * s.span.utf16_start : 2 * s.span.utf16_end].decode("utf-16-le")
            == s.text
        )
    assert analyzed.intensity == max(s.intensity or 0.0 for s in analyzed.sentences)
    try:
        client.analyze("No. " * 200)
        raise AssertionError("200 sentences were accepted")
    except ea.InvalidArgumentError as error:
        assert "has 200 sentences; the limit is 128" in str(error), error

    # models
    listing = client.models()
    assert {"goemotions", "conversation"} <= {m.name for m in listing.models}
    assert "default" in {a.name for a in listing.aliases}
    info = client.model("goemotions")
    assert info.max_batch_texts == 256 and info.score_type == "sigmoid" and len(info.labels) == 28
    assert info.max_sentences == 128
    assert client.batch_limit("") == 256

    # a batch of 1,000 texts (split into calls of at most 256), one of them invalid on its own
    texts = ["happy " * (i % 40 + 1) for i in range(1000)]
    texts[500] = " \u200b "
    started = time.perf_counter()
    items = client.classify_batch(texts)
    report["batch_1000_s"] = round(time.perf_counter() - started, 2)
    assert len(items) == 1000
    for i, item in enumerate(items):
        if i == 500:
            assert isinstance(item, ea.ItemError) and item.index == 500, item
            assert isinstance(item.exception(), ea.InvalidArgumentError) and "text" in item.message
        else:  # "happy" is one token: order is proven by each item's token count
            assert isinstance(item, ea.ClassifyResult) and item.token_count == i % 40 + 3, (i, item)

    # a conversation of several turns
    with client.conversation() as talk:
        turns = [("ann", "I got the job!"), ("bob", "No way! Congratulations!"), ("ann", "I start Monday."),
                 ("bob", "We have to celebrate.")]  # fmt: skip
        results = [talk.send(speaker, text, summarize=i == 3) for i, (speaker, text) in enumerate(turns)]
        assert talk.summary is not None and talk.summary.reason == "requested" and talk.summary.turns == 4
        assert {s.speaker for s in talk.summary.speakers} == {"ann", "bob"} and talk.alerts == ()
        final = talk.end()
        assert isinstance(final, ea.ConversationSummary) and final.reason == "ended" and final.turns == 4
        assert final.labels and isinstance(final.labels[0], ea.LabelShare) and final.model == "conversation"
        assert talk.send("ann", "Hello again").context_turns == 0  # a new conversation on the same stream
    assert [r.model for r in results] == ["conversation"] * 4 and results[0].score_type == "softmax"
    assert [r.context_turns for r in results][:2] == [0, 1] and results[-1].context_turns >= 1
    assert all(len(r.predicted) == 1 for r in results)
    report["conversation"] = [r.predicted[0] for r in results]

    # typed errors
    try:
        client.classify("")
        raise AssertionError("empty text was accepted")
    except ea.InvalidArgumentError as error:
        assert "text" in error.message and error.code.name == "INVALID_ARGUMENT", error
        report["invalid_argument"] = error.message
    try:
        client.classify("hello", model="no-such-model")
        raise AssertionError("an unknown model was accepted")
    except ea.NotFoundError as error:
        assert "no-such-model" in error.message
        report["not_found"] = error.message

# RESOURCE_EXHAUSTED honoured: "limited" may have one call open; a conversation holds it
events: list[ea.RetryEvent] = []
policy = ea.RetryPolicy(initial_backoff_s=0.01, max_attempts=20, on_retry=events.append)
with ea.EmotionClient(target, token=limited_token, retries=policy) as limited:
    talk = limited.conversation()
    talk.send("ann", "Hello there")  # the stream is open: the slot is taken
    closer = threading.Timer(0.7, talk.close)
    started = time.perf_counter()
    closer.start()
    result = limited.classify("Finally, it works!")
    elapsed = time.perf_counter() - started
    closer.join()
assert events and isinstance(events[0].error, ea.ResourceExhaustedError), events
assert events[0].error.retry_after_ms == retry_after_ms and all(
    e.delay_s >= retry_after_ms / 1000 for e in events
)
assert elapsed >= 0.7 and result.model == "goemotions"
report["retry"] = {"refusals": len(events), "retry_after_ms": events[0].error.retry_after_ms,
                   "sleeps_s": [round(e.delay_s, 3) for e in events], "elapsed_s": round(elapsed, 3)}  # fmt: skip

# with retries off the refusal surfaces as the typed error
with ea.EmotionClient(target, token=limited_token, retries=ea.RetryPolicy.none()) as limited:
    talk = limited.conversation()
    talk.send("ann", "Hello again")
    try:
        limited.classify("refused")
        raise AssertionError("the quota did not refuse")
    except ea.ResourceExhaustedError as error:
        assert error.retry_after_ms == retry_after_ms
    finally:
        talk.close()

# wrong token
with ea.EmotionClient(target, token="wrong") as stranger:
    try:
        stranger.classify("hi")
        raise AssertionError("a wrong token was accepted")
    except ea.UnauthenticatedError:
        pass


async def asynchronous() -> None:
    async with ea.AsyncEmotionClient(target, token=main_token, timeout=30) as aclient:
        one = await aclient.classify("This is terrifying")
        sentences = await aclient.analyze("I am scared. Please help me.", model="conversation")
        many = await aclient.classify_batch(["I love it", "I hate it", "ok"] * 100, concurrency=2)
        async with aclient.conversation() as talk:
            first = await talk.send("ann", "I lost my keys.")
            second = await talk.send("bob", "Oh no, that's awful.")
            ended = await talk.end()
    assert ended.reason == "ended" and ended.turns == 2
    assert one.model == "goemotions" and len(many) == 300
    assert (
        len(sentences.sentences) == 2
        and sentences.aggregation == "mean"
        and sentences.score_type == "softmax"
    )
    assert all(isinstance(i, ea.ClassifyResult) for i in many)
    assert first.context_turns == 0 and second.context_turns == 1


asyncio.run(asynchronous())
print(json.dumps(report))
