"""``emotionaware-spark score INPUT OUTPUT --text-col C``: a Parquet, CSV or JSONL corpus scored on Spark.

Runs as a console script (a local Spark, ``local[*]`` unless ``--master`` says otherwise) or
under ``spark-submit`` (then the master and resources are spark-submit's)::

    spark-submit --archives model_repository.tar.gz#repo "$(python -m integrations.spark.cli --path)" \\
        score posts/ scored/ --text-col body --repository repo

Output: a folder of the input's rows with the result columns of :func:`integrations.spark.score`,
written by Spark's file committer: a task's files appear only when the task commits, so a
retried task never duplicates or loses a row, and ``_SUCCESS`` marks a complete output. An
existing OUTPUT is refused unless ``--overwrite`` (then it is replaced: rerunning the same
command writes the same rows). At the end, a summary: rows, errors, rate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from integrations.spark.frame import DEFAULT_PREFIX, plan_for, score_with, shipped
from integrations.spark.rows import Options, Plan, open_client

FORMATS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
}


class UsageError(Exception):
    """A problem with the command's inputs, said in one line."""


class JobFailed(Exception):
    """The Spark job failed (Spark has printed the details)."""


def input_format(path: str, given: str | None) -> str:
    """``given``, else the format of the file (or of the files in the folder) by extension."""
    if given:
        return given
    p = Path(path)
    if not p.exists():
        raise UsageError(f"input {path} does not exist")
    files = (
        [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file() and not f.name.startswith((".", "_"))]
    )
    found = {FORMATS.get(f.suffix.lower()) for f in files} - {None}
    if len(found) != 1:
        kinds = ", ".join(sorted(f for f in found if f)) or "no .parquet, .csv or .jsonl files"
        raise UsageError(f"cannot tell the format of {path} ({kinds}): pass --input-format")
    return found.pop()  # type: ignore[return-value]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emotionaware-spark", description=__doc__.split("\n\n")[0])
    p.add_argument("--path", action="store_true", help="print this file's path (for spark-submit) and exit")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("score", help="score a corpus's texts into an output folder")
    s.add_argument("input", help="a Parquet, CSV or JSONL file or folder")
    s.add_argument("output", help="the output folder")
    s.add_argument("--text-col", required=True, help="the column of texts")
    s.add_argument(
        "--mode",
        choices=("local", "service"),
        default="local",
        help="local: the served graph in each executor (default); service: the gateway's ClassifyBatch",
    )
    s.add_argument("--model", default="", help="model name or alias (default: the default alias)")
    s.add_argument("--view", default="native", choices=("native", "goemotions", "ekman", "sentiment"))
    s.add_argument("--threshold", type=float, default=None, help="one threshold for every label")
    s.add_argument("--long-text", default="", choices=("", "truncate", "chunk"))
    s.add_argument(
        "--input-format",
        choices=("parquet", "csv", "json"),
        default=None,
        help="default: from the input's extension (json means JSON lines)",
    )
    s.add_argument(
        "--output-format",
        choices=("parquet", "json", "csv"),
        default="parquet",
        help="parquet (default); json lines; csv (labels joined by ';', scores as a JSON object)",
    )
    s.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    s.add_argument(
        "--partitions", type=int, default=0, help="repartition the input to this many tasks (0: as read)"
    )
    s.add_argument(
        "--master", default=None, help="Spark master when not under spark-submit (default local[*])"
    )
    s.add_argument("--repository", default=None, help="local mode: the model repository as executors see it")
    s.add_argument("--routing-file", default="", help="local mode: a routing file (aliases, versions)")
    s.add_argument(
        "--target", default=None, help="service mode: the gateway's host:port (or $EMOTIONAWARE_TARGET)"
    )
    s.add_argument("--tls", action="store_true", help="service mode: TLS (system CAs, or --ca-file)")
    s.add_argument("--ca-file", default=None, help="service mode: CA bundle to trust")
    s.add_argument("--concurrency", type=int, default=2, help="service mode: calls in flight per task")
    return p  # fmt: skip


def session(master: str | None):
    """The job's SparkSession: spark-submit's when it launched us, else a local one."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("emotionaware-spark score")
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit: this process is the driver
        # Executors' Python workers must be this interpreter (its packages), not the first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(master or "local[*]").config("spark.ui.showConsoleProgress", "true")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read(spark, path: str, fmt: str):
    if fmt == "parquet":
        return spark.read.parquet(path)
    if fmt == "csv":
        sep = "\t" if path.lower().endswith(".tsv") else ","
        return (
            spark.read.option("header", True)
            .option("multiLine", True)
            .option("escape", '"')
            .option("sep", sep)
            .csv(path)
        )
    return spark.read.json(path)


def write(df, path: str, fmt: str, overwrite: bool, prefix: str) -> None:
    from pyspark.sql import functions as F

    writer_df = df
    if fmt == "csv":  # CSV has no arrays or maps
        writer_df = df.withColumn(
            prefix + "predicted", F.array_join(F.col(prefix + "predicted"), ";")
        ).withColumn(prefix + "scores", F.to_json(F.col(prefix + "scores")))
    writer = writer_df.write.mode("overwrite" if overwrite else "errorifexists")
    if fmt == "csv":
        writer.option("header", True).option("escape", '"').csv(path)  # RFC 4180 quoting
    elif fmt == "json":
        writer.json(path)
    else:
        writer.parquet(path)


def summary(spark, path: str, fmt: str, prefix: str, seconds: float) -> dict:
    """Counts read back from the committed output (what a reader of it will see)."""
    from pyspark.sql import functions as F

    written = read(spark, path, "csv" if fmt == "csv" else fmt)
    row = written.agg(F.count(F.lit(1)).alias("rows"), F.count(prefix + "error").alias("errors")).collect()[0]
    return {"rows": row["rows"], "errors": row["errors"], "seconds": round(seconds, 1),
            "rows_per_s": round(row["rows"] / seconds, 1) if seconds > 0 else None, "output": path, "format": fmt}  # fmt: skip


def holds_data(path: Path) -> bool:
    """Whether ``path`` exists with anything in it but Spark's markers (a failed job leaves an
    empty folder, or one with ``_temporary``, behind: that is not an output to protect)."""
    if path.is_file():
        return True
    return path.is_dir() and any(not p.name.startswith(("_", ".")) for p in path.iterdir())


def cause(exc: BaseException) -> str:
    """The line that says why a Spark job failed (a Python worker's exception, if there is one)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    # A traceback's last line names the exception by its dotted class name (any name: the
    # gateway's errors do not all end in Error).
    raised = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*: ", line)]
    return (raised[-1] if raised else next((line for line in lines if line), type(exc).__name__))[:500]


def check_service(plan: Plan, model: str) -> None:
    """Ask the service for the model once from the driver, so that a wrong target, token or model
    name is one line now rather than every row's error after the retries (minutes)."""
    from emotionaware_client import EmotionAwareError

    try:
        with open_client(plan.service, plan.bearer_token(), timeout_s=15, max_attempts=3) as client:
            client.model(model)
    except EmotionAwareError as exc:
        raise UsageError(
            f"the service at {plan.service.target} cannot serve model {model or 'default'!r}: {exc}"
        ) from None


def check_plan(spark, plan: Plan, model: str) -> None:
    """What can be known before the job from the driver, said in one line."""
    # On a local master the executors are this machine: say now, not from inside a failed task
    # (the repository may be a path or an archive the job ships).
    local = plan.local is not None and spark.sparkContext.master.startswith("local")
    if local and not Path(shipped(plan.local.repository)).is_dir():
        raise UsageError(
            f"no model repository at {plan.local.repository}: pass --repository (a folder `make export` wrote)"
        )
    if plan.service is not None:
        check_service(plan, model)


def run_score(args: argparse.Namespace) -> dict:
    fmt = input_format(args.input, args.input_format)
    if holds_data(Path(args.output)) and not args.overwrite:
        raise UsageError(f"output {args.output} exists: pass --overwrite to replace it")
    # A folder a failed run left behind holds nothing to protect: Spark may replace it.
    overwrite = args.overwrite or Path(args.output).exists()
    spark = session(args.master)
    plan = plan_for(
        spark, mode=args.mode, options=Options(args.model, args.view, args.threshold, args.long_text),
        repository=args.repository, routing_file=args.routing_file, target=args.target, tls=args.tls,
        ca_file=args.ca_file, concurrency=args.concurrency,
    )  # fmt: skip
    check_plan(spark, plan, args.model)
    started = time.perf_counter()
    df = read(spark, args.input, fmt)
    if args.partitions:
        df = df.repartition(args.partitions)
    try:
        scored = score_with(df, args.text_col, plan)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        write(scored, args.output, args.output_format, overwrite, DEFAULT_PREFIX)
    except Exception as exc:  # Py4JJavaError and kin: one line for the user, the trace above it
        raise JobFailed(cause(exc)) from exc
    return summary(spark, args.output, args.output_format, DEFAULT_PREFIX, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.path:
        print(Path(__file__).resolve())
        return 0
    if args.command != "score":
        parser().print_help()
        return 2
    try:
        facts = run_score(args)
    except UsageError as exc:
        print(f"emotionaware-spark: {exc}", file=sys.stderr)
        return 2
    except JobFailed as exc:
        print(f"emotionaware-spark: the job failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"scored {facts['rows']:,} rows ({facts['errors']:,} with an error) in {facts['seconds']} s: "
        f"{facts['rows_per_s']} rows/s; output {facts['output']} ({facts['format']})",
        file=sys.stderr,
    )
    print(json.dumps(facts))
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # spark-submit runs this file
    entry()
