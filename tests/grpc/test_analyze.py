"""Analyze: sentences with offsets in three units, each sentence's emotions, the document
aggregate by its documented formula, intensity, limits; over gRPC and HTTP/JSON."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from emotionaware.v1 import emotion_pb2 as pb
from tests.grpc.test_http import http, post  # noqa: F401  (the HTTP fixture of this tier)

pytestmark = pytest.mark.grpc

COMPLAINT = (
    "I ordered the blender three weeks ago and it still hasn't arrived. "
    "Your support line hung up on me twice, which is honestly infuriating!\r\n"
    "Thanks to Maria in chat, though: she was lovely and fixed it in five minutes 😊"
)
# Emoji (with a ZWJ sequence and a skin tone), combining marks, CRLF, RTL and CJK text.
MIXED = (
    "Je suis cafe\u0301 ravi\u0301e!  👩🏽‍💻 This is the best day ever.\r\n\r\n"
    "هذا رائع جدا. 今天很开心。明天也会好！ Ｆｕｌｌ width… so sad 😢\u200b\n"
)
ALL = pb.ClassifyOptions(return_all_scores=True)


def scores_of(scores) -> dict[str, float]:
    return {s.label: s.score for s in scores}


def assert_spans_slice(text: str, response: pb.AnalyzeResponse) -> None:
    raw8, raw16 = text.encode("utf-8"), text.encode("utf-16-le")
    previous_end = 0
    for i, sentence in enumerate(response.sentences):
        span = sentence.span
        assert sentence.index == i and previous_end <= span.start < span.end
        assert text[span.start : span.end] == sentence.text
        assert raw8[span.utf8_start : span.utf8_end].decode("utf-8") == sentence.text
        assert raw16[2 * span.utf16_start : 2 * span.utf16_end].decode("utf-16-le") == sentence.text
        assert sentence.text == sentence.text.strip()
        previous_end = span.end


async def test_a_customer_message_comes_back_by_sentence_with_the_documented_aggregate(stub):
    response = await stub.Analyze(pb.AnalyzeRequest(text=COMPLAINT, model="goemotions", options=ALL))
    assert [s.text for s in response.sentences] == [
        "I ordered the blender three weeks ago and it still hasn't arrived.",
        "Your support line hung up on me twice, which is honestly infuriating!",
        "Thanks to Maria in chat, though: she was lovely and fixed it in five minutes 😊",
    ]
    assert_spans_slice(COMPLAINT, response)
    assert response.aggregation == pb.AGGREGATION_MAX and response.score_type == pb.SCORE_TYPE_SIGMOID
    assert response.model == "goemotions" and response.model_version
    # Each sentence answers as Classify answers the same sentence.
    for sentence in response.sentences:
        alone = await stub.Classify(pb.ClassifyRequest(text=sentence.text, model="goemotions", options=ALL))
        assert scores_of(sentence.scores) == pytest.approx(scores_of(alone.scores), abs=1e-6)
        assert list(sentence.predicted) == list(alone.predicted)
        assert sentence.intensity == pytest.approx(alone.intensity, abs=1e-6)
        assert sentence.token_count == alone.token_count and not sentence.truncated
        assert sentence.intensity == pytest.approx(1 - scores_of(sentence.scores)["neutral"], abs=1e-6)
    # The document: each label's highest sentence score; intensity the highest sentence's.
    per_sentence = [scores_of(s.scores) for s in response.sentences]
    document = scores_of(response.scores)
    for label, score in document.items():
        assert score == pytest.approx(max(p[label] for p in per_sentence), abs=1e-7)
    assert response.intensity == pytest.approx(max(s.intensity for s in response.sentences), abs=1e-7)
    assert response.token_count == sum(s.token_count for s in response.sentences)
    predicted = {label for s in response.sentences for label in s.predicted}
    assert set(response.predicted) == predicted  # max aggregation: what any sentence expresses
    # The angry sentence and the grateful one say different things.
    assert "anger" in response.sentences[1].predicted or "annoyance" in response.sentences[1].predicted
    assert "gratitude" in response.sentences[2].predicted


async def test_offsets_slice_every_script_in_code_points_bytes_and_utf16(stub):
    response = await stub.Analyze(pb.AnalyzeRequest(text=MIXED, model="goemotions"))
    assert_spans_slice(MIXED, response)
    assert [s.text for s in response.sentences] == [
        "Je suis cafe\u0301 ravi\u0301e!",
        "👩🏽‍💻 This is the best day ever.",
        "هذا رائع جدا.",
        "今天很开心。",
        "明天也会好！",
        "Ｆｕｌｌ width… so sad 😢",
    ]


async def test_a_single_label_model_takes_the_token_weighted_mean(stub):
    text = "I can't believe you did that. Get out of my house! Well, see you tomorrow then."
    response = await stub.Analyze(pb.AnalyzeRequest(text=text, model="conversation", options=ALL))
    assert response.aggregation == pb.AGGREGATION_MEAN and response.score_type == pb.SCORE_TYPE_SOFTMAX
    weights = np.array([s.token_count - 2 for s in response.sentences], dtype=np.float64)
    labels = [s.label for s in response.sentences[0].scores]
    matrix = np.array([[scores_of(s.scores)[label] for label in labels] for s in response.sentences])
    expected = dict(zip(labels, (matrix * weights[:, None]).sum(0) / weights.sum(), strict=True))
    assert scores_of(response.scores) == pytest.approx(expected, abs=1e-6)
    assert sum(scores_of(response.scores).values()) == pytest.approx(1.0, abs=1e-5)
    assert list(response.predicted) == [max(expected, key=expected.get)]
    intensities = np.array([s.intensity for s in response.sentences])
    assert response.intensity == pytest.approx(float(intensities @ weights / weights.sum()), abs=1e-6)
    assert response.intensity == pytest.approx(1 - expected["neutral"], abs=1e-6)


async def test_one_sentence_is_its_own_document_and_views_apply(stub):
    options = pb.ClassifyOptions(view=pb.VIEW_EKMAN, return_all_scores=True)
    response = await stub.Analyze(pb.AnalyzeRequest(text="  What a lovely surprise!  ", options=options))
    assert len(response.sentences) == 1 and response.aggregation == pb.AGGREGATION_UNSPECIFIED
    assert response.view == pb.VIEW_EKMAN and len(response.scores) == 7
    assert scores_of(response.scores) == scores_of(response.sentences[0].scores)
    assert response.sentences[0].span.start == 2 and response.intensity == response.sentences[0].intensity


def _batches(model: str) -> tuple[float, float]:
    count = REGISTRY.get_sample_value("emotionaware_batch_texts_count", {"model": model}) or 0.0
    total = REGISTRY.get_sample_value("emotionaware_batch_texts_sum", {"model": model}) or 0.0
    return count, total


async def test_the_sentences_of_a_call_share_batches(stub):
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    label = f"goemotions@{(await stub.GetModel(pb.GetModelRequest(model='goemotions'))).model.version}"
    before = _batches(label)
    response = await stub.Analyze(pb.AnalyzeRequest(text=text, model="goemotions"))
    count, total = (a - b for a, b in zip(_batches(label), before, strict=True))
    assert len(response.sentences) == 12 and total == 12
    assert count <= 2, f"12 sentences went out in {count} batches"  # one batch on an idle server


async def test_a_long_sentence_is_windowed_unless_truncation_is_asked(stub):
    sentence = "and then it rained again " * 60 + "so I stayed home."
    windowed = await stub.Analyze(pb.AnalyzeRequest(text=sentence, model="goemotions"))
    assert windowed.sentences[0].chunk_count > 1 and not windowed.truncated
    truncate = pb.ClassifyOptions(long_text_mode=pb.LONG_TEXT_MODE_TRUNCATE)
    cut = await stub.Analyze(pb.AnalyzeRequest(text=sentence, model="goemotions", options=truncate))
    assert cut.sentences[0].chunk_count == 1 and cut.sentences[0].truncated and cut.truncated


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Ok. " * 129, "text: has 129 sentences; the limit is 128"),
        (" \r\n\u200b ", "text: must contain at least one visible character"),
        ("x" * 10_001, "text: is 10001 characters long; the limit is 10000"),
    ],
)
async def test_limits_are_invalid_argument_naming_field_limit_and_value(stub, text, message):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Analyze(pb.AnalyzeRequest(text=text, model="goemotions"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == message


async def test_model_info_states_the_sentence_limit_and_classify_reports_intensity(stub):
    info = (await stub.GetModel(pb.GetModelRequest(model="goemotions"))).model
    assert info.max_sentences == 128
    sad = await stub.Classify(pb.ClassifyRequest(text="My dog died this morning and I can't stop crying."))
    flat = await stub.Classify(pb.ClassifyRequest(text="The meeting is at 3pm in room 204."))
    assert sad.HasField("intensity") and flat.HasField("intensity")
    assert sad.intensity > 0.8 > 0.5 > flat.intensity


async def test_analyze_over_http_json(http):  # noqa: F811
    status, body, _ = await post(http, "/v1/analyze", {"text": COMPLAINT, "model": "goemotions"})
    assert status == 200, body
    assert body["aggregation"] == "AGGREGATION_MAX" and len(body["sentences"]) == 3
    raw8 = COMPLAINT.encode()
    for sentence in body["sentences"]:
        span = sentence["span"]
        assert COMPLAINT[span["start"] : span["end"]] == sentence["text"]
        assert raw8[span["utf8Start"] : span["utf8End"]].decode() == sentence["text"]
        assert 0.0 <= sentence["intensity"] <= 1.0
    status, body, _ = await post(http, "/v1/analyze", {"text": "Ok. " * 129})
    assert status == 400 and body["error"]["message"] == "text: has 129 sentences; the limit is 128"
