"""Checks run by every export: each ONNX graph against its reference, on real text.

- fp32 ONNX (after ONNX Runtime's fusions) vs PyTorch: max absolute logit difference <= 1e-4.
- fp16 vs fp32 (run on the CPU here): predicted-label agreement >= 99%.
- The served CPU graph is batch-independent: each sample text scored alone and inside a
  padded batch with other texts gets the same scores (max difference <= 1e-5).
- Where the artifact records what its served graph scores (``serving.json``, written by
  ``make eval``): the served graph's dev headline metric at the committed thresholds is
  within 0.003 of the record, and thresholds tuned again on dev would be the committed ones
  (max difference <= 1e-3). Nothing is re-derived: the export verifies, or fails.

"Predicted-label agreement" is, for multi-label models, the share of (text, label) decisions
that agree at the model's thresholds, and for single-label models the share of texts with the
same top label. The share of texts whose whole predicted set agrees is reported too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from emotionaware.artifact import THRESHOLD_TOLERANCE, ProblemType, ServingRecord
from emotionaware.context import format_context
from emotionaware.datasets import (
    DEFAULT_DATA_DIR,
    load_goemotions,
    load_meld,
    load_perc,
    multi_hot,
    perc_folds,
)
from emotionaware.scores import to_scores
from emotionaware.tokenization import TextTokenizer
from export.onnx_export import onnx_logits, session
from export.source import ExportSource
from train.metrics import macro_f1, tune_thresholds, weighted_f1
from train.predict import predict_logits

log = logging.getLogger(__name__)

FP32_MAX_ABS_DIFF = 1e-4
MIN_AGREEMENT = 0.99
# Largest score difference between a text alone and the same text in a padded batch. fp32
# kernels sum padded positions in another order, which moves scores by about 1e-7.
MAX_BATCH_DEVIATION = 1e-5
# The served graph's dev headline metric may differ from the committed record by this much,
# and re-tuned thresholds from the committed ones by THRESHOLD_TOLERANCE (emotionaware.artifact;
# a graph whose scores move more is not the one that was recorded).
MAX_DEV_METRIC_DIFF = 0.003
BATCH_CHECK_TEXTS = 64


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    at_most: bool  # True: value <= limit passes; False: value >= limit passes

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit


@dataclass
class ParityReport:
    texts: int
    checks: list[Check] = field(default_factory=list)
    info: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "texts": self.texts,
            "ok": self.ok,
            "checks": [{**asdict(c), "passed": c.passed} for c in self.checks],
            "info": self.info,
        }

    def table(self) -> str:
        lines = [f"parity on {self.texts} real dev texts:"]
        for c in self.checks:
            op = "<=" if c.at_most else ">="
            lines.append(f"  {'ok  ' if c.passed else 'FAIL'} {c.name:<42} {c.value:.6g} {op} {c.limit:g}")
        lines += [f"       {k:<42} {v:.6g}" for k, v in self.info.items()]
        return "\n".join(lines)


def decisions(logits: np.ndarray, problem_type: ProblemType, thresholds: np.ndarray) -> np.ndarray:
    scores = to_scores(logits, problem_type)
    if problem_type is ProblemType.MULTI_LABEL:
        return scores >= thresholds
    return np.eye(scores.shape[1], dtype=bool)[scores.argmax(axis=1)]


def agreement(a: np.ndarray, b: np.ndarray, problem_type: ProblemType) -> tuple[float, float]:
    """(label agreement as defined above, whole-set agreement)."""
    sets = float((a == b).all(axis=1).mean())
    labels = float((a == b).mean()) if problem_type is ProblemType.MULTI_LABEL else sets
    return labels, sets


@dataclass(frozen=True)
class LabelledSplit:
    texts: list[str]
    targets: np.ndarray  # multi-hot (n, labels); one-hot for single-label data
    contexts: list[str] | None = None  # conversation context segment per text, when the model reads one


@dataclass(frozen=True)
class Headline:
    """A model's headline metric and the labelled splits it is measured on."""

    name: str
    dev: LabelledSplit
    test: LabelledSplit
    score: Callable[[np.ndarray, np.ndarray], float]  # (targets, decisions) -> metric


def goemotions_headline(data_dir: Path) -> Headline:
    data = load_goemotions(data_dir)

    def split(examples: list) -> LabelledSplit:
        return LabelledSplit([e.text for e in examples], multi_hot(examples, len(data.labels)))

    return Headline("macro-F1", split(data.dev), split(data.test), macro_f1)


def meld_headline(data_dir: Path, context_turns: int) -> Headline:
    data = load_meld(data_dir)

    def split(examples: list) -> LabelledSplit:
        targets = np.eye(len(data.labels), dtype=int)[[e.label for e in examples]]
        contexts = [format_context(e.previous, e.speaker, context_turns) for e in examples]
        return LabelledSplit([e.text for e in examples], targets, contexts)

    return Headline("weighted-F1", split(data.dev), split(data.test), weighted_f1)


def perc_headline(data_dir: Path) -> Headline:
    """PERC has no dev/test split: both are the poems held out from the served (fold 1) model.

    Poems are scored on their first window here (the parity check compares graphs on one
    sequence per text); the model card reports the chunked scores.
    """
    data = load_perc(data_dir)
    held_out = [data.poems[i] for i in perc_folds(data.poems)[0][1]]
    split = LabelledSplit(
        [p.text for p in held_out], np.eye(len(data.labels), dtype=int)[[p.label for p in held_out]]
    )
    return Headline("macro-F1 (first window)", split, split, macro_f1)


HEADLINES: dict[str, Callable[[Path, int], Headline]] = {
    "goemotions": lambda data_dir, _turns: goemotions_headline(data_dir),
    "meld": meld_headline,
    "perc": lambda data_dir, _turns: perc_headline(data_dir),
}


def sample_texts(data_dir: Path, count: int) -> list[str]:
    """Real texts of varied length: every k-th GoEmotions dev text by length.

    Parity needs real token sequences, not labels, so any model is checked on these.
    """
    dev = sorted((e.text for e in load_goemotions(data_dir).dev), key=len)
    step = max(1, len(dev) // count)
    return dev[::step][:count]


@dataclass(frozen=True)
class ParityResult:
    report: ParityReport
    # Headline metric of the served graph at the committed thresholds, as measured here.
    dev: float | None = None
    test: float | None = None
    headline: str = ""


def batch_deviation(sess, token_ids: list[list[int]], pad_id: int, problem_type: ProblemType) -> float:
    """Largest score difference between each text alone and inside one padded batch of all of them."""
    together = to_scores(onnx_logits(sess, token_ids, pad_id, batch_size=len(token_ids)), problem_type)
    alone = to_scores(onnx_logits(sess, token_ids, pad_id, batch_size=1), problem_type)
    return float(np.abs(together - alone).max())


def graph_checks(
    source: ExportSource, sessions: dict, served: str, token_ids: list[list[int]], report: ParityReport
) -> None:
    """fp32 against PyTorch, fp16 against fp32, and the served graph alone against batched."""
    thresholds = np.asarray(source.thresholds)
    reference = predict_logits(source.model, token_ids, source.pad_token_id, input_names=source.input_names)
    logits = {variant: onnx_logits(s, token_ids, source.pad_token_id) for variant, s in sessions.items()}
    report.checks.append(
        Check(
            "fp32 ONNX vs PyTorch: max |logit diff|",
            float(np.abs(logits["fp32"] - reference).max()),
            FP32_MAX_ABS_DIFF,
            at_most=True,
        ),
    )
    fp32_decisions = decisions(logits["fp32"], source.problem_type, thresholds)
    if "fp16" in logits:
        ours = decisions(logits["fp16"], source.problem_type, thresholds)
        labels, sets = agreement(ours, fp32_decisions, source.problem_type)
        report.checks.append(Check("fp16 vs fp32: predicted-label agreement", labels, MIN_AGREEMENT, False))
        report.info["fp16 vs fp32: whole predicted set agreement"] = sets
        report.info["fp16 vs fp32: max |logit diff|"] = float(np.abs(logits["fp16"] - logits["fp32"]).max())
    report.checks.append(
        Check(
            f"served {served}: max |score diff| alone vs batched",
            batch_deviation(
                sessions[served], token_ids[:: max(1, len(token_ids) // BATCH_CHECK_TEXTS)][:BATCH_CHECK_TEXTS],
                source.pad_token_id, source.problem_type,
            ),
            MAX_BATCH_DEVIATION,
            at_most=True,
        )
    )  # fmt: skip


def record_checks(
    source: ExportSource, served: str, headline: Headline, dev: float, dev_logits: np.ndarray,
    record: ServingRecord, report: ParityReport,
) -> None:  # fmt: skip
    """The served graph's dev metric and re-tuned thresholds against the committed record."""
    report.checks.append(
        Check(
            f"served {served}: dev {headline.name} vs committed {record.dev:.4f}: |diff|",
            abs(dev - record.dev), MAX_DEV_METRIC_DIFF, at_most=True,
        )
    )  # fmt: skip
    if source.problem_type is ProblemType.MULTI_LABEL:
        tuned = tune_thresholds(to_scores(dev_logits, source.problem_type), headline.dev.targets)
        report.checks.append(
            Check(
                "dev-tuned thresholds vs committed: max |diff|",
                float(np.abs(tuned - np.asarray(source.thresholds)).max()), THRESHOLD_TOLERANCE, at_most=True,
            )
        )  # fmt: skip


def check_parity(
    source: ExportSource,
    graphs: dict[str, Path],
    served: str,
    data_dir: Path = DEFAULT_DATA_DIR,
    count: int = 512,
    record: ServingRecord | None = None,
    measure_test: bool = False,
) -> ParityResult:
    """Run every check for the graphs in ``graphs`` (keys fp32, fp16) and the served one.

    With ``record`` (the artifact's ``serving.json``) the served graph's dev metric and
    thresholds are verified against it; ``measure_test`` also scores the test split (what
    ``make eval`` records; the export itself needs only dev).
    """
    tokenizer = TextTokenizer(source.tokenizer_json, source.max_length)

    def encode(texts: list[str], contexts: list[str] | None = None) -> list[list[int]]:
        pairs = zip(texts, contexts or [""] * len(texts), strict=True)
        return [tokenizer.encode(t, c).input_ids.tolist() for t, c in pairs]

    token_ids = encode(sample_texts(data_dir, count))
    report = ParityReport(texts=len(token_ids))
    sessions = {variant: session(path) for variant, path in graphs.items()}
    graph_checks(source, sessions, served, token_ids, report)

    headline = (
        HEADLINES[source.dataset](data_dir, source.context_turns) if source.dataset in HEADLINES else None
    )
    if headline is None:
        return ParityResult(report)
    thresholds = np.asarray(source.thresholds)

    def score(split: LabelledSplit) -> tuple[float, np.ndarray]:
        logits = onnx_logits(sessions[served], encode(split.texts, split.contexts), source.pad_token_id)
        return headline.score(split.targets, decisions(logits, source.problem_type, thresholds)), logits

    dev, dev_logits = score(headline.dev)
    report.info[f"served {served}: dev {headline.name}"] = dev
    test = None
    if measure_test:
        test, _ = score(headline.test)
        report.info[f"served {served}: test {headline.name}"] = test
    if record is not None:
        record_checks(source, served, headline, dev, dev_logits, record, report)
    return ParityResult(report, dev, test, headline.name)
