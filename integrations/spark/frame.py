"""``score(df, text_col, ...)``: a Spark DataFrame with each row's emotions in typed columns.

Each partition is scored in ``mapInPandas`` (Arrow batches) by the worker's scorer from
:mod:`integrations.spark.rows`, either through the service or with the served graph in the
executor; the result schema is declared here, never inferred. Rows keep their order and their
columns; the result columns are appended (``emotion_`` prefix by default):

=====================  =========================  ==============================================
column                 type                       meaning
=====================  =========================  ==============================================
``emotion_predicted``  array<string>              predicted labels, highest score first
``emotion_scores``     map<string, double>        every label of the view and its score
``emotion_score_type`` string                     ``sigmoid`` (multi-label) or ``softmax``
``emotion_token_count`` int                       tokens of the text, special tokens included
``emotion_truncated``  boolean                    part of the text was not read by the model
``emotion_model``      string                     the model that answered (real name)
``emotion_model_version`` string                  its version
``emotion_error``      string                     null, or ``CODE: message`` (the row is unscored)
=====================  =========================  ==============================================

A row that cannot be scored (null or blank text, too long, ...) gets its error and nulls in the
other result columns; the job does not fail for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from integrations.spark.rows import Local, Options, Plan, RowResult, Service, scorer_for

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

DEFAULT_PREFIX = "emotion_"
DEFAULT_TARGET = "127.0.0.1:50051"
# Spark conf keys, then environment variables, for what a job's code need not name.
CONF_TARGET, ENV_TARGET = "spark.emotionaware.target", "EMOTIONAWARE_TARGET"
CONF_TOKEN, ENV_TOKEN = "spark.emotionaware.token", "EMOTIONAWARE_TOKEN"
CONF_REPOSITORY, ENV_REPOSITORY = "spark.emotionaware.repository", "EMOTIONAWARE_MODEL_REPOSITORY"
RESULT_COLUMNS = (
    "predicted",
    "scores",
    "score_type",
    "token_count",
    "truncated",
    "model",
    "model_version",
    "error",
)


def result_schema(prefix: str = DEFAULT_PREFIX) -> StructType:
    """The appended columns, declared (see the module's table)."""
    from pyspark.sql.types import (
        ArrayType,
        BooleanType,
        DoubleType,
        IntegerType,
        MapType,
        StringType,
        StructField,
        StructType,
    )

    types = {
        "predicted": ArrayType(StringType(), containsNull=False),
        "scores": MapType(StringType(), DoubleType(), valueContainsNull=False),
        "score_type": StringType(),
        "token_count": IntegerType(),
        "truncated": BooleanType(),
        "model": StringType(),
        "model_version": StringType(),
        "error": StringType(),
    }
    return StructType([StructField(prefix + name, types[name], nullable=True) for name in RESULT_COLUMNS])


def _setting(spark: SparkSession, given: str | None, conf: str, env: str, default: str | None) -> str | None:
    """An explicit argument, else the Spark conf, else the driver's environment, else ``default``."""
    if given is not None:
        return given
    value = spark.conf.get(conf, None)
    if value:
        return value
    return os.environ.get(env) or default


def plan_for(
    spark: SparkSession,
    *,
    mode: Literal["local", "service"],
    options: Options,
    repository: str | None = None,
    routing_file: str = "",
    threads: int = 0,
    target: str | None = None,
    token: str | None = None,
    tls: bool = False,
    ca_file: str | None = None,
    concurrency: int = 2,
    call_timeout_s: float = 300.0,
) -> Plan:
    """What the executors run, with settings taken from the arguments, Spark conf or environment."""
    if mode == "service":
        service = Service(
            target=_setting(spark, target, CONF_TARGET, ENV_TARGET, DEFAULT_TARGET) or DEFAULT_TARGET,
            tls=tls,
            ca_file=ca_file,
            concurrency=concurrency,
            call_timeout_s=call_timeout_s,
        )
        return Plan(options, service=service, token=_setting(spark, token, CONF_TOKEN, ENV_TOKEN, None))
    if mode == "local":
        from emotionaware.paths import MODEL_REPOSITORY

        path = _setting(
            spark, repository, CONF_REPOSITORY, ENV_REPOSITORY, str(Path(MODEL_REPOSITORY).resolve())
        )
        return Plan(options, local=Local(str(path), routing_file, threads))
    raise ValueError(f"mode must be 'local' or 'service', not {mode!r}")


def _columns(results: list[RowResult], prefix: str) -> dict[str, pd.Series | pd.arrays.ExtensionArray]:
    import pandas as pd

    return {
        prefix + "predicted": pd.Series([None if r.predicted is None else list(r.predicted) for r in results],
                                        dtype=object),
        prefix + "scores": pd.Series([r.scores for r in results], dtype=object),
        prefix + "score_type": pd.Series([r.score_type for r in results], dtype=object),
        prefix + "token_count": pd.array([r.token_count for r in results], dtype="Int32"),
        prefix + "truncated": pd.array([r.truncated for r in results], dtype="boolean"),
        prefix + "model": pd.Series([r.model for r in results], dtype=object),
        prefix + "model_version": pd.Series([r.model_version for r in results], dtype=object),
        prefix + "error": pd.Series([r.error for r in results], dtype=object),
    }  # fmt: skip


def shipped(repository: str) -> str:
    """``repository`` as this executor finds it: in its working folder (``--archives
    repo.tar.gz#repo``, a shared file system, an absolute path), else among the files the job
    shipped with ``SparkContext.addArchive`` / ``addFile`` (Spark's files folder)."""
    from pyspark import SparkFiles

    if Path(repository).exists():
        return repository
    candidate = Path(SparkFiles.getRootDirectory()) / repository
    return str(candidate) if candidate.exists() else repository


def score_batches(
    plan: Plan, text_col: str, prefix: str, batches: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """The function each task runs in ``mapInPandas``: its Arrow batches, scored, in order."""
    from pyspark import TaskContext

    context = TaskContext.get()
    if plan.local is not None:
        plan = replace(plan, local=replace(plan.local, repository=shipped(plan.local.repository)))
    scorer, owned = scorer_for(plan, context.cpus() if context is not None else 1)
    try:
        for batch in batches:
            texts = [t if isinstance(t, str) else None for t in batch[text_col].tolist()]
            columns = _columns(scorer.score(texts, plan.options), prefix)
            out = batch.reset_index(drop=True)
            for name, values in columns.items():
                out[name] = values
            yield out
    finally:
        if owned:
            scorer.close()


def score(
    df: DataFrame,
    text_col: str,
    *,
    mode: Literal["local", "service"] = "local",
    model: str = "",
    view: str = "native",
    threshold: float | None = None,
    long_text: str = "",
    model_version: str = "",
    prefix: str = DEFAULT_PREFIX,
    repository: str | None = None,
    routing_file: str = "",
    threads: int = 0,
    target: str | None = None,
    token: str | None = None,
    tls: bool = False,
    ca_file: str | None = None,
    concurrency: int = 2,
    call_timeout_s: float = 300.0,
) -> DataFrame:
    """``df`` with the emotions of ``text_col`` in typed columns (lazy, like any transformation).

    Args:
        df: any DataFrame; ``text_col`` must be a string column.
        mode: ``"local"`` scores in the executors with the served graph (no service needed);
            ``"service"`` calls the gateway's ClassifyBatch as bulk traffic.
        model, view, threshold, long_text, model_version: as in the API's ClassifyOptions
            (``long_text``: ``""`` for the model's default, ``"truncate"`` or ``"chunk"``).
        prefix: of the appended columns' names.
        repository, routing_file, threads: local mode; the model repository as the executors
            see it (default: conf ``spark.emotionaware.repository``, env
            ``EMOTIONAWARE_MODEL_REPOSITORY``, else this checkout's ``model_repository``);
            ``threads`` per task (0: ``spark.task.cpus``).
        target, token, tls, ca_file, concurrency, call_timeout_s: service mode; target and token
            default to conf ``spark.emotionaware.target`` / ``spark.emotionaware.token``, then
            env ``EMOTIONAWARE_TARGET`` / ``EMOTIONAWARE_TOKEN`` (a token may also be left to the
            executors' own ``EMOTIONAWARE_TOKEN``); ``concurrency`` calls in flight per task;
            ``call_timeout_s`` bounds a call's retries (they honour ``retry-after-ms``).
    """
    plan = plan_for(
        df.sparkSession, mode=mode, options=Options(model, view, threshold, long_text, model_version),
        repository=repository, routing_file=routing_file, threads=threads, target=target, token=token,
        tls=tls, ca_file=ca_file, concurrency=concurrency, call_timeout_s=call_timeout_s,
    )  # fmt: skip
    return score_with(df, text_col, plan, prefix)


def score_with(df: DataFrame, text_col: str, plan: Plan, prefix: str = DEFAULT_PREFIX) -> DataFrame:
    """:func:`score` with its settings already made into a :class:`Plan` (see :func:`plan_for`)."""
    from pyspark.sql.types import StringType, StructType

    if text_col not in df.columns:
        raise ValueError(f"text_col {text_col!r} is not a column; columns: {', '.join(df.columns)}")
    if not isinstance(df.schema[text_col].dataType, StringType):
        raise ValueError(
            f"text_col {text_col!r} must be a string column, not {df.schema[text_col].dataType.simpleString()}"
        )
    added = result_schema(prefix)
    clash = sorted(set(df.columns) & set(added.fieldNames()))
    if clash:
        raise ValueError(f"the input already has columns {', '.join(clash)}: choose another prefix")
    schema = StructType(df.schema.fields + added.fields)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return score_batches(plan, text_col, prefix, batches)

    return df.mapInPandas(run, schema)
