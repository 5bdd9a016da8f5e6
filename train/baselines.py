"""TF-IDF + logistic regression baselines, scored by the same report code as the models.

Every model card compares the fine-tuned encoder with this baseline on the same split (or the
same cross-validation folds), so a gain is measured, not assumed. The recipe is fixed and not
tuned per dataset: word 1-2 grams seen in at least two training texts, sublinear term
frequency, L2-regularised logistic regression (C=1) with balanced class weights.
Multi-label data gets one binary regression per label, with per-label thresholds tuned on dev
like the model's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline

RECIPE = "TF-IDF (word 1-2 grams, min_df 2, sublinear tf) + logistic regression (C=1, balanced class weights)"


def _pipeline(multi_label: bool) -> Pipeline:
    regression = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        OneVsRestClassifier(regression) if multi_label else regression,
    )


def fit_single_label(texts: Sequence[str], targets: np.ndarray, num_labels: int) -> Pipeline:
    """A multinomial regression over the label indices in ``targets``."""
    model = _pipeline(multi_label=False).fit(list(texts), targets)
    if len(model.classes_) != num_labels:
        # predict_proba columns follow the classes seen in training; a missing class would
        # silently shift every later column.
        raise ValueError(f"baseline saw {len(model.classes_)} of {num_labels} classes in its training split")
    return model


def fit_multi_label(texts: Sequence[str], targets: np.ndarray) -> Pipeline:
    """One binary regression per column of the 0/1 ``targets`` matrix."""
    return _pipeline(multi_label=True).fit(list(texts), targets)


def probabilities(model: Pipeline, texts: Sequence[str]) -> np.ndarray:
    """Per-class (single-label) or per-label (multi-label) probabilities, one row per text."""
    return model.predict_proba(list(texts))
