"""Loss weights of the training recipes (train.fitting), computed from the label counts alone."""

import dataclasses

import pytest
import torch

from emotionaware.datasets import LabelledText
from train.config import TrainConfig
from train.fitting import class_weights, positive_weights

pytestmark = pytest.mark.unit


def with_params(name: str, **params) -> TrainConfig:
    config = TrainConfig.for_model(name)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **params))


def test_single_label_class_weights_follow_the_balanced_ratio_to_a_power():
    labels = ("a", "b", "c")
    # 6 of class a, 3 of b, 1 of c: balanced weights n / (classes * count) = 10/18, 10/9, 10/3.
    examples = [LabelledText("t", label, f"x/{i}") for i, label in enumerate([0] * 6 + [1] * 3 + [2])]
    assert class_weights(with_params("conversation", class_weight_power=0.0), labels, examples) is None
    full = class_weights(with_params("conversation", class_weight_power=1.0), labels, examples)
    assert torch.allclose(full, torch.tensor([10 / 18, 10 / 9, 10 / 3]))
    half = class_weights(with_params("conversation", class_weight_power=0.5), labels, examples)
    assert torch.allclose(half, full.sqrt())
    # A class with no example gets the weight of one (never a division by zero).
    absent = class_weights(
        with_params("conversation", class_weight_power=1.0), ("a", "b", "c", "d"), examples
    )
    assert torch.isfinite(absent).all() and absent[3] == pytest.approx(10 / 4)


def test_the_committed_weighted_recipe_weighs_fear_above_neutral(data_dir):
    from emotionaware.datasets import load_meld

    meld = load_meld(data_dir)
    weights = class_weights(TrainConfig.for_model("conversation-r2w"), meld.labels, meld.train)
    by_label = dict(zip(meld.labels, weights.tolist(), strict=True))
    assert by_label["fear"] > 2 > 1 > by_label["neutral"] > 0.5


def test_multi_label_positive_weights_are_capped_and_never_below_one():
    # Label 0 positive in 1 of 100 texts (ratio 99), label 1 in 50 of 100 (ratio 1), label 2 in 90.
    targets = torch.zeros(100, 3)
    targets[:1, 0] = 1
    targets[:50, 1] = 1
    targets[:90, 2] = 1
    assert positive_weights(with_params("goemotions", positive_weight_power=0.0), targets) is None
    weights = positive_weights(
        with_params("goemotions", positive_weight_power=0.5, positive_weight_cap=5.0), targets
    )
    assert weights.tolist() == pytest.approx([5.0, 1.0, 1.0])  # sqrt(99) capped at 5; 1/9 raised to 1
