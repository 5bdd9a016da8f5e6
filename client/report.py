"""``emotionaware-client report``: one self-contained HTML page from a results file.

emotionaware-client report results.jsonl                  # -> results.html beside it
emotionaware-client report results.csv -o week-12.html --title "Support inbox, week 12"

It reads what ``emotionaware-client analyze`` writes (``.jsonl``, ``.csv``, or ``.parquet``
when pyarrow is installed) and, when present, the run-facts file beside it
(``<results>.meta.json``). The page needs nothing but itself: inline CSS, charts drawn here as
inline SVG, no script, and a Content-Security-Policy that forbids every request. Every text
that comes from the file (texts, ids, speakers, labels, messages) is HTML-escaped. Only
aggregates and bounded samples reach the page, so 100,000 rows take a few seconds.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import html
import json
import math
import operator
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
TEXT_CHARS = 240  # texts are cut to this many characters on the page
EXAMPLES_PER_LABEL = 3
MAX_ERRORS_SHOWN = 20
MAX_GROUPS_SHOWN = 30  # speakers or conversations in each table
MAX_PERIODS = 400  # over time: the finest of hour/day/week/month with at most this many periods
OVER_TIME_LABELS = 6
SPARK_CELLS = 60
MAX_MATRIX_LABELS = 30
# Tableau 10: the most frequent labels get a colour each, used by every chart alike.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
OTHER_COLOR = "#c8ccd3"
NONE_COLOR = "#eef0f3"
ACCENT = "#4e79a7"


class ReportError(Exception):
    """The results file cannot be read (missing, unknown format, malformed)."""


@dataclass(slots=True)
class ResultRow:
    """One row of a results file, whatever its format."""

    row: int
    id: str | None
    timestamp: str | None
    speaker: str | None
    conversation: str | None
    text: str
    model: str
    model_version: str
    score_type: str
    predicted: list[str]
    scores: dict[str, float]
    token_count: int
    truncated: bool
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True)
class Example:
    label: str
    score: float
    row: int
    id: str | None
    speaker: str | None
    conversation: str | None
    text: str


@dataclass(frozen=True)
class GroupSummary:
    """One speaker or conversation."""

    name: str
    rows: int
    errors: int
    top: tuple[tuple[str, float], ...]  # (label, share of the group's classified rows), most first
    sequence: tuple[str, ...]  # the sparkline's cells: dominant label of each, in input order


@dataclass(frozen=True)
class ReportFacts:
    """What the page shows, as numbers (write_report returns it; the tests check it)."""

    results: str
    out: str
    title: str
    meta_used: bool
    input: str | None
    view: str | None
    model: str
    model_version: str
    models: dict[str, int]  # "model vVERSION" -> classified rows
    score_type: str  # "sigmoid", "softmax", "mixed" or "" (no classified row)
    multi_label: bool
    rows: int
    classified: int  # rows without an error
    errors: int
    errors_by_code: dict[str, int]
    truncated: int
    truncated_classified: int  # truncated rows without an error
    labels: tuple[str, ...]  # every label of the view, in the file's order
    counts: dict[str, int]  # rows predicting each label
    shares: dict[str, float]  # counts / classified
    mean_scores: dict[str, float]
    cooccurrence: dict[tuple[str, str], int]  # (a, b) with a before b in `labels`
    examples: dict[str, tuple[int, ...]]  # label -> row numbers of its top examples, best first
    timestamped: int
    bad_timestamps: int
    first_timestamp: str | None
    last_timestamp: str | None
    period: str | None  # "hour", "day", "week", "month", "year"; None without timestamps
    periods: int
    speakers: int
    conversations: int
    started: str | None
    finished: str | None
    notes: tuple[str, ...] = field(default=())

    def together(self, a: str, b: str) -> int:
        """Rows predicting both labels."""
        return self.cooccurrence.get((a, b), self.cooccurrence.get((b, a), 0))


# ----------------------------------------------------------------------------------------------
# Reading


def meta_path(results: Path) -> Path:
    return results.with_name(results.name + ".meta.json")


def read_results(path: Path) -> Iterator[ResultRow]:
    """The rows of a results file; the format by its extension."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ReportError(f"{path.name}: unknown results format (expected .jsonl, .csv or .parquet)")
    if not path.is_file():
        raise ReportError(f"{path}: no such file")
    if kind == "jsonl":
        return _read_jsonl(path)
    if kind == "csv":
        return _read_csv(path)
    return _read_parquet(path)


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def _as_int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return default


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _clean_scores(scores: Any) -> dict[str, float]:
    """JSON's scores as they are (string keys, numbers), less any null."""
    if not isinstance(scores, dict):
        return {}
    if None in scores.values():
        return {k: v for k, v in scores.items() if v is not None}
    return scores


def _read_jsonl(path: Path) -> Iterator[ResultRow]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ReportError(f"{path.name}, line {number}: not JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise ReportError(f"{path.name}, line {number}: not a JSON object")
            error = obj.get("error")
            if not isinstance(error, dict):
                error = {"code": str(error), "message": ""} if error else None
            scores = obj.get("scores") or {}
            predicted = obj.get("predicted") or []
            yield ResultRow(
                **_common_fields(obj, number - 1),
                predicted=[str(p) for p in predicted] if isinstance(predicted, list) else [],
                scores=_clean_scores(scores),
                error_code=(_opt_str(error.get("code")) or "ERROR") if error else None,
                error_message=str(error.get("message") or "") if error else None,
            )


def _common_fields(record: dict[str, Any], index: int) -> dict[str, Any]:
    """The fields every format writes the same way (all but predicted, scores and the error)."""
    return {
        "row": _as_int(record.get("row"), index),
        "id": _opt_str(record.get("id")),
        "timestamp": _opt_str(record.get("timestamp")),
        "speaker": _opt_str(record.get("speaker")),
        "conversation": _opt_str(record.get("conversation")),
        "text": str(record.get("text") or ""),
        "model": str(record.get("model") or ""),
        "model_version": str(record.get("model_version") or ""),
        "score_type": str(record.get("score_type") or ""),
        "token_count": _as_int(record.get("token_count")),
        "truncated": _as_bool(record.get("truncated")),
    }


def _from_flat(record: dict[str, Any], score_columns: list[tuple[str, str]], index: int) -> ResultRow:
    """A CSV or Parquet record (the same columns) as a row."""
    predicted = record.get("predicted")
    if isinstance(predicted, str):
        labels = [p for p in predicted.split(";") if p]
    elif predicted is None:
        labels = []
    else:
        labels = [str(p) for p in predicted]
    scores: dict[str, float] = {}
    for column, label in score_columns:
        value = record.get(column)
        if value is None or value == "":
            continue
        try:
            scores[label] = float(value)
        except (TypeError, ValueError):
            continue
    code = _opt_str(record.get("error_code"))
    message = _opt_str(record.get("error_message"))
    return ResultRow(
        **_common_fields(record, index),
        predicted=labels,
        scores=scores,
        error_code=code or ("ERROR" if message else None),
        error_message=(message or "") if (code or message) else None,
    )


def _score_columns(names: Sequence[str]) -> list[tuple[str, str]]:
    return [(name, name[len("score:") :]) for name in names if name.startswith("score:")]


def _read_csv(path: Path) -> Iterator[ResultRow]:
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))  # long texts in one cell
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        if reader.fieldnames is None:
            return
        if "text" not in reader.fieldnames:
            raise ReportError(f"{path.name}: no 'text' column in the header")
        columns = _score_columns(reader.fieldnames)
        for index, record in enumerate(reader):
            yield _from_flat(record, columns, index)


def _read_parquet(path: Path) -> Iterator[ResultRow]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ReportError(
            f"{path.name}: reading .parquet needs the pyarrow package (or write .jsonl or .csv)"
        ) from None
    parquet = pq.ParquetFile(path)
    columns = _score_columns(parquet.schema_arrow.names)
    index = 0
    for batch in parquet.iter_batches(batch_size=16384):
        for record in batch.to_pylist():
            yield _from_flat(record, columns, index)
            index += 1


def read_meta(results: Path) -> dict[str, Any] | None:
    path = meta_path(results)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


# ----------------------------------------------------------------------------------------------
# Time


def parse_time(value: str) -> tuple[datetime, bool, bool] | None:
    """(naive datetime, has a time of day, had an offset: converted to UTC) or None."""
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    aware = moment.tzinfo is not None
    if aware:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment, len(text) > 10, aware


def _bucket(moment: datetime, unit: str) -> datetime:
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = datetime(moment.year, moment.month, moment.day)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return datetime(moment.year, moment.month, 1)
    return datetime(moment.year, 1, 1)


def _next(start: datetime, unit: str) -> datetime:
    if unit == "hour":
        return start + timedelta(hours=1)
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "week":
        return start + timedelta(days=7)
    if unit == "month":
        return datetime(start.year + start.month // 12, start.month % 12 + 1, 1)
    return datetime(start.year + 1, 1, 1)


def _period_count(lo: datetime, hi: datetime, unit: str) -> int:
    a, b = _bucket(lo, unit), _bucket(hi, unit)
    if unit == "hour":
        return int((b - a) / timedelta(hours=1)) + 1
    if unit == "day":
        return (b - a).days + 1
    if unit == "week":
        return (b - a).days // 7 + 1
    if unit == "month":
        return (b.year - a.year) * 12 + b.month - a.month + 1
    return b.year - a.year + 1


def choose_period(lo: datetime, hi: datetime, has_time: bool) -> str:
    """Per hour when the span is under 3 days (and the file has times of day), else per day;
    weeks, months or years only when a finer unit would draw more than MAX_PERIODS periods."""
    if has_time and hi - lo < timedelta(days=3):
        return "hour"
    for unit in ("day", "week", "month"):
        if _period_count(lo, hi, unit) <= MAX_PERIODS:
            return unit
    return "year"


def _period_label(start: datetime, unit: str) -> str:
    if unit == "hour":
        return start.strftime("%Y-%m-%d %H:00")
    if unit in ("day", "week"):
        return start.strftime("%Y-%m-%d")
    if unit == "month":
        return start.strftime("%Y-%m")
    return start.strftime("%Y")


def _show_time(moment: datetime, has_time: bool) -> str:
    if not has_time:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    if not days:
        parts.append(f"{minutes} min")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------
# Aggregation (one pass; only counts and bounded samples are kept)


@dataclass
class _Group:
    rows: int = 0
    errors: int = 0
    classified: int = 0
    counts: Counter = field(default_factory=Counter)
    sequence: list[str] = field(default_factory=list)


class _Stats:
    def __init__(self) -> None:
        self.rows = 0
        self.classified = 0
        self.truncated = 0
        self.truncated_classified = 0
        self.errors_by_code: Counter[str] = Counter()
        self.error_rows: list[ResultRow] = []
        self.labels: dict[str, int] = {}  # label -> position, in first-seen order
        self.counts: Counter[str] = Counter()
        self.score_sums: dict[str, float] = {}
        self.score_ns: Counter[str] = Counter()
        self.vector_labels: tuple[str, ...] | None = None
        self.vector_sums: list[float] = []
        self.vector_rows = 0
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.multi = False
        self.score_types: Counter[str] = Counter()
        self.model_names: Counter[tuple[str, str]] = Counter()
        self.heaps: dict[str, list] = {}
        self.seq = 0
        self.times: list[tuple[datetime, list[str] | None]] = []  # predicted None: an error row
        self.has_time = False
        self.aware = False
        self.bad_timestamps = 0
        self.speakers: dict[str, _Group] = {}
        self.conversations: dict[str, _Group] = {}

    def add_labels(self, labels: Sequence[str]) -> None:
        for label in labels:
            if label not in self.labels:
                self.labels[label] = len(self.labels)

    def add(self, r: ResultRow) -> None:
        self.rows += 1
        if r.truncated:
            self.truncated += 1
        ok = r.error_code is None
        dominant = ""
        if ok:
            self.classified += 1
            self.truncated_classified += r.truncated
            self.score_types[r.score_type] += 1
            self.model_names[(r.model, r.model_version)] += 1
            labels = self.labels
            keys = tuple(r.scores)
            if keys == self.vector_labels:  # the common case: every row has the same labels in order
                self.vector_sums = list(map(operator.add, self.vector_sums, r.scores.values()))
                self.vector_rows += 1
            elif self.vector_labels is None and keys:
                self.add_labels(keys)
                self.vector_labels, self.vector_sums, self.vector_rows = keys, list(r.scores.values()), 1
            else:
                sums = self.score_sums
                for label, score in r.scores.items():
                    if label not in labels:
                        labels[label] = len(labels)
                    sums[label] = sums.get(label, 0.0) + score
                self.score_ns.update(keys)
            predicted = r.predicted
            if predicted:
                if len(predicted) > 1:
                    predicted = r.predicted = list(dict.fromkeys(predicted))
                counts = self.counts
                best = -1.0
                for label in predicted:
                    if label not in labels:
                        labels[label] = len(labels)
                    counts[label] += 1
                    score = r.scores.get(label, 0.0)
                    if score > best:
                        best, dominant = score, label
                    self._example(label, score, r)
                if len(predicted) > 1:
                    self.multi = True
                    ordered = sorted(predicted, key=labels.__getitem__)
                    for i, a in enumerate(ordered):
                        for b in ordered[i + 1 :]:
                            self.pairs[(a, b)] += 1
        else:
            self.errors_by_code[r.error_code or "ERROR"] += 1
            if len(self.error_rows) < MAX_ERRORS_SHOWN:
                self.error_rows.append(r)
        if r.timestamp is not None:
            parsed = parse_time(r.timestamp)
            if parsed is None:
                self.bad_timestamps += 1
            else:
                moment, has_time, aware = parsed
                self.has_time |= has_time
                self.aware |= aware
                self.times.append((moment, r.predicted if ok else None))
        for name, groups in ((r.speaker, self.speakers), (r.conversation, self.conversations)):
            if name is None:
                continue
            group = groups.get(name)
            if group is None:
                group = groups[name] = _Group()
            group.rows += 1
            if ok:
                group.classified += 1
                for label in r.predicted:
                    group.counts[label] += 1
                group.sequence.append(dominant)
            else:
                group.errors += 1

    def mean_scores(self) -> dict[str, float]:
        sums, ns = dict(self.score_sums), Counter(self.score_ns)
        for label, total in zip(self.vector_labels or (), self.vector_sums, strict=True):
            sums[label] = sums.get(label, 0.0) + total
            ns[label] += self.vector_rows
        return {label: sums.get(label, 0.0) / ns[label] if ns[label] else 0.0 for label in self.labels}

    def models(self) -> dict[str, int]:
        """'model vVERSION' -> classified rows."""
        out: Counter[str] = Counter()
        for (model, version), n in self.model_names.items():
            out[f"{model} v{version}" if version else model] += n
        return dict(out)

    def _example(self, label: str, score: float, r: ResultRow) -> None:
        heap = self.heaps.setdefault(label, [])
        key = (score, -r.row)
        if len(heap) < EXAMPLES_PER_LABEL:
            self.seq += 1
            heapq.heappush(heap, (key, self.seq, r))
        elif key > heap[0][0]:
            self.seq += 1
            heapq.heapreplace(heap, (key, self.seq, r))

    def examples(self) -> dict[str, list[Example]]:
        out = {}
        for label, heap in self.heaps.items():
            best = sorted(heap, key=lambda item: item[0], reverse=True)
            out[label] = [
                Example(label, key[0], r.row, r.id, r.speaker, r.conversation, r.text) for key, _, r in best
            ]
        return out


# ----------------------------------------------------------------------------------------------
# HTML helpers


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def num(value: int) -> str:
    return f"{value:,}"


def pct(share: float, digits: int = 1) -> str:
    if 0 < share < 0.5 * 10 ** -(digits + 2):  # not "0.0%" for a few rows among many
        return f"{share * 100:.1g}%"
    return f"{share * 100:.{digits}f}%"


def rows_of(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def cut(text: str, limit: int = TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def nice_max(value: float) -> float:
    for top in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0):
        if value <= top + 1e-12:
            return top
    return 1.0


# Gridline intervals per nice_max() top: round percentages on the axis.
INTERVALS = {
    0.01: 5,
    0.02: 4,
    0.05: 5,
    0.1: 5,
    0.2: 4,
    0.25: 5,
    0.3: 3,
    0.4: 4,
    0.5: 5,
    0.6: 3,
    0.8: 4,
    1.0: 4,
}


def axis_ticks(top: float) -> list[tuple[float, str]]:
    """(value, label) of the gridlines from 0 to top."""
    k = INTERVALS.get(top, 4)
    digits = 0 if round(top * 100 / k, 6) == round(top * 100 / k) else 1
    return [(top * i / k, pct(top * i / k, digits)) for i in range(k + 1)]


class _Colors:
    def __init__(self, ranked: Sequence[str]) -> None:
        self.map = {label: PALETTE[i] for i, label in enumerate(ranked[: len(PALETTE)])}

    def __call__(self, label: str) -> str:
        if not label:
            return NONE_COLOR
        return self.map.get(label, OTHER_COLOR)

    def legend(self, extra: bool = True) -> str:
        items = [
            f'<span><i class="swatch" style="background:{c}"></i>{esc(k)}</span>' for k, c in self.map.items()
        ]
        if extra:
            items.append(f'<span><i class="swatch" style="background:{OTHER_COLOR}"></i>other labels</span>')
            items.append(
                f'<span><i class="swatch" style="background:{NONE_COLOR};border:1px solid #ccd"></i>'
                "no label predicted</span>"
            )
        return '<div class="legend">' + "".join(items) + "</div>"


def _svg(width: int, height: int, body: list[str], label: str, cls: str = "chart") -> str:
    return (
        f'<svg class="{cls}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">' + "".join(body) + "</svg>"
    )


# ----------------------------------------------------------------------------------------------
# Sections


def _moment(value: str) -> str:
    """A run-facts time, readable: to the second, UTC when it had an offset."""
    parsed = parse_time(value)
    if parsed is None:
        return esc(value)
    moment, has_time, aware = parsed
    shown = moment.strftime("%Y-%m-%d %H:%M:%S") if has_time else moment.strftime("%Y-%m-%d")
    return esc(shown + (" UTC" if aware else ""))


def _facts_section(facts: ReportFacts, meta: dict[str, Any] | None, time_note: str) -> str:
    rows: list[tuple[str, str, str]] = []  # (key, heading, html value)

    def fact(key: str, heading: str, value: str) -> None:
        rows.append((key, heading, value))

    fact("results", "Results file", f'<span class="code">{esc(facts.results)}</span>')
    if facts.input:
        fact("input", "Input", f'<span class="code">{esc(facts.input)}</span>')
    if facts.models:
        models = ", ".join(
            f"{esc(name)} ({rows_of(n)})" if len(facts.models) > 1 else esc(name)
            for name, n in sorted(facts.models.items(), key=lambda kv: -kv[1])
        )
        if facts.model and not any(
            n == facts.model or n.startswith(facts.model + " v") for n in facts.models
        ):
            models += f' <span class="note">(requested as {esc(facts.model)})</span>'
    else:
        models = esc(f"{facts.model} v{facts.model_version}") if facts.model else "—"
    fact("model", "Model and version", models)
    fact("view", "View", esc(facts.view) if facts.view else '<span class="note">not recorded</span>')
    kind = {"sigmoid": "sigmoid (multi-label)", "softmax": "softmax (single-label)"}.get(
        facts.score_type, facts.score_type or "—"
    )
    fact("score_type", "Scores", f"{esc(kind)}, {len(facts.labels)} labels")
    fact("rows", "Rows", num(facts.rows))
    fact(
        "classified", "Classified", f"{num(facts.classified)} ({pct(facts.classified / max(facts.rows, 1))})"
    )
    if facts.errors:
        codes = ", ".join(f"{esc(c)}: {num(n)}" for c, n in sorted(facts.errors_by_code.items()))
        fact("errors", "Errors", f"{num(facts.errors)} ({codes})")
    else:
        fact("errors", "Errors", "0")
    fact(
        "truncated",
        "Truncated texts",
        f"{num(facts.truncated)} ({pct(facts.truncated / max(facts.rows, 1))}; scored on their first tokens only)"
        if facts.truncated
        else "0",
    )
    fact("time_span", "Time span", time_note)
    if facts.speakers:
        fact("speakers", "Speakers", num(facts.speakers))
    if facts.conversations:
        fact("conversations", "Conversations", num(facts.conversations))
    if facts.started:
        run = _moment(facts.started)
        if facts.finished:
            run += f" → {_moment(facts.finished)}"
            start, end = parse_time(facts.started), parse_time(facts.finished)
            if start and end and end[0] >= start[0]:
                run += f" ({_duration(end[0] - start[0])})"
        else:
            run += ' <span class="note">(not finished: interrupted or still running)</span>'
        fact("run", "Run", run)
    columns = meta.get("columns") if meta else None
    if isinstance(columns, dict) and columns:
        shown = ", ".join(f"{esc(k)} ← {esc(v)}" for k, v in columns.items())
        fact("columns", "Input columns", shown)

    table = "".join(
        f'<tr><th scope="row">{esc(h)}</th><td data-fact="{esc(k)}">{v}</td></tr>' for k, h, v in rows
    )
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in facts.notes)

    # The rows at a glance: classified in full, classified from a truncated text, errors.
    width, height = 960, 26
    truncated_ok = facts.truncated_classified
    parts = [
        ("classified", facts.classified - truncated_ok, ACCENT),
        ("truncated", truncated_ok, "#f28e2b"),
        ("errors", facts.errors, "#e15759"),
    ]
    body, x = [], 0.0
    total = max(facts.rows, 1)
    for name, n, color in parts:
        w = width * n / total
        if w > 0:
            body.append(
                f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{color}">'
                f"<title>{name}: {num(n)}</title></rect>"
            )
        x += w
    if not facts.rows:
        body.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="{NONE_COLOR}"/>')
    legend = (
        '<div class="legend">'
        f'<span><i class="swatch" style="background:{ACCENT}"></i>classified ({num(parts[0][1])})</span>'
        f'<span><i class="swatch" style="background:#f28e2b"></i>classified, text truncated ({num(parts[1][1])})</span>'
        f'<span><i class="swatch" style="background:#e15759"></i>errors ({num(facts.errors)})</span></div>'
    )
    bar = _svg(width, height, body, "rows by outcome", cls="chart bar-strip")
    return (
        '<section id="facts"><h2>The run</h2>'
        f'<table class="facts">{table}</table>{notes}<figure>{bar}{legend}</figure></section>'
    )


def _distribution_section(facts: ReportFacts) -> str:
    if not facts.classified or not facts.labels:
        return (
            '<section id="distribution"><h2>Emotion distribution</h2>'
            '<p class="note">No classified rows.</p></section>'
        )
    labels = sorted(
        facts.labels, key=lambda lab: (-facts.counts.get(lab, 0), -facts.mean_scores.get(lab, 0.0))
    )
    top = nice_max(max([*facts.shares.values(), *facts.mean_scores.values(), 0.01]))
    left, bar_w, row_h, head = 160, 480, 24, 26
    width, height = 960, head + row_h * len(labels) + 6
    body = []
    for value, text in axis_ticks(top):
        x = left + bar_w * value / top
        body.append(f'<line x1="{x:.1f}" y1="{head - 6}" x2="{x:.1f}" y2="{height - 4}" class="grid"/>')
        body.append(f'<text x="{x:.1f}" y="{head - 10}" class="axis" text-anchor="middle">{text}</text>')
    for i, label in enumerate(labels):
        y = head + i * row_h
        count = facts.counts.get(label, 0)
        share = facts.shares.get(label, 0.0)
        mean = facts.mean_scores.get(label, 0.0)
        w = bar_w * share / top
        mx = left + bar_w * mean / top
        body.append(
            f'<g class="bar" data-label="{esc(label)}" data-count="{count}" data-share="{share:.6f}" '
            f'data-mean="{mean:.6f}">'
            f'<text x="{left - 10}" y="{y + 15}" text-anchor="end">{esc(label)}</text>'
            f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="14" rx="2" fill="{ACCENT}">'
            f"<title>{esc(label)}: {rows_of(count)} predict{'s' if count == 1 else ''} it ({pct(share)})</title></rect>"
            f'<path d="M{mx:.1f} {y + 1}v20" class="mean"><title>{esc(label)}: mean score {mean:.3f}</title></path>'
            f'<text x="{left + bar_w + 14}" y="{y + 15}" class="value">'
            f'<tspan class="share">{pct(share)}</tspan> · <tspan class="count">{num(count)}</tspan>'
            f" row{'' if count == 1 else 's'}"
            f' · mean <tspan class="mean-score">{mean:.3f}</tspan></text></g>'
        )
    chart = _svg(width, height, body, "share of rows predicting each label, and mean score")
    legend = (
        '<div class="legend">'
        f'<span><i class="swatch" style="background:{ACCENT}"></i>share of classified rows predicting the label</span>'
        '<span><i class="swatch tick"></i>mean score over all classified rows</span></div>'
    )
    return (
        '<section id="distribution"><h2>Emotion distribution</h2>'
        f'<p class="note">{num(facts.classified)} classified rows; a row may predict '
        f"{'several labels, so shares add up to more than 100%' if facts.multi_label else 'one label'}."
        f"</p>{legend}<figure>{chart}</figure></section>"
    )


def _over_time_section(facts: ReportFacts, stats: _Stats, colors: _Colors, ranked: list[str]) -> str:
    head = '<section id="over-time"><h2>Emotions over time</h2>'
    if not stats.times:
        why = (
            f"{num(stats.bad_timestamps)} timestamps could not be read as ISO 8601."
            if stats.bad_timestamps
            else "The rows carry no timestamps."
        )
        return head + f'<p class="note">{why}</p></section>'
    unit = facts.period or "day"
    lo = min(m for m, _ in stats.times)
    start = _bucket(lo, unit)
    starts = [start]
    for _ in range(facts.periods - 1):
        starts.append(_next(starts[-1], unit))
    index = {s: i for i, s in enumerate(starts)}
    n = len(starts)
    shown = [lab for lab in ranked if facts.counts.get(lab, 0)][:OVER_TIME_LABELS]
    rows = [0] * n
    ok = [0] * n
    per = {lab: [0] * n for lab in shown}
    shown_set = set(shown)
    for moment, predicted in stats.times:
        i = index[_bucket(moment, unit)]
        rows[i] += 1
        if predicted is not None:
            ok[i] += 1
            for lab in predicted:
                if lab in shown_set:
                    per[lab][i] += 1
    shares = {lab: [c / o if o else None for c, o in zip(per[lab], ok, strict=True)] for lab in shown}
    peak = max([s for lab in shown for s in shares[lab] if s is not None] + [0.01])
    top = nice_max(peak)

    width, left, right = 960, 56, 16
    plot_w = width - left - right
    line_top, line_h = 12, 240
    count_top, count_h = line_top + line_h + 34, 70
    height = count_top + count_h + 30
    step = plot_w / n

    def x_at(i: int) -> float:
        return left + (i + 0.5) * step

    body = []
    for value, text in axis_ticks(top):
        y = line_top + line_h - line_h * value / top
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" class="grid"/>')
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{text}</text>')
    body.append(
        f'<text x="{left}" y="{count_top - 8}" class="axis">rows per {unit} (max {num(max(rows))})</text>'
    )
    body.append(
        f'<line x1="{left}" y1="{count_top + count_h}" x2="{width - right}" y2="{count_top + count_h}" class="grid"/>'
    )
    for lab in shown:
        segments, pen = [], False
        for i, s in enumerate(shares[lab]):
            if s is None:
                pen = False
                continue
            y = line_top + line_h - line_h * s / top
            segments.append(f"{'L' if pen else 'M'}{x_at(i):.1f} {y:.1f}")
            pen = True
        color = colors(lab)
        body.append(
            f'<path d="{"".join(segments)}" fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-linejoin="round" data-label="{esc(lab)}"><title>{esc(lab)}</title></path>'
        )
        if n <= 60:
            for i, s in enumerate(shares[lab]):
                if s is None:
                    continue
                y = line_top + line_h - line_h * s / top
                body.append(
                    f'<circle cx="{x_at(i):.1f}" cy="{y:.1f}" r="2.6" fill="{color}"><title>'
                    f"{esc(lab)}, {_period_label(starts[i], unit)}: {pct(s)} ({per[lab][i]} of {ok[i]})"
                    "</title></circle>"
                )
    biggest = max(rows) or 1
    bar_w = max(step * 0.8, 0.6)
    bars = "".join(
        f"M{x_at(i) - bar_w / 2:.1f} {count_top + count_h}v{-count_h * c / biggest:.1f}h{bar_w:.1f}"
        f"v{count_h * c / biggest:.1f}z"
        for i, c in enumerate(rows)
        if c
    )
    body.append(f'<path d="{bars}" fill="#9aa5b8" class="counts"/>')
    # As many period labels as fit: the first starts at its period, the last ends at its own.
    label_w = len(_period_label(starts[0], unit)) * 6.6
    ticks = min(n, 1 + int(plot_w // (1.5 * label_w + 20)))
    for k in range(ticks):
        i = round(k * (n - 1) / (ticks - 1)) if ticks > 1 else 0
        anchor = "start" if i == 0 and n > 1 else "end" if i == n - 1 and n > 1 else "middle"
        x = (
            x_at(i)
            if anchor == "middle"
            else (x_at(i) - step * 0.4 if anchor == "start" else x_at(i) + step * 0.4)
        )
        body.append(
            f'<text x="{x:.1f}" y="{count_top + count_h + 18}" class="axis" text-anchor="{anchor}">'
            f"{_period_label(starts[i], unit)}</text>"
        )
    chart = _svg(width, height, body, f"share of rows predicting the top labels per {unit}")
    chart = chart.replace("<svg ", f'<svg data-periods="{n}" data-unit="{unit}" ', 1)
    legend = (
        '<div class="legend">'
        + "".join(
            f'<span><i class="swatch" style="background:{colors(lab)}"></i>{esc(lab)}</span>' for lab in shown
        )
        + "</div>"
    )
    unit_text = {"week": "week (weeks start on Monday)"}.get(unit, unit)
    utc = " Times with a UTC offset are shown in UTC." if stats.aware else ""
    return (
        head
        + f'<p class="note">Share of classified rows predicting each of the {len(shown)} most frequent labels, '
        f"per {unit_text}; {num(facts.timestamped)} timestamped rows in {n} periods, row counts below.{utc}</p>"
        f"{legend}<figure>{chart}</figure></section>"
    )


def _sparkline(sequence: Sequence[str], colors: _Colors) -> str:
    n = len(sequence)
    width, height = 240, 16
    if not n:
        return _svg(
            width, height, [f'<rect width="{width}" height="{height}" fill="{NONE_COLOR}"/>'], "", "spark"
        )
    cells = min(n, SPARK_CELLS)
    w = width / cells
    body = []
    for k in range(cells):
        a, b = k * n // cells, (k + 1) * n // cells
        chunk = sequence[a:b]
        label = Counter(chunk).most_common(1)[0][0] if len(chunk) > 1 else chunk[0]
        rows = f"row {a + 1}" if b - a == 1 else f"rows {a + 1}–{b}"
        body.append(
            f'<rect x="{k * w:.2f}" y="0" width="{w + 0.05:.2f}" height="{height}" fill="{colors(label)}">'
            f"<title>{rows}: {esc(label) if label else 'no label'}</title></rect>"
        )
    return _svg(width, height, body, f"emotion sequence of {n} rows", "spark")


def _groups(groups: dict[str, _Group]) -> list[GroupSummary]:
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1].rows, kv[0]))
    out = []
    for name, g in ranked[:MAX_GROUPS_SHOWN]:
        top = tuple((lab, c / g.classified) for lab, c in g.counts.most_common(3)) if g.classified else ()
        out.append(GroupSummary(name, g.rows, g.errors, top, tuple(g.sequence)))
    return out


def _groups_section(key: str, title: str, noun: str, groups: dict[str, _Group], colors: _Colors) -> str:
    head = f'<section id="{key}"><h2>{title}</h2>'
    if not groups:
        return head + f'<p class="note">The rows name no {noun}.</p></section>'
    shown = _groups(groups)
    body = []
    for g in shown:
        top = " · ".join(
            f'<span class="chip"><i class="swatch" style="background:{colors(lab)}"></i>{esc(lab)} {pct(s, 0)}</span>'
            for lab, s in g.top
        )
        errors = (
            f' <span class="note">({num(g.errors)} error{"s" if g.errors > 1 else ""})</span>'
            if g.errors
            else ""
        )
        body.append(
            f'<tr data-name="{esc(g.name)}" data-rows="{g.rows}"><td class="name">{esc(cut(g.name, 60))}</td>'
            f'<td class="num">{num(g.rows)}{errors}</td><td>{top or "—"}</td>'
            f"<td>{_sparkline(g.sequence, colors)}</td></tr>"
        )
    rest = len(groups) - len(shown)
    more = ""
    if rest > 0:
        rest_rows = sum(g.rows for g in groups.values()) - sum(g.rows for g in shown)
        more = f'<p class="note">…and {num(rest)} more {noun}s with {rows_of(rest_rows)}, not shown.</p>'
    return (
        head
        + f'<p class="note">{num(len(groups))} {noun}s, the {len(shown)} with the most rows; the sequence '
        "shows each classified row's highest-scoring predicted label in input order (long ones in "
        f"{SPARK_CELLS} cells, each its most frequent label).</p>"
        + colors.legend()
        + f'<table class="groups"><thead><tr><th>{noun.capitalize()}</th><th class="num">Rows</th>'
        "<th>Top emotions (share of its rows)</th><th>Emotion sequence</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{more}</section>"
    )


def _examples_section(facts: ReportFacts, examples: dict[str, list[Example]]) -> str:
    head = '<section id="examples"><h2>Top examples per emotion</h2>'
    labels = [
        lab for lab in sorted(facts.labels, key=lambda lab: -facts.counts.get(lab, 0)) if lab in examples
    ]
    if not labels:
        return head + '<p class="note">No row predicts a label.</p></section>'
    parts = [
        f'<p class="note">The {EXAMPLES_PER_LABEL} highest-scoring texts among the rows predicting each label '
        f"(texts cut to {TEXT_CHARS} characters).</p>"
    ]
    for lab in labels:
        items = []
        for ex in examples[lab]:
            who = " · ".join(esc(cut(v, 40)) for v in (ex.speaker, ex.conversation) if v)
            where = (
                f"row {ex.row}"
                + (f" · id {esc(cut(ex.id, 40))}" if ex.id else "")
                + (f" · {who}" if who else "")
            )
            items.append(
                f'<li data-row="{ex.row}" data-score="{ex.score:.6f}"><span class="score">{ex.score:.3f}</span>'
                f'<span class="text">{esc(cut(ex.text))}</span><span class="where">{where}</span></li>'
            )
        parts.append(
            f'<div class="examples"><h3>{esc(lab)} <span class="note">{rows_of(facts.counts.get(lab, 0))}</span>'
            f'</h3><ol data-label="{esc(lab)}">{"".join(items)}</ol></div>'
        )
    return head + "".join(parts) + "</section>"


def _heat(t: float) -> str:
    """0..1 -> a light-to-dark blue."""
    lo, hi = (239, 243, 250), (31, 78, 140)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(lo, hi, strict=True))


def _cooccurrence_section(facts: ReportFacts) -> str:
    head = '<section id="cooccurrence"><h2>Label co-occurrence</h2>'
    if not facts.classified:
        return head + '<p class="note">No classified rows.</p></section>'
    if not facts.multi_label:
        why = (
            "the model is single-label (softmax): each row predicts one label"
            if facts.score_type == "softmax"
            else "every row predicts at most one label"
        )
        return (
            head
            + f'<p class="note">Does not apply: {why}, so no two labels are predicted together.</p></section>'
        )

    labels = [
        lab
        for lab in sorted(facts.labels, key=lambda lab: -facts.counts.get(lab, 0))
        if facts.counts.get(lab)
    ]
    labels = labels[:MAX_MATRIX_LABELS]
    if len(labels) < 2:
        return head + '<p class="note">Fewer than two labels are ever predicted.</p></section>'
    n = len(labels)
    cell = max(14, min(30, 720 // n))
    longest = max(len(lab) for lab in labels)
    left, top_m = min(40 + round(6.6 * longest), 170), min(30 + round(5.6 * longest), 140)
    width = max(left + n * cell + 70, 400)
    height = top_m + n * cell + 10
    off = [facts.together(a, b) for a in labels for b in labels if a != b]
    peak = max([*off, 1])
    body = []
    for j, lab in enumerate(labels):
        x = left + j * cell + cell / 2
        body.append(
            f'<text transform="translate({x + 4:.1f},{top_m - 6}) rotate(-55)" class="axis">{esc(lab)}</text>'
        )
    for i, a in enumerate(labels):
        y = top_m + i * cell
        body.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end" class="axis">{esc(a)}</text>'
        )
        for j, b in enumerate(labels):
            x = left + j * cell
            if i == j:
                count = facts.counts.get(a, 0)
                fill, ink, what = (
                    "#e4e6ea",
                    "#5b6475",
                    f"{esc(a)}: {rows_of(count)} predict{'s' if count == 1 else ''} it",
                )
            else:
                count = facts.together(a, b)
                t = math.sqrt(count / peak) if count else 0.0
                fill = _heat(t) if count else "#fafbfc"
                ink = "#ffffff" if t > 0.55 else "#1d2330"
                what = f"{esc(a)} + {esc(b)}: {rows_of(count)}"
            body.append(
                f'<g class="cell" data-a="{esc(a)}" data-b="{esc(b)}" data-count="{count}">'
                f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{fill}"><title>{what}</title></rect>'
            )
            label = num(count) if count else ""
            if label and len(label) * 5.2 + 3 <= cell:
                body.append(
                    f'<text x="{x + (cell - 1) / 2:.1f}" y="{y + cell / 2 + 3:.1f}" text-anchor="middle" '
                    f'class="cell-count" fill="{ink}">{label}</text>'
                )
            body.append("</g>")
    chart = _svg(width, height, body, "rows predicting two labels together")
    pairs = sorted(
        ((c, a, b) for (a, b), c in facts.cooccurrence.items() if c), key=lambda t: (-t[0], t[1], t[2])
    )
    table = ""
    if pairs:
        trs = "".join(
            f'<tr data-a="{esc(a)}" data-b="{esc(b)}"><td>{esc(a)} + {esc(b)}</td><td class="num">{num(c)}</td>'
            f'<td class="num">{pct(c / max(facts.counts.get(a, 1), 1))}</td>'
            f'<td class="num">{pct(c / max(facts.counts.get(b, 1), 1))}</td></tr>'
            for c, a, b in pairs[:10]
        )
        table = (
            '<h3>Most frequent pairs</h3><table class="pairs"><thead><tr><th>Labels</th>'
            '<th class="num">Rows with both</th><th class="num">of the first\'s rows</th>'
            f'<th class="num">of the second\'s rows</th></tr></thead><tbody>{trs}</tbody></table>'
        )
    else:
        table = '<p class="note">No row predicts two labels together.</p>'
    more = f" (the {n} most frequent labels)" if len(facts.labels) > n and n == MAX_MATRIX_LABELS else ""
    return (
        head + f'<p class="note">Rows predicting both labels{more}; the diagonal (grey) counts the rows '
        "predicting the label at all. Darker: more often together.</p>"
        f'<figure class="heatmap">{chart}</figure>{table}</section>'
    )


def _errors_section(facts: ReportFacts, stats: _Stats) -> str:
    head = '<section id="errors"><h2>Errors</h2>'
    if not facts.errors:
        return head + '<p class="note">No errors: every row was classified.</p></section>'
    codes = ", ".join(f"{esc(c)}: {num(n)}" for c, n in sorted(facts.errors_by_code.items()))
    trs = "".join(
        f'<tr data-row="{r.row}"><td class="num">{r.row}</td><td>{esc(cut(r.id, 40)) if r.id else ""}</td>'
        f'<td class="code">{esc(r.error_code)}</td><td>{esc(cut(r.error_message or "", 300))}</td>'
        f'<td class="text">{esc(cut(r.text, 120))}</td></tr>'
        for r in stats.error_rows
    )
    shown = len(stats.error_rows)
    return (
        head + f'<p class="note">{num(facts.errors)} rows failed ({codes}); '
        f"{'all shown' if shown == facts.errors else f'the first {shown} shown'}.</p>"
        '<table class="errors"><thead><tr><th class="num">Row</th><th>ID</th><th>Code</th><th>Message</th>'
        f"<th>Text</th></tr></thead><tbody>{trs}</tbody></table></section>"
    )


STYLE = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #e3e6ec; --accent: #4e79a7; }
* { box-sizing: border-box; }
html { background: #f3f4f7; }
body { margin: 0; color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 28px 36px 48px; background: #fff; min-height: 100vh; }
header h1 { font-size: 24px; margin: 0 0 4px; }
header p { color: var(--muted); margin: 0; font-size: 13px; }
nav { margin: 14px 0 6px; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; }
section { border-top: 1px solid var(--line); padding: 18px 0 10px; }
h2 { font-size: 18px; margin: 0 0 8px; }
h3 { font-size: 14px; margin: 14px 0 4px; }
figure { margin: 6px 0 4px; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
h3 .note { font-weight: normal; margin-left: 6px; }
svg.chart { display: block; width: 100%; max-width: 960px; height: auto; }
figure.heatmap svg.chart { width: auto; max-width: 100%; }
svg text { font-size: 12px; fill: var(--fg); }
svg text.axis { font-size: 11px; fill: var(--muted); }
svg text.value { fill: var(--muted); }
svg text.value .share { fill: var(--fg); font-weight: 600; }
svg text.cell-count { font-size: 9px; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .mean { stroke: var(--fg); stroke-width: 2.5; }
svg.spark { display: block; width: 240px; height: 16px; border-radius: 2px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { color: var(--muted); font-weight: 600; border-bottom: 1px solid #cfd4dc; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.facts { margin-bottom: 12px; }
table.facts th { width: 190px; color: var(--muted); font-weight: 600; }
table.groups td { vertical-align: middle; }
table.groups td.name { max-width: 260px; overflow-wrap: anywhere; }
table.pairs { max-width: 640px; }
table.errors td.code { white-space: nowrap; overflow-wrap: normal; }
table.errors td:nth-child(4) { min-width: 180px; max-width: 320px; }
.legend { display: flex; flex-wrap: wrap; gap: 3px 14px; font-size: 12px; color: var(--muted); margin: 4px 0 6px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px;
  vertical-align: -1px; }
.swatch.tick { width: 3px; background: var(--fg); }
.chip { white-space: nowrap; }
.code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
  overflow-wrap: anywhere; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.examples ol { margin: 0; padding: 0; list-style: none; }
.examples li { display: grid; grid-template-columns: 52px 1fr; gap: 0 10px; padding: 5px 0;
  border-bottom: 1px solid var(--line); }
.examples .score { grid-row: span 2; font-variant-numeric: tabular-nums; font-weight: 600; color: var(--accent); }
.examples .where { color: var(--muted); font-size: 12px; }
@media print {
  html { background: #fff; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  figure, tr, .examples li { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

SECTIONS = (
    ("facts", "The run"),
    ("distribution", "Distribution"),
    ("over-time", "Over time"),
    ("speakers", "Speakers"),
    ("conversations", "Conversations"),
    ("examples", "Examples"),
    ("cooccurrence", "Co-occurrence"),
    ("errors", "Errors"),
)


# ----------------------------------------------------------------------------------------------
# The report


def write_report(results: Path, out: Path, title: str | None = None) -> ReportFacts:
    """Read `results` (and `<results>.meta.json` when present), write one self-contained HTML page
    to `out`, and return the numbers it shows."""
    results, out = Path(results), Path(out)
    stats = _Stats()
    try:
        for row in read_results(results):
            stats.add(row)
    except UnicodeDecodeError:
        raise ReportError(f"{results.name}: not UTF-8 text") from None
    except csv.Error as err:
        raise ReportError(f"{results.name}: not a CSV file ({err})") from None
    except (TypeError, ValueError) as err:
        raise ReportError(f"{results.name}: a row holds values of the wrong type ({err})") from None
    meta = read_meta(results)
    facts = _facts(results, out, title, stats, meta)
    page = render(facts, stats, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return facts


def _facts(
    results: Path, out: Path, title: str | None, stats: _Stats, meta: dict[str, Any] | None
) -> ReportFacts:
    meta = meta or {}
    labels = tuple(stats.labels)
    classified = stats.classified
    counts = {lab: stats.counts.get(lab, 0) for lab in labels}
    means = stats.mean_scores()
    if stats.model_names:
        (model, version), _ = stats.model_names.most_common(1)[0]
    else:
        model, version = "", ""
    model = str(meta.get("model") or model)
    version = str(meta.get("model_version") or version)
    types = [t for t in stats.score_types if t]
    score_type = types[0] if len(types) == 1 else ("mixed" if types else "")
    multi = stats.multi or "sigmoid" in types
    notes = []
    first = last = None
    period, periods = None, 0
    if stats.times:
        lo = min(m for m, _ in stats.times)
        hi = max(m for m, _ in stats.times)
        first, last = _show_time(lo, stats.has_time), _show_time(hi, stats.has_time)
        period = choose_period(lo, hi, stats.has_time)
        periods = _period_count(lo, hi, period)
    if stats.bad_timestamps:
        notes.append(
            f"{stats.bad_timestamps:,} timestamps are not ISO 8601 and are left out of the time chart."
        )
    meta_rows = meta.get("rows")
    if isinstance(meta_rows, int) and meta_rows != stats.rows:
        notes.append(
            f"The run-facts file counts {meta_rows:,} rows; the results file holds {stats.rows:,} "
            "(the numbers here are the results file's)."
        )
    facts = ReportFacts(
        results=results.name,
        out=str(out),
        title=title or f"Emotion report: {results.name}",
        meta_used=bool(meta),
        input=_opt_str(meta.get("input")),
        view=_opt_str(meta.get("view")),
        model=model,
        model_version=version,
        models=stats.models(),
        score_type=score_type,
        multi_label=multi,
        rows=stats.rows,
        classified=classified,
        errors=sum(stats.errors_by_code.values()),
        errors_by_code=dict(stats.errors_by_code),
        truncated=stats.truncated,
        truncated_classified=stats.truncated_classified,
        labels=labels,
        counts=counts,
        shares={lab: counts[lab] / classified if classified else 0.0 for lab in labels},
        mean_scores=means,
        cooccurrence=dict(stats.pairs),
        examples={lab: tuple(e.row for e in exs) for lab, exs in stats.examples().items()},
        timestamped=len(stats.times),
        bad_timestamps=stats.bad_timestamps,
        first_timestamp=first,
        last_timestamp=last,
        period=period,
        periods=periods,
        speakers=len(stats.speakers),
        conversations=len(stats.conversations),
        started=_opt_str(meta.get("started")),
        finished=_opt_str(meta.get("finished")),
        notes=tuple(notes),
    )
    return facts


def render(facts: ReportFacts, stats: _Stats, meta: dict[str, Any] | None) -> str:
    ranked = sorted(facts.labels, key=lambda lab: (-facts.counts.get(lab, 0), facts.labels.index(lab)))
    colors = _Colors([lab for lab in ranked if facts.counts.get(lab, 0)])
    if facts.first_timestamp:
        span = f"{esc(facts.first_timestamp)} → {esc(facts.last_timestamp)}"
        lo, hi = parse_time(facts.first_timestamp), parse_time(facts.last_timestamp)
        if lo and hi and hi[0] > lo[0]:
            span += f" ({_duration(hi[0] - lo[0])})"
        span += f"; {num(facts.timestamped)} of {num(facts.rows)} rows timestamped"
        if stats.aware:
            span += " (UTC)"
    else:
        span = '<span class="note">no timestamps</span>'
    facts_html = _facts_section(facts, meta, span)
    sections = [
        facts_html,
        _distribution_section(facts),
        _over_time_section(facts, stats, colors, ranked),
        _groups_section("speakers", "Speakers", "speaker", stats.speakers, colors),
        _groups_section("conversations", "Conversations", "conversation", stats.conversations, colors),
        _examples_section(facts, stats.examples()),
        _cooccurrence_section(facts),
        _errors_section(facts, stats),
    ]
    nav = "".join(f'<a href="#{key}">{name}</a>' for key, name in SECTIONS)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    model = f"{facts.model} v{facts.model_version}" if facts.model_version else facts.model
    subtitle = " · ".join(
        esc(part)
        for part in (
            model,
            facts.view and f"{facts.view} view",
            f"{facts.rows:,} rows",
            f"generated {generated}",
        )
        if part
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(facts.title)}</title><style>{STYLE}</style></head>\n"
        f"<body><main><header><h1>{esc(facts.title)}</h1><p>{subtitle}</p></header>"
        f"<nav>{nav}</nav>\n" + "\n".join(sections) + "\n</main></body></html>\n"
    )


# ----------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", type=Path, metavar="RESULTS", help="results file: .jsonl, .csv or .parquet"
    )
    parser.add_argument(
        "-o", "--out", type=Path, metavar="OUT.html", help="the page to write (default: RESULTS with .html)"
    )
    parser.add_argument("--title", help="the page's title (default: 'Emotion report: RESULTS')")


def build_parser(prog: str = "emotionaware-client report") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="One self-contained HTML page (no network, no script) from an analyze results file.",
    )
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    out = args.out or args.results.with_suffix(".html")
    try:
        facts = write_report(args.results, out, args.title)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({facts.rows:,} rows, {facts.errors:,} errors, {len(facts.labels)} labels)")
    return 0


def report_main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(report_main())
