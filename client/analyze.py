"""``emotionaware-client analyze FILE...``: the texts of a file classified into a results file,
as it goes, resumably.

Inputs: CSV (or TSV), JSONL, Parquet, or plain text (one text per line). Every input row gets
exactly one output row, in input order, with the same row number: blank or invalid rows get
their error in place. Outputs: JSONL (default), CSV or Parquet, by extension; beside it
``<output>.meta.json`` holds the run's facts (input fingerprint, model, options, counts).

Resuming: rows are written strictly in input order and flushed after each call, so after an
interruption (Ctrl-C, a crash, SIGKILL, a server restart) the output holds a prefix of
complete rows (a half-written last line is cut off); the same command continues after it.
A Parquet output is written as ``<output>.partial.jsonl`` and converted when the run ends.

The file handling here knows nothing of the transport: it calls a ``classify`` function that
takes texts and returns one :class:`Outcome` per text (the command line's is the client
package's ``classify_batch``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
           ".txt": "text"}  # fmt: skip
# Columns looked for when none is named, first match wins (case-insensitive).
GUESSES = {
    "text": ("text", "message", "body", "content", "comment", "utterance"),
    "id": ("id", "ticket_id", "message_id", "row_id"),
    "timestamp": ("timestamp", "created_at", "time", "date", "datetime", "created"),
    "speaker": ("speaker", "author", "user", "customer", "sender"),
    "conversation": ("conversation_id", "conversation", "thread_id", "dialogue_id", "session_id"),
}


class InputError(Exception):
    """The input or output files cannot be used as asked (one line for the user)."""


@dataclass(frozen=True)
class Columns:
    """Input column names for each role (None: the input has none)."""

    text: str
    id: str | None = None
    timestamp: str | None = None
    speaker: str | None = None
    conversation: str | None = None


@dataclass
class Row:
    row: int  # 0-based position among the input's data rows
    text: str
    id: str | None = None
    timestamp: str | None = None
    speaker: str | None = None
    conversation: str | None = None
    problem: str | None = None  # why the input row itself is unusable (not sent)


@dataclass(frozen=True)
class Outcome:
    """One text's answer: a result, or an error code and message."""

    model: str = ""
    model_version: str = ""
    score_type: str = ""
    predicted: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    token_count: int = 0
    truncated: bool = False
    error_code: str | None = None
    error_message: str | None = None


Classify = Callable[[list[str]], list[Outcome]]


# -- reading ---------------------------------------------------------------------------------


def file_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown format {path.suffix!r}; use one of {', '.join(sorted(FORMATS))}")
    return fmt


def _header(path: Path, fmt: str) -> list[str]:
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh, dialect=_dialect(path)), [])
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    return list(value)
        return []
    if fmt == "parquet":
        return list(_parquet().ParquetFile(path).schema_arrow.names)
    return ["text"]


def _dialect(path: Path) -> type[csv.Dialect]:
    return csv.excel_tab if path.suffix.lower() == ".tsv" else csv.excel


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # an optional dependency
        raise InputError("Parquet needs pyarrow: pip install pyarrow") from exc
    return pq


def choose_columns(path: Path, fmt: str, named: dict[str, str | None]) -> Columns:
    """The columns to read: those named, else the first of :data:`GUESSES` the input has."""
    header = _header(path, fmt)
    lower = {h.lower(): h for h in header}
    chosen: dict[str, str | None] = {}
    for role, guesses in GUESSES.items():
        name = named.get(role)
        if name:
            if name not in header:
                raise InputError(f"{path}: no column {name!r} (columns: {', '.join(header) or 'none'})")
            chosen[role] = name
        else:
            chosen[role] = next((lower[g] for g in guesses if g in lower), None)
    if chosen["text"] is None:
        raise InputError(
            f"{path}: no text column found (columns: {', '.join(header) or 'none'}); name it with --text-column"
        )
    return Columns(**chosen)  # type: ignore[arg-type]


def _cell(record: dict[str, Any], name: str | None) -> str | None:
    if name is None:
        return None
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _row(i: int, record: dict[str, Any], columns: Columns) -> Row:
    text = record.get(columns.text)
    row = Row(i, "" if text is None else str(text), _cell(record, columns.id), _cell(record, columns.timestamp),
              _cell(record, columns.speaker), _cell(record, columns.conversation))  # fmt: skip
    if columns.text not in record:
        row.problem = f"no {columns.text!r} field in this row"
    elif text is not None and not isinstance(text, str | int | float):
        row.problem = f"the {columns.text!r} field is not text"
    return row


def read_rows(path: Path, fmt: str, columns: Columns) -> Iterator[Row]:
    """Every data row of ``path``, numbered from 0, unusable ones with their problem."""
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, dialect=_dialect(path))
            header = next(reader, [])
            for i, cells in enumerate(reader):
                row = _row(i, dict(zip(header, cells, strict=False)), columns)
                if row.problem is None and len(cells) > len(header):
                    row.problem = f"has {len(cells)} cells; the header has {len(header)}"
                yield row
    elif fmt == "jsonl":
        with path.open(encoding="utf-8", errors="replace") as fh:
            for i, line in enumerate(fh):
                try:
                    record = json.loads(line) if line.strip() else None
                except json.JSONDecodeError as exc:
                    yield Row(i, "", problem=f"line {i + 1} is not JSON ({exc.msg} at column {exc.colno})")
                    continue
                if not isinstance(record, dict):
                    yield Row(i, "", problem=f"line {i + 1} is not a JSON object")
                    continue
                yield _row(i, record, columns)
    elif fmt == "parquet":
        table = _parquet().ParquetFile(path)
        names = [n for n in {columns.text, columns.id, columns.timestamp, columns.speaker,
                             columns.conversation} if n]  # fmt: skip
        i = 0
        for batch in table.iter_batches(batch_size=4096, columns=names):
            for record in batch.to_pylist():
                yield _row(i, record, columns)
                i += 1
    else:
        with path.open(encoding="utf-8", errors="replace", newline="") as fh:
            for i, line in enumerate(fh):
                yield Row(i, line.rstrip("\r\n"))


def count_rows(path: Path, fmt: str) -> int:
    """Data rows in ``path`` (for progress and ETA)."""
    if fmt == "parquet":
        return int(_parquet().ParquetFile(path).metadata.num_rows)
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return max(sum(1 for _ in csv.reader(fh, dialect=_dialect(path))) - 1, 0)
    lines, last = 0, b"\n"
    with path.open("rb") as fh:  # in blocks: the file may be larger than memory
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def fingerprint(path: Path) -> dict[str, Any]:
    """What identifies an input: its size, modification time and first megabyte's hash."""
    stat = path.stat()
    with path.open("rb") as fh:
        head = hashlib.sha256(fh.read(1 << 20)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_first_mib": head}


# -- writing ---------------------------------------------------------------------------------


def result_record(row: Row, outcome: Outcome) -> dict[str, Any]:
    """One output row (the results format ``report`` reads)."""
    error = {"code": outcome.error_code, "message": outcome.error_message} if outcome.error_code else None
    return {
        "row": row.row, "id": row.id, "timestamp": row.timestamp, "speaker": row.speaker,
        "conversation": row.conversation, "text": row.text, "model": outcome.model,
        "model_version": outcome.model_version, "score_type": outcome.score_type,
        "predicted": list(outcome.predicted), "scores": outcome.scores,
        "token_count": outcome.token_count, "truncated": outcome.truncated, "error": error,
    }  # fmt: skip


CSV_FIELDS = ["row", "id", "timestamp", "speaker", "conversation", "text", "model", "model_version",
              "score_type", "predicted", "token_count", "truncated", "error_code", "error_message"]  # fmt: skip


def csv_cells(record: dict[str, Any], labels: Sequence[str]) -> list[Any]:
    error = record["error"] or {}
    flat = {**record, "predicted": ";".join(record["predicted"]), "error_code": error.get("code"),
            "error_message": error.get("message"),
            "truncated": "true" if record["truncated"] else "false"}  # fmt: skip
    cells = ["" if flat[k] is None else flat[k] for k in CSV_FIELDS]
    scores = record["scores"]
    return cells + [f"{scores[label]:.6f}" if label in scores else "" for label in labels]


def _complete_prefix(path: Path, fmt: str) -> int:
    """Complete rows at the start of an existing output; cuts off a half-written tail.

    Reads line by line (an output may be larger than memory). A CSV record ends at a newline
    outside quotes: quotes are doubled inside fields, so an even count so far means outside.
    """
    rows = end = offset = quotes = 0
    with path.open("rb") as fh:
        for line in fh:
            offset += len(line)
            if not line.endswith(b"\n"):
                break  # cut short by the interruption
            if fmt == "jsonl":
                try:
                    json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    break
            else:
                quotes += line.count(b'"')
                if quotes % 2:
                    continue  # inside a quoted field that spans lines
                quotes = 0
            rows, end = rows + 1, offset
    if end != path.stat().st_size:
        with path.open("r+b") as fh:
            fh.truncate(end)
    return max(rows - 1, 0) if fmt == "csv" else rows  # a CSV's first record is its header


class ResultWriter:
    """Appends output rows in order, flushing after each batch; knows how many are there."""

    def __init__(self, path: Path, labels: Sequence[str], resume: bool) -> None:
        self.final = path
        self.kind = file_format(path)
        if self.kind not in ("jsonl", "csv", "parquet"):
            raise InputError(f"{path}: results are written as .jsonl, .csv or .parquet")
        self.labels = list(labels)
        # Parquet cannot be appended to: rows go to a JSONL file, converted at the end.
        self.path = path.with_name(path.name + ".partial.jsonl") if self.kind == "parquet" else path
        self.fmt = "csv" if self.kind == "csv" else "jsonl"
        self.done = _complete_prefix(self.path, self.fmt) if resume and self.path.exists() else 0
        if not resume or not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")
        self._fh: TextIO = self.path.open("a", encoding="utf-8", newline="")
        self._csv = csv.writer(self._fh) if self.fmt == "csv" else None
        if self._csv is not None and self.path.stat().st_size == 0:
            self._csv.writerow(CSV_FIELDS + [f"score:{label}" for label in self.labels])

    def write(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            if self._csv is not None:
                self._csv.writerow(csv_cells(record, self.labels))
            else:
                self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.done += len(records)

    def close(self, complete: bool) -> None:
        self._fh.close()
        if complete and self.kind == "parquet":
            pa = __import__("pyarrow")
            records = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines()]
            rows = []
            for record in records:
                cells = dict(zip(CSV_FIELDS, csv_cells(record, []), strict=True))
                cells.update(row=record["row"], token_count=record["token_count"],
                             truncated=record["truncated"], predicted=record["predicted"])  # fmt: skip
                for label in self.labels:
                    cells[f"score:{label}"] = record["scores"].get(label)
                rows.append({k: (None if v == "" else v) for k, v in cells.items()})
            _parquet().write_table(pa.Table.from_pylist(rows), self.final)
            self.path.unlink()


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Facts:
    """The run's facts, kept in ``<output>.meta.json``."""

    input: str
    input_fingerprint: dict[str, Any]
    columns: dict[str, str | None]
    model: str
    view: str
    options: dict[str, Any]
    model_version: str = ""
    started: str = ""
    finished: str | None = None
    rows: int = 0
    done: int = 0
    errors: int = 0
    truncated: int = 0
    seconds: float = 0.0

    def same_run(self, other: dict[str, Any]) -> bool:
        keys = ("input_fingerprint", "columns", "model", "view", "options")
        return all(other.get(k) == getattr(self, k) for k in keys)


def meta_path(output: Path) -> Path:
    return output.with_name(output.name + ".meta.json")


class Progress:
    """A one-line progress bar on stderr (rate and ETA); plain lines when stderr is not a terminal."""

    def __init__(self, total: int, start: int, stream: TextIO, quiet: bool) -> None:
        self.total, self.start, self.stream, self.quiet = total, start, stream, quiet
        self.began = time.monotonic()
        self.shown = 0.0
        self.tty = stream.isatty()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not final and now - self.shown < (0.2 if self.tty else 10.0)):
            return
        self.shown = now
        rate = (done - self.start) / max(now - self.began, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("inf")
        eta = "-" if left == float("inf") else str(dt.timedelta(seconds=round(left)))
        share = done / self.total if self.total else 1.0
        width = 24
        bar = "#" * round(share * width) + "." * (width - round(share * width))
        line = f"[{bar}] {done:,}/{self.total:,} rows {share:6.1%}  {rate:,.0f} rows/s  ETA {eta}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _problem_outcome(row: Row) -> Outcome:
    return Outcome(error_code="INVALID_INPUT", error_message=row.problem)


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _classify_chunk(classify: Classify, chunk: list[Row]) -> list[dict[str, Any]]:
    sendable = [r for r in chunk if r.problem is None]
    outcomes = iter(classify([r.text for r in sendable]) if sendable else [])
    return [result_record(r, _problem_outcome(r) if r.problem else next(outcomes)) for r in chunk]


def analyze_file(
    source: Path,
    output: Path,
    classify: Classify,
    labels: Sequence[str],
    facts: Facts,
    *,
    batch: int = 64,
    concurrency: int = 4,
    restart: bool = False,
    progress_stream: TextIO = sys.stderr,
    quiet: bool = False,
) -> Facts:
    """Classify every row of ``source`` into ``output`` (resuming a run of the same facts)."""
    fmt = file_format(source)
    meta = meta_path(output)
    resume = False
    if (
        not restart
        and meta.exists()
        and (output.exists() or output.with_name(output.name + ".partial.jsonl").exists())
    ):
        previous = json.loads(meta.read_text())
        if not facts.same_run(previous):
            raise InputError(
                f"{output} holds the results of another run (a different input, model or options); "
                "use --restart to overwrite it, or another --output"
            )
        if previous.get("finished") and previous.get("done") == previous.get("rows") and output.exists():
            facts.__dict__.update({k: v for k, v in previous.items() if k in facts.__dict__})
            return facts
        resume = True
        for key in ("started", "errors", "truncated", "model_version", "seconds"):
            setattr(facts, key, previous.get(key, getattr(facts, key)))
    facts.rows = count_rows(source, fmt)
    writer = ResultWriter(output, labels, resume)
    facts.done = writer.done
    if resume:  # counts come from what the output holds, not from what the meta file last said
        facts.errors = facts.truncated = 0
        if writer.done:
            for record in _read_done(writer.path, writer.fmt):
                facts.errors += bool(record["error"])
                facts.truncated += record["truncated"]
    facts.started = facts.started or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    meta.write_text(json.dumps(asdict(facts), indent=2))
    progress = Progress(facts.rows, writer.done, progress_stream, quiet)
    rows = (r for r in read_rows(source, fmt, Columns(**facts.columns)) if r.row >= writer.done)  # type: ignore[arg-type]
    began = time.monotonic()
    complete = False
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="analyze")
    pending: deque[Future[list[dict[str, Any]]]] = deque()
    try:
        chunks = _chunks(rows, batch)
        for chunk in chunks:
            pending.append(pool.submit(_classify_chunk, classify, chunk))
            while len(pending) >= concurrency:
                _write(writer, pending.popleft().result(), facts)
                progress.update(writer.done)
        while pending:
            _write(writer, pending.popleft().result(), facts)
            progress.update(writer.done)
        complete = True
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        facts.done = writer.done
        facts.seconds += time.monotonic() - began
        if complete:
            facts.finished = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        writer.close(complete)
        meta.write_text(json.dumps(asdict(facts), indent=2))
        progress.update(writer.done, final=True)
    return facts


def _read_done(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)
    else:
        with path.open(encoding="utf-8", newline="") as fh:
            for record in csv.DictReader(fh):
                yield {"error": record["error_code"] or None, "truncated": record["truncated"] == "true"}


def _write(writer: ResultWriter, records: list[dict[str, Any]], facts: Facts) -> None:
    writer.write(records)
    for record in records:
        facts.errors += bool(record["error"])
        facts.truncated += record["truncated"]
        if record["model_version"] and not facts.model_version:
            facts.model_version = record["model_version"]


def default_output(source: Path, suffix: str = ".jsonl") -> Path:
    return source.with_name(f"{source.stem}.emotions{suffix}")


def describe(facts: Facts, output: Path) -> str:
    rate = (facts.done / facts.seconds) if facts.seconds else 0.0
    return (
        f"{facts.input}: {facts.done:,} of {facts.rows:,} rows -> {output} "
        f"({facts.errors:,} with errors, {facts.truncated:,} truncated; model {facts.model}"
        f"{' v' + facts.model_version if facts.model_version else ''}; {rate:,.0f} rows/s)"
    )
