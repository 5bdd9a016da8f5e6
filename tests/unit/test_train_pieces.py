"""Training-side pieces that need no model: the PERC loader and folds, windows, baselines, plots."""

import numpy as np
import pytest

from emotionaware.artifact import ProblemType
from emotionaware.datasets import PERC_LABELS, load_perc, perc_folds
from gateway.settings import Settings
from train import plots
from train.baselines import fit_single_label, probabilities
from train.windows import MAX_WINDOWS, OVERLAP_TOKENS, Windows

pytestmark = pytest.mark.unit


def test_perc_loader_handles_the_files_quirks(data_dir):
    perc = load_perc(data_dir)
    # 726 rows minus the stray "hope" row; multi-line quoted cells must not split poems.
    assert len(perc.poems) == 725 and perc.labels == PERC_LABELS
    assert not perc.poems[0].text.startswith("\ufeff")
    assert all("\n" not in p.text for p in perc.poems)  # normalised: newlines collapse
    counts = np.bincount([p.label for p in perc.poems], minlength=len(PERC_LABELS))
    assert counts.min() >= 16 and counts.sum() == 725


def test_perc_folds_are_stratified_and_keep_duplicate_poems_together(data_dir):
    poems = load_perc(data_dir).poems
    folds = perc_folds(poems)
    held = [i for _, h in folds for i in h]
    assert sorted(held) == list(range(len(poems)))  # every poem held out exactly once
    for train, held_out in folds:
        assert not {poems[i].text for i in train} & {poems[i].text for i in held_out}
        # Even the rarest class (16 poems) appears in every held-out fold.
        assert len({poems[i].label for i in held_out}) == len(PERC_LABELS)
    assert folds == perc_folds(poems)  # deterministic


def test_training_windows_are_the_gateways_defaults():
    settings = Settings()
    assert (settings.chunk_overlap_tokens, settings.max_chunks) == (OVERLAP_TOKENS, MAX_WINDOWS)


def test_window_aggregation_weights_softmax_by_tokens_and_takes_max_of_sigmoids():
    windows = Windows(
        ids=[[1], [2], [3]], owner=np.array([0, 0, 1]), content_tokens=np.array([3, 1, 5]), dropped=0
    )
    scores = np.array([[0.8, 0.2], [0.0, 1.0], [0.5, 0.5]])
    single = windows.aggregate(scores, 2, ProblemType.SINGLE_LABEL)
    np.testing.assert_allclose(single, [[0.6, 0.4], [0.5, 0.5]])
    multi = windows.aggregate(scores, 2, ProblemType.MULTI_LABEL)
    np.testing.assert_allclose(multi, [[0.8, 1.0], [0.5, 0.5]])


def test_baseline_refuses_a_training_split_missing_a_class():
    texts = ["happy days here", "so sad today", "happy happy joy", "sad sad tears"]
    with pytest.raises(ValueError, match="saw 2 of 3 classes"):
        fit_single_label(texts, np.array([0, 1, 0, 1]), 3)
    model = fit_single_label(texts, np.array([0, 1, 0, 1]), 2)
    probs = probabilities(model, ["happy joy", "sad tears"])
    assert probs.shape == (2, 2) and probs[0, 0] > 0.5 and probs[1, 1] > 0.5


def test_figures_are_written(tmp_path):
    per_label = {"joy": {"f1": 0.7, "support": 10}, "fear": {"f1": 0.2, "support": 3}}
    baseline = {"joy": {"f1": 0.5, "support": 10}, "fear": {"f1": 0.1, "support": 3}}
    paths = [
        plots.per_label_f1(tmp_path / "f1.png", per_label, baseline, "t"),
        plots.confusion(tmp_path / "cm.png", [[5, 1], [0, 3]], ["joy", "fear"], "t", "predicted"),
        plots.threshold_table(tmp_path / "th.png", [("joy", 0.4, 0.7, 0.6)], "t"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000
