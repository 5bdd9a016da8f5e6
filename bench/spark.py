"""Spark scoring beside what it is measured against, same texts and machine, one run: ``make spark-bench``.

    python -m bench.spark [--texts 10000] [--out FILE]

Rows/s of, in this order:

- the served graph in process (ONNX Runtime, this machine's cores, sorted batches of 64,
  tokenization included): the ceiling local mode is held to (goal >= 0.8x);
- ``score(mode="local")`` on Spark ``local[N]`` (N = the machine's cores, one ONNX Runtime
  thread per task);
- one ClassifyBatch client (the client package's ``classify_batch``, its default concurrency)
  against the ``make serve`` program: what service mode is held to (goal >= 0.9x);
- ``score(mode="service")`` on the same Spark against the same service.

Spark runs are timed warm (Python workers started and the model or channel loaded by a first
job on a few rows; the cold first job is reported beside it) and write to Spark's ``noop``
sink, so the figure is scoring, not storage. GoEmotions dev and test texts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import speed_baselines
from bench.run import results_page
from gateway.settings import DEFAULT_MODEL_REPOSITORY

MODEL = "goemotions"


def corpus(data_dir: Path, count: int) -> list[str]:
    from emotionaware.datasets import load_goemotions

    goemotions = load_goemotions(data_dir)
    texts = [e.text for e in goemotions.dev + goemotions.test]
    return (texts * (count // len(texts) + 1))[:count]


def spark_session(cores: int):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("bench.spark")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def timed_spark(spark, texts: Sequence[str], cores: int, **options) -> tuple[float, float, int]:
    """(cold seconds for a first job on 200 rows, warm seconds for all rows, rows with an error)."""
    from pyspark.sql import functions as F

    from integrations.spark import score

    rows = [(i, t) for i, t in enumerate(texts)]
    df = spark.createDataFrame(rows, "id long, text string").repartition(cores).cache()
    df.count()
    started = time.perf_counter()
    score(df.limit(200).repartition(cores), "text", **options).write.format("noop").mode("overwrite").save()
    cold = time.perf_counter() - started
    started = time.perf_counter()
    scored = score(df, "text", **options).cache()
    errors = scored.filter(F.col("emotion_error").isNotNull()).count()
    warm = time.perf_counter() - started
    scored.unpersist()
    df.unpersist()
    return cold, warm, errors


def one_client(target: str, texts: Sequence[str]) -> tuple[float, int]:
    from emotionaware_client import EmotionClient, ItemError

    with EmotionClient(target, timeout=300) as client:
        client.classify_batch(texts[:200], MODEL)  # warm-up
        started = time.perf_counter()
        items = client.classify_batch(texts, MODEL, return_all_scores=True)
        seconds = time.perf_counter() - started
    return seconds, sum(isinstance(i, ItemError) for i in items)


def main(argv: Sequence[str] | None = None) -> None:
    from bench.reliability import Serve
    from emotionaware.datasets import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(prog="bench.spark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    texts = corpus(args.data_dir, args.texts)
    cores = os.cpu_count() or 1
    repository = str(args.model_repository.resolve())
    n = len(texts)
    rows: list[tuple[str, float, str, str]] = []  # what, rows/s, ratio, note

    ceiling = speed_baselines.ort_ceiling(texts, args.model_repository, MODEL, cores)
    rows.append((ceiling.name, ceiling.texts_per_s, "1.00 (ceiling)", ""))
    spark = spark_session(cores)
    cold, warm, errors = timed_spark(spark, texts, cores, mode="local", model=MODEL, repository=repository)
    local_rate = n / warm
    rows.append((f'score(mode="local"), Spark local[{cores}]', local_rate,
                 f"{local_rate / ceiling.texts_per_s:.2f} x ceiling (goal >= 0.8)",
                 f"first job on 200 rows (workers start, model loads): {cold:.1f} s; {errors} errors"))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        serve = Serve(args.model_repository, Path(tmp) / "serve")
        try:
            seconds, client_errors = one_client(serve.target, texts)
            client_rate = n / seconds
            rows.append(("one ClassifyBatch client (classify_batch, default concurrency)", client_rate,
                         "1.00 (client)", f"{client_errors} errors"))  # fmt: skip
            cold, warm, errors = timed_spark(
                spark, texts, cores, mode="service", model=MODEL, target=serve.target
            )
            service_rate = n / warm
            rows.append((f'score(mode="service"), Spark local[{cores}], 2 calls in flight per task', service_rate,
                         f"{service_rate / client_rate:.2f} x client (goal >= 0.9)",
                         f"first job on 200 rows: {cold:.1f} s; {errors} errors"))  # fmt: skip
        finally:
            serve.stop()
    spark.stop()
    table = "\n".join(
        ["| what | rows/s | ratio | note |", "|---|---:|---|---|"]
        + [f"| {what} | {rate:.0f} | {ratio} | {note} |" for what, rate, ratio, note in rows]
    )
    results_page(
        "spark",
        f"`make spark-bench`: {n:,} GoEmotions dev and test texts on `{MODEL}`, {cores} cores shared by "
        "everything below (Spark's JVM and Python workers, the service, the client). Spark runs timed "
        "warm, to Spark's noop sink.",
        table,
        out=args.out,
    )


if __name__ == "__main__":
    main()
