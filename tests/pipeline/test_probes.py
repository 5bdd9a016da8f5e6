"""Frozen-encoder probes for poems (train.probes): a small real nested cross-validation."""

import json

import numpy as np
import pytest

from emotionaware.datasets import PERC_LABELS


def test_a_small_nested_probe_run_records_its_choices_per_outer_fold(tmp_path, data_dir):
    from train.probes import RECORD, run

    path = run(data_dir, tmp_path, encoders=("base",), grid=(0.1, 1.0), limit=90)
    assert path == tmp_path / "poems" / "experiments" / f"{RECORD}.json"
    record = json.loads(path.read_text())
    result = record["crossval"]
    assert len(result["per_fold"]) == 3  # the small run's outer folds
    for fold in result["per_fold"]:
        assert fold["encoder"] == "base" and fold["C"] in (0.1, 1.0)
        assert 0 <= fold["inner_macro_f1"] <= 1 and 0 <= fold["outer_macro_f1"] <= 1
    assert result["mean_fold_macro_f1"] == pytest.approx(
        np.mean([f["outer_macro_f1"] for f in result["per_fold"]]), abs=1e-4
    )
    assert record["encoders"] == {"base": "base package"} and "CPUs" in record["machine"]


def test_a_probe_scores_like_the_gateway_aggregates_windows():
    """Held-out scores are per poem, each a probability distribution over the nine classes."""
    from train.probes import Embedded, fit_and_score
    from train.windows import Windows

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(PERC_LABELS)), 4)  # 36 poems
    owner = np.concatenate([np.arange(36), np.arange(0, 36, 3)])  # every third poem has 2 windows
    centres = rng.normal(size=(len(PERC_LABELS), 8)) * 3
    x = centres[labels[owner]] + rng.normal(size=(len(owner), 8))
    emb = Embedded({"e": x}, Windows([], owner, np.full(len(owner), 10), 0), labels, np.arange(36))
    held = np.arange(0, 36, 4)
    train = np.setdiff1d(np.arange(36), held)
    scores = fit_and_score(emb, "e", 1.0, train, held, len(PERC_LABELS))
    assert scores.shape == (len(held), len(PERC_LABELS))
    assert np.allclose(scores.sum(axis=1), 1.0)
    assert (scores.argmax(axis=1) == labels[held]).mean() > 0.8  # separable clusters are found
