"""Policies: rules declared in the routing file that flag texts, sentences and conversations.

::

    [policies.abuse]                       # a label rule: flags a text or a sentence
    when = "anger + disgust >= 0.8"        # the sum of these labels' scores, compared with a bound
    view = "native"                        # whose labels the terms name (default: the model's own)
    scope = ["text", "sentence"]           # "text": every response's text (an Analyze document
                                           # too); "sentence": each Analyze sentence
    models = ["goemotions"]                # default: every served model offering the view's labels

    [policies.escalate]                    # a conversation rule: ClassifyStream only
    when = "negative_average >= 0.6"       # a speaker's negative moving average (last N turns)
    turns = 3                              # for this many of the speaker's turns in a row
    speaker = "customer"                   # default: every speaker

A label rule's terms are labels of its view, or ``intensity`` alone; operators ``>=``, ``>``,
``<=``, ``<``. A conversation rule flags the turn at which the condition has held for ``turns``
consecutive turns of one speaker, once; it flags again after the condition has stopped holding
and held that long again. Rules are validated when the routing file loads (a message names
the rule and the key; a bad file keeps the previous rules) and hot-reloaded with the rest.
Matches are counted in ``emotionaware_policy_matches_total`` by rule and scope; text is never
logged.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from emotionaware.artifact import ProblemType
from emotionaware.sentences import Span
from gateway.metrics import POLICY_MATCHES
from gateway.specs import ModelSpec
from gateway.types import Flag, View
from gateway.views import ViewMap

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w]*(?:\s*\+\s*[A-Za-z_][\w]*)*)\s*(>=|>|<=|<)\s*([-+0-9.eE]+)\s*$")
_LABEL_KEYS = {"when", "view", "scope", "models"}
_CONVERSATION_KEYS = {"when", "turns", "speaker", "models"}
SCOPES = ("text", "sentence")
INTENSITY = "intensity"
NEGATIVE_AVERAGE = "negative_average"


@dataclass(frozen=True)
class LabelRule:
    name: str
    terms: tuple[str, ...]  # labels of ``view``, or ("intensity",)
    op: str
    bound: float
    view: View
    scopes: frozenset[str]
    models: frozenset[str] | None  # None: every model offering the terms

    def applies(self, spec: ModelSpec) -> bool:
        if self.models is not None and spec.name not in self.models:
            return False
        if self.terms == (INTENSITY,):
            return "neutral" in spec.labels
        view = spec.views.get(self.view)
        return view is not None and set(self.terms) <= set(view.labels)

    def value(self, spec: ModelSpec, native: np.ndarray, intensity: float | None) -> float | None:
        if self.terms == (INTENSITY,):
            return intensity
        view = spec.views[self.view]
        scores = view_scores(view, native, spec.problem_type)
        return float(sum(scores[view.labels.index(t)] for t in self.terms))


@dataclass(frozen=True)
class ConversationRule:
    name: str
    op: str
    bound: float
    turns: int
    speaker: str  # "": every speaker
    models: frozenset[str] | None


@dataclass(frozen=True)
class Policies:
    """The routing file's rules (empty when it declares none)."""

    label_rules: tuple[LabelRule, ...] = ()
    conversation_rules: tuple[ConversationRule, ...] = ()

    def flags(
        self,
        spec: ModelSpec,
        native: np.ndarray,
        intensity: float | None,
        scope: str = "text",
        sentence: int | None = None,
        span: Span | None = None,
    ) -> tuple[Flag, ...]:
        """The label rules of ``scope`` that match scores ``native`` (the model's own labels)."""
        out = []
        for rule in self.label_rules:
            if scope not in rule.scopes or not rule.applies(spec):
                continue
            value = rule.value(spec, native, intensity)
            if value is not None and OPERATORS[rule.op](value, rule.bound):
                out.append(Flag(rule.name, scope, value, sentence, span))
                POLICY_MATCHES.labels(rule.name, scope).inc()
        return tuple(out)


def view_scores(view: ViewMap, native: np.ndarray, problem_type: ProblemType) -> np.ndarray:
    """A view's scores from the model's own (as gateway.views.project computes them)."""
    if view.is_identity:
        return native
    if problem_type is ProblemType.MULTI_LABEL:
        return np.array([native[list(m)].max() for m in view.members])
    return np.array([native[list(m)].sum() for m in view.members])


def negative_score(spec: ModelSpec, native: np.ndarray) -> float | None:
    """A turn's negative emotion: its ``negative`` score in the sentiment view (None when the
    model offers no sentiment view)."""
    view = spec.views.get(View.SENTIMENT)
    if view is None:
        return None
    return float(view_scores(view, native, spec.problem_type)[view.labels.index("negative")])


def _condition(where: str, text: object) -> tuple[tuple[str, ...], str, float]:
    if not isinstance(text, str) or not (match := _CONDITION.match(text)):
        raise ValueError(f"{where}: must read like 'anger + disgust >= 0.8' (labels, an operator, a number)")
    terms = tuple(t.strip() for t in match[1].split("+"))
    try:
        bound = float(match[3])
    except ValueError:
        raise ValueError(f"{where}: {match[3]!r} is not a number") from None
    if not math.isfinite(bound):
        raise ValueError(f"{where}: the bound must be a finite number")
    if len(set(terms)) != len(terms):
        raise ValueError(f"{where}: a label is named twice")
    return terms, match[2], bound


def _models(where: str, raw: object, served: Mapping[str, ModelSpec]) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
        raise ValueError(f"{where}: must be a non-empty list of model names")
    unknown = sorted(set(raw) - set(served))
    if unknown:
        raise ValueError(f"{where}: {', '.join(unknown)} not served; served: {', '.join(sorted(served))}")
    return frozenset(raw)


def _label_rule(name: str, entry: Mapping, served: Mapping[str, ModelSpec]) -> LabelRule:
    where = f"policies.{name}"
    terms, op, bound = _condition(f"{where}.when", entry.get("when"))
    raw_view = entry.get("view", "native")
    try:
        view = View(raw_view)
    except ValueError:
        raise ValueError(
            f"{where}.view: {raw_view!r} is not a view; views: {', '.join(v.value for v in View)}"
        ) from None
    scope = entry.get("scope", ["text"])
    scope = [scope] if isinstance(scope, str) else scope
    if not isinstance(scope, list) or not scope or not set(scope) <= set(SCOPES):
        raise ValueError(f"{where}.scope: must be one or more of {', '.join(SCOPES)}; got {scope!r}")
    if INTENSITY in terms and len(terms) > 1:
        raise ValueError(f"{where}.when: intensity is compared alone, not summed with labels")
    models = _models(f"{where}.models", entry.get("models"), served)
    rule = LabelRule(name, terms, op, bound, view, frozenset(scope), models)
    candidates = [served[m] for m in sorted(models)] if models is not None else list(served.values())
    for spec in candidates:
        if models is not None and not rule.applies(spec):
            offered = spec.views.get(view)
            labels = (
                ", ".join(offered.labels) if offered else f"none (the model does not offer view {view.value})"
            )
            missing = [t for t in terms if offered is None or t not in offered.labels]
            raise ValueError(
                f"{where}.when: model {spec.name} has no {', '.join(missing)} in view {view.value}; labels: {labels}"
            )
    if not any(rule.applies(spec) for spec in candidates):
        raise ValueError(
            f"{where}.when: no served model has the labels {', '.join(terms)} in view {view.value}"
        )
    return rule


def _conversation_rule(name: str, entry: Mapping, served: Mapping[str, ModelSpec]) -> ConversationRule:
    where = f"policies.{name}"
    terms, op, bound = _condition(f"{where}.when", entry.get("when"))
    if terms != (NEGATIVE_AVERAGE,):
        raise ValueError(
            f"{where}.when: a conversation rule compares {NEGATIVE_AVERAGE}; got {' + '.join(terms)}"
        )
    turns = entry.get("turns", 1)
    if not isinstance(turns, int) or isinstance(turns, bool) or not 1 <= turns <= 1000:
        raise ValueError(f"{where}.turns: must be a whole number from 1 to 1000; got {turns!r}")
    speaker = entry.get("speaker", "")
    if not isinstance(speaker, str):
        raise ValueError(f"{where}.speaker: must be a string; got {speaker!r}")
    models = _models(f"{where}.models", entry.get("models"), served)
    for spec in [served[m] for m in sorted(models)] if models is not None else list(served.values()):
        if models is not None and View.SENTIMENT not in spec.views:
            raise ValueError(f"{where}.models: model {spec.name} has no sentiment view (no negative score)")
    return ConversationRule(name, op, bound, turns, speaker, models)


def parse_policies(raw: object, served: Mapping[str, ModelSpec]) -> Policies:
    """The ``[policies]`` section, checked against the served models (their routed versions)."""
    if raw is None:
        return Policies()
    if not isinstance(raw, Mapping):
        raise ValueError("policies: must be a table of rules ([policies.NAME])")
    label_rules, conversation_rules = [], []
    for name, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"policies.{name}: must be a table")
        when = entry.get("when")
        conversation = isinstance(when, str) and when.strip().startswith(NEGATIVE_AVERAGE)
        allowed = _CONVERSATION_KEYS if conversation else _LABEL_KEYS
        unknown = sorted(set(entry) - allowed)
        if unknown:
            kind = "conversation" if conversation else "label"
            raise ValueError(
                f"policies.{name}: unknown keys {unknown} for a {kind} rule; keys: {sorted(allowed)}"
            )
        if conversation:
            conversation_rules.append(_conversation_rule(name, entry, served))
        else:
            label_rules.append(_label_rule(name, entry, served))
    return Policies(tuple(label_rules), tuple(conversation_rules))
