"""Transfer check: the GoEmotions model's Ekman view on MELD utterances (TV dialogue, not Reddit).

MELD's labels are the Ekman view's seven labels, so the served Ekman view can be scored on
them as it is: each utterance alone (the GoEmotions model reads no context), its top Ekman
label against MELD's gold label. Reported: accuracy, weighted and macro F1; how often the top
label is neutral (overall, and on the utterances MELD labels with an emotion); how often the
predicted set (labels over their dev-tuned thresholds) is empty.

Also measured, not served: a neutral margin, the Ekman label chosen as the best emotion unless
neutral's score beats it by more than ``m``. ``m`` is chosen on MELD dev (by weighted F1, which
follows MELD's 48% of neutral utterances, and by macro F1, which weighs the emotions equally)
and reported on MELD test; with the dev-fitted temperature too when it is not 1.
The conversation model's test figures (trained on MELD, with context) are the reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score

from emotionaware.datasets import ConversationExample
from emotionaware.taxonomy import EKMAN_LABELS, EKMAN_MAPPING, group_indices
from train.calibration import logits_of, sigmoid
from train.metrics import project

# Margins searched for the neutral rule (score differences).
MARGINS = np.round(np.arange(-0.3, 0.6001, 0.02), 2)


def ekman_scores(scores: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Coarse Ekman scores (highest member score) in EKMAN_LABELS order, as the gateway projects."""
    groups = group_indices(labels, EKMAN_MAPPING)
    return project(scores, {name: groups[name] for name in EKMAN_LABELS})


def with_margin(coarse: np.ndarray, margin: float) -> np.ndarray:
    """Top Ekman label, but neutral only when it beats the best emotion by more than ``margin``."""
    neutral = EKMAN_LABELS.index("neutral")
    emotions = coarse.copy()
    emotions[:, neutral] = -np.inf
    best_emotion = emotions.argmax(axis=1)
    rows = np.arange(len(coarse))
    keep_neutral = coarse[:, neutral] > coarse[rows, best_emotion] + margin
    return np.where(keep_neutral, neutral, best_emotion)


def _figures(predicted: np.ndarray, gold: np.ndarray) -> dict:
    neutral = EKMAN_LABELS.index("neutral")
    classes = list(range(len(EKMAN_LABELS)))
    emotional = gold != neutral
    return {
        "accuracy": float((predicted == gold).mean()),
        "weighted_f1": float(f1_score(gold, predicted, labels=classes, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(gold, predicted, labels=classes, average="macro", zero_division=0)),
        "top_neutral": float((predicted == neutral).mean()),
        "top_neutral_when_gold_emotional": float((predicted[emotional] == neutral).mean()),
    }


def meld_transfer(
    score_texts,
    labels: Sequence[str],
    thresholds: np.ndarray,
    temperature: float,
    dev: list[ConversationExample],
    test: list[ConversationExample],
) -> dict:
    """The transfer figures; ``score_texts(texts)`` returns the model's sigmoid scores."""
    splits = {}
    for name, examples in (("dev", dev), ("test", test)):
        scores = score_texts([e.text for e in examples])
        splits[name] = (scores, np.array([e.label for e in examples]))
    test_scores, test_gold = splits["test"]
    neutral = EKMAN_LABELS.index("neutral")
    report = {
        "examples": len(test_gold),
        "gold_neutral": float((test_gold == neutral).mean()),
        "served": _figures(ekman_scores(test_scores, labels).argmax(axis=1), test_gold)
        | {"empty_predicted_set": float(((test_scores >= thresholds).sum(axis=1) == 0).mean())},
    }
    rules = [("margin", 1.0, "weighted"), ("margin_macro", 1.0, "macro")]
    if temperature != 1.0:  # T = 1 leaves the scores as served: the same rule again
        rules.append(("margin_with_temperature", temperature, "weighted"))
    for key, t, average in rules:

        def coarse(scores: np.ndarray, t: float = t) -> np.ndarray:
            return ekman_scores(sigmoid(logits_of(scores) / t), labels)

        dev_coarse, dev_gold = coarse(splits["dev"][0]), splits["dev"][1]
        dev_f1 = [
            f1_score(dev_gold, with_margin(dev_coarse, m), average=average, zero_division=0) for m in MARGINS
        ]
        best = float(MARGINS[int(np.argmax(dev_f1))])
        report[key] = {
            "temperature": t,
            "margin": best,
            "chosen_by": f"dev {average} F1",
            "dev_f1": float(max(dev_f1)),
        } | _figures(with_margin(coarse(test_scores), best), test_gold)
    return report
