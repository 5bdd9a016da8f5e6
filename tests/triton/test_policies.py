"""Policies against a real Triton: a scripted support conversation whose escalation rule fires at
the expected turn, with its summaries; a label rule flags the expected sentence; the rules
reload with the routing file."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import grpc
import pytest
from prometheus_client import REGISTRY

from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.server import GatewayServer
from gateway.settings import Settings

pytestmark = pytest.mark.triton

ROUTING = """
[models.goemotions]
[models.conversation]
[models.poems]

[aliases]
default = "goemotions"

[policies.abuse]
when = "anger + disgust >= 0.8"
scope = ["text", "sentence"]
models = ["goemotions"]

[policies.escalate]
when = "negative_average >= 0.6"
turns = 3
speaker = "customer"
"""

# A support chat that goes wrong: the customer grows angrier while the agent stays polite.
SCRIPT = [
    ("customer", "Hi, I have a question about my order."),
    ("agent", "Of course, happy to help! What's the order number?"),
    ("customer", "It's 4471. It was supposed to arrive last week."),
    ("agent", "Let me check that for you."),
    ("customer", "This is ridiculous, I have been waiting for ages."),
    ("agent", "I'm sorry about the delay."),
    ("customer", "I am so angry, nobody ever answers my emails!"),
    ("agent", "I understand, let me escalate this."),
    ("customer", "You people are useless and I hate this company."),
    ("customer", "This is disgusting service, I'm furious."),
    ("agent", "I've issued a refund and a discount code."),
    ("customer", "Fine. Thank you."),
]
WINDOW = 3


@pytest.fixture(scope="module")
async def policy_stub(triton, exported_repo, tmp_path_factory):
    routing = tmp_path_factory.mktemp("policies") / "routing.toml"
    routing.write_text(ROUTING)
    settings = Settings(
        listen="127.0.0.1:0",
        http_listen="",
        triton_url=triton.grpc_url,
        model_repository=exported_repo,
        routing_file=str(routing),
        routing_poll_s=0.1,
        metrics_port=0,
        stream_summary_turns=WINDOW,
    )
    server = GatewayServer(settings)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield (
            emotion_pb2_grpc.EmotionServiceStub(channel),
            routing,
            replace(settings, listen=f"127.0.0.1:{port}"),
        )
    await server.stop()


def negative_of(result: pb.ClassifyResponse) -> float:
    """The sentiment view's negative score of a softmax Ekman result: its members' sum."""
    scores = {s.label: s.score for s in result.scores}
    return sum(scores[label] for label in ("anger", "disgust", "fear", "sadness"))


def matches(rule: str, scope: str) -> float:
    return (
        REGISTRY.get_sample_value("emotionaware_policy_matches_total", {"rule": rule, "scope": scope}) or 0.0
    )


async def test_the_escalation_alert_fires_at_the_expected_turn_with_summaries(policy_stub):
    stub, _, _ = policy_stub
    before = matches("escalate", "conversation")
    options = pb.ClassifyOptions(return_all_scores=True)
    requests = [
        pb.ClassifyStreamRequest(
            conversation_id="ticket-9",
            speaker=speaker,
            text=text,
            message_id=str(i),
            options=options,
            summarize=True,
        )
        for i, (speaker, text) in enumerate(SCRIPT)
    ]
    requests.append(
        pb.ClassifyStreamRequest(conversation_id="ticket-9", end_conversation=True, message_id="end")
    )
    call = stub.ClassifyStream(iter(requests), timeout=120)
    replies = [reply async for reply in call]
    assert len(replies) == len(requests) and all(r.HasField("result") for r in replies[:-1])
    # What the rule should do, from the served scores: the customer's negative moving average
    # over their last 3 turns, >= 0.6 for 3 of their turns in a row.
    customer = [i for i, (speaker, _) in enumerate(SCRIPT) if speaker == "customer"]
    negatives, streak, expected = [], 0, []
    for i in customer:
        negatives.append(negative_of(replies[i].result))
        average = sum(negatives[-WINDOW:]) / len(negatives[-WINDOW:])
        streak = streak + 1 if average >= 0.6 else 0
        if streak == 3:
            expected.append((i, round(average, 4)))
    fired = [(r.flags[0].turn, round(r.flags[0].value, 4)) for r in replies if r.flags]
    assert fired == expected and len(fired) == 1, (fired, expected)
    # The script makes it fire at the customer's "furious" turn (turn 9), not before.
    assert fired[0][0] == 9 and replies[9].flags[0].speaker == "customer"
    assert replies[9].flags[0].rule == "escalate" and replies[9].flags[0].scope == pb.FLAG_SCOPE_CONVERSATION
    assert matches("escalate", "conversation") - before == 1
    # Running summaries: turns so far, the customer's average as computed above.
    running = replies[9].summary
    assert running.reason == pb.SUMMARY_REASON_REQUESTED and running.turns == 10 and running.window == WINDOW
    by_speaker = {s.speaker: s for s in running.speakers}
    customer_so_far = [negative_of(replies[i].result) for i in customer if i <= 9][-WINDOW:]
    assert by_speaker["customer"].negative_average == pytest.approx(
        sum(customer_so_far) / len(customer_so_far), abs=1e-5
    )
    assert by_speaker["customer"].trend == pb.TREND_RISING and by_speaker["agent"].turns == 4
    # The end of the conversation: the final summary, no outcome; the customer calmed down.
    final = replies[-1]
    assert final.WhichOneof("outcome") is None and final.summary.reason == pb.SUMMARY_REASON_ENDED
    assert final.summary.turns == len(SCRIPT) and final.summary.model == "conversation"
    assert {s.speaker: s for s in final.summary.speakers}["customer"].trend == pb.TREND_FALLING
    assert sum(share.predicted_turns for share in final.summary.labels) == len(SCRIPT)  # one label a turn
    assert final.summary.labels[0].mean_score >= final.summary.labels[-1].mean_score


async def test_a_label_rule_flags_the_abusive_sentence_and_the_document(policy_stub):
    stub, _, _ = policy_stub
    text = "Thanks for the quick reply. You are a disgusting, vile excuse for a company! Anyway, see you."
    reply = await stub.Analyze(pb.AnalyzeRequest(text=text, model="goemotions"), timeout=30)
    sentence_flags = [f for f in reply.flags if f.scope == pb.FLAG_SCOPE_SENTENCE]
    assert [(f.rule, f.sentence) for f in sentence_flags] == [("abuse", 1)]
    flagged = sentence_flags[0]
    assert text[flagged.span.start : flagged.span.end] == reply.sentences[1].text and flagged.value >= 0.8
    assert [f.rule for f in reply.flags if f.scope == pb.FLAG_SCOPE_TEXT] == ["abuse"]  # max aggregation
    polite = await stub.Classify(pb.ClassifyRequest(text="Thanks for the quick reply.", model="goemotions"))
    assert not polite.flags
    rude = await stub.Classify(pb.ClassifyRequest(text="You are a disgusting, vile excuse for a company!"))
    assert [(f.rule, f.scope) for f in rude.flags] == [("abuse", pb.FLAG_SCOPE_TEXT)]


async def test_rules_reload_with_the_routing_file_and_a_bad_rule_keeps_the_old_ones(policy_stub):
    stub, routing, _ = policy_stub
    text = "You are a disgusting, vile excuse for a company!"
    try:
        routing.write_text(ROUTING.replace("anger + disgust >= 0.8", "anger + disgust >= 1.9"))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if not (await stub.Classify(pb.ClassifyRequest(text=text))).flags:
                break
        assert not (await stub.Classify(pb.ClassifyRequest(text=text))).flags
        routing.write_text(ROUTING.replace("anger + disgust >= 0.8", "angr + disgust >= 0.8"))
        await asyncio.sleep(0.5)  # the bad file is refused: the 1.9 rule stays
        assert not (await stub.Classify(pb.ClassifyRequest(text=text))).flags
    finally:
        routing.write_text(ROUTING)
        for _ in range(100):
            await asyncio.sleep(0.1)
            if (await stub.Classify(pb.ClassifyRequest(text=text))).flags:
                break
    assert (await stub.Classify(pb.ClassifyRequest(text=text))).flags
