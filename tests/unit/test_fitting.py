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


def test_prior_correction_turns_positive_weighted_scores_back_into_probabilities():
    from types import SimpleNamespace

    from torch import nn

    from train.fitting import correct_priors

    # Two labels with base rates 0.05 and 0.3; a bias-only head is trained to the loss optimum
    # with positives weighted as the recipe weights them.
    rates = torch.tensor([0.05, 0.3])
    targets = (torch.arange(1000).unsqueeze(1) < (rates * 1000).unsqueeze(0)).float()
    weights = positive_weights(with_params("goemotions", positive_weight_power=0.5), targets)
    head = nn.Linear(1, 2)
    nn.init.zeros_(head.weight)
    loss = nn.BCEWithLogitsLoss(pos_weight=weights)
    optimizer = torch.optim.LBFGS(head.parameters(), max_iter=200)

    def closure():
        optimizer.zero_grad()
        value = loss(head(torch.zeros(len(targets), 1)), targets)
        value.backward()
        return value

    optimizer.step(closure)
    overstated = torch.sigmoid(head.bias.detach())
    assert torch.all(overstated > rates + 0.05)  # weighted positives inflate the scores
    correct_priors(SimpleNamespace(classifier=head), weights.log())
    assert torch.allclose(torch.sigmoid(head.bias.detach()), rates, atol=1e-3)


def test_a_pinned_donor_is_read_from_its_commit_not_the_working_tree(tmp_path):
    from train.fitting import committed_artifact, initial_model
    from train.model import load_artifact

    config = TrainConfig.for_model("conversation")
    pinned = config.train.init_from_commit
    assert config.train.init_from == "goemotions" and pinned
    donor, manifest = load_artifact(committed_artifact("goemotions", pinned, tmp_path))
    assert manifest.name == "goemotions" and manifest.base == config.base
    # The recipe's starting encoder is that commit's, whatever models/goemotions holds now.
    model = initial_model(config, 7)
    start, expected = model.encoder.state_dict(), donor.encoder.state_dict()
    assert all(torch.equal(start[k], expected[k]) for k in expected)
    with pytest.raises(SystemExit, match="is not in commit 'no-such-commit'"):
        committed_artifact("goemotions", "no-such-commit", tmp_path)
