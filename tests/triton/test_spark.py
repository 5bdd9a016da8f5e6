"""Spark (``local[2]``) scoring 10,000 GoEmotions texts in both modes, against the session's real
Triton and gateway: every row exactly once, the same answers as the gateway, per-row errors in
place, a gateway restart ridden out, a retried task, and the command on Parquet, CSV and JSONL.

Spark jobs run in a worker thread: the session's gateway answers on this test loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pandas as pd
import pytest

from emotionaware.datasets import load_goemotions
from emotionaware.v1 import emotion_pb2 as pb
from integrations.spark import cli, score
from launcher.tritonserver import free_port

pytestmark = pytest.mark.triton

HOSTILE = {  # row id -> text, and the error both modes must give it
    10_000: (None, "INVALID_ARGUMENT: text: is null"),
    10_001: ("", "INVALID_ARGUMENT: text: must contain at least one visible character"),
    10_002: (" \u200b\t", "INVALID_ARGUMENT: text: must contain at least one visible character"),
    10_003: ("x" * 12_000, "INVALID_ARGUMENT: text: is 12000 characters long; the limit is 10000"),
}


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    # py4j says "Closing down clientserver connection" at interpreter exit, after pytest closed
    # its streams (a logging error in the CI log).
    logging.getLogger("py4j").setLevel(logging.WARNING)
    saved = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # executors run this interpreter
    # local[2, 3]: two cores, and a failed task is retried (up to 3 attempts) as on a cluster.
    session = (
        SparkSession.builder.master("local[2,3]")
        .appName("emotionaware-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    if saved is None:
        os.environ.pop("PYSPARK_PYTHON", None)
    else:
        os.environ["PYSPARK_PYTHON"] = saved


@pytest.fixture(scope="module")
def corpus(data_dir) -> pd.DataFrame:
    goemotions = load_goemotions(data_dir)
    texts = [e.text for e in goemotions.dev + goemotions.test][:10_000]
    rows = [(i, t) for i, t in enumerate(texts)] + [(i, t) for i, (t, _) in HOSTILE.items()]
    return pd.DataFrame(rows, columns=["id", "text"])


def frame(spark, corpus: pd.DataFrame, partitions: int = 4):
    return spark.createDataFrame(corpus, "id long, text string").repartition(partitions)


def collected(df) -> pd.DataFrame:
    out = df.toPandas()
    assert out["id"].is_unique
    return out.set_index("id").sort_index()


def max_score_difference(a: pd.Series, b: pd.Series) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        x, y = dict(x), dict(y)
        assert x.keys() == y.keys()
        worst = max(worst, max(abs(x[k] - y[k]) for k in x))
    return worst


async def test_both_modes_score_every_row_once_with_the_gateways_answers(
    spark, corpus, exported_repo, gateway_target, stub
):
    df = frame(spark, corpus)
    local = await asyncio.to_thread(
        lambda: collected(score(df, "text", mode="local", repository=str(exported_repo)))
    )
    service = await asyncio.to_thread(
        lambda: collected(score(df, "text", mode="service", target=gateway_target.listen))
    )
    for out in (local, service):
        assert list(out.index) == sorted(corpus["id"])  # every row, once
        errors = out["emotion_error"].dropna()
        assert dict(errors) == {i: e for i, (_, e) in HOSTILE.items()}
        assert out.loc[list(HOSTILE), "emotion_scores"].isna().all()
        scored = out.drop(index=list(HOSTILE))
        assert (
            scored["emotion_model"].eq("goemotions").all()
            and scored["emotion_score_type"].eq("sigmoid").all()
        )
        assert scored["emotion_scores"].map(len).eq(28).all()  # every label of the view
    ok = local.drop(index=list(HOSTILE))
    theirs = service.drop(index=list(HOSTILE))
    assert max_score_difference(ok["emotion_scores"], theirs["emotion_scores"]) <= 1e-4
    assert ok["emotion_predicted"].map(list).tolist() == theirs["emotion_predicted"].map(list).tolist()
    assert ok["emotion_token_count"].tolist() == theirs["emotion_token_count"].tolist()
    assert (ok["emotion_model_version"] == theirs["emotion_model_version"]).all()
    # And the service's own unary answer for a sample (another request path, same scores).
    options = pb.ClassifyOptions(return_all_scores=True)
    for i in range(0, 10_000, 500):
        reply = await stub.Classify(pb.ClassifyRequest(text=corpus.loc[i, "text"], options=options))
        unary = {s.label: s.score for s in reply.scores}
        assert max(abs(unary[k] - v) for k, v in dict(local.loc[i, "emotion_scores"]).items()) <= 1e-4


def fail_first_attempt(batches):
    """Passes rows through, but the first attempt of partition 0 dies after its first batch."""
    from pyspark import TaskContext

    context = TaskContext.get()
    for n, batch in enumerate(batches):
        yield batch
        if n == 0 and context.partitionId() == 0 and context.attemptNumber() == 0:
            raise RuntimeError("injected task failure")


async def test_a_retried_task_neither_duplicates_nor_loses_rows(spark, corpus, exported_repo, tmp_path):
    part = corpus.iloc[:1000]
    scored = score(frame(spark, part, 2), "text", mode="local", repository=str(exported_repo))
    out = tmp_path / "scored"

    def job():
        # Small Arrow batches, so the failing task has written some rows before it dies.
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "200")
        try:
            scored.mapInPandas(fail_first_attempt, scored.schema).write.parquet(str(out))
        finally:
            spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
        return spark.read.parquet(str(out)).toPandas()

    rows = await asyncio.to_thread(job)
    assert sorted(rows["id"]) == list(range(1000))  # each row exactly once
    assert (out / "_SUCCESS").exists()


def start_gateway(port: int, triton_url: str, repository: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "--listen", f"127.0.0.1:{port}", "--http-listen", "",
         "--metrics-port", "0", "--triton-url", triton_url, "--model-repository", str(repository)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True,
    )  # fmt: skip


async def wait_serving(port: int, timeout_s: float = 60) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"no gateway serving on port {port}")


def calls_in(log: Path) -> int:
    return log.read_text().count("ClassifyBatch")


async def test_service_mode_rides_out_a_gateway_restart(spark, corpus, exported_repo, triton, tmp_path):
    port = free_port()
    first_log, second_log = tmp_path / "gateway-1.log", tmp_path / "gateway-2.log"
    gateway = start_gateway(port, triton.grpc_url, exported_repo, first_log)
    try:
        await wait_serving(port)
        part = corpus.iloc[:4000]
        # One call in flight per task: the job spans the restart.
        scored = score(
            frame(spark, part, 2), "text", mode="service", target=f"127.0.0.1:{port}", concurrency=1
        )
        job = asyncio.create_task(asyncio.to_thread(lambda: collected(scored)))
        while calls_in(first_log) < 3:
            assert not job.done() and gateway.poll() is None
            await asyncio.sleep(0.1)
        gateway.send_signal(signal.SIGTERM)
        await asyncio.to_thread(gateway.wait, 30)
        assert not job.done(), "the job ended before the restart: nothing was tested"
        await asyncio.sleep(1.0)  # a second without any gateway
        gateway = start_gateway(port, triton.grpc_url, exported_repo, second_log)
        out = await asyncio.wait_for(job, 300)
    finally:
        gateway.send_signal(signal.SIGTERM)
        await asyncio.to_thread(gateway.wait, 30)
    assert list(out.index) == list(range(4000))
    assert out["emotion_error"].isna().all(), out["emotion_error"].dropna().value_counts().head().to_dict()
    assert calls_in(second_log) > 0  # the restarted gateway answered part of the job


def written(out: Path, fmt: str) -> pd.DataFrame:
    """The command's output as a user reads it: ids as integers, labels as lists, scores as dicts."""
    parts = sorted(out.glob("part-*"))
    if fmt == "parquet":
        table = pd.concat(pd.read_parquet(p) for p in parts)
    elif fmt == "csv":  # labels joined by ';', scores a JSON object; CSV columns are read as strings
        table = pd.concat(pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in parts)
        table["emotion_predicted"] = table["emotion_predicted"].map(
            lambda v: v.split(";") if isinstance(v, str) else None
        )
        table["emotion_scores"] = table["emotion_scores"].map(
            lambda v: json.loads(v) if isinstance(v, str) else None
        )
    else:
        table = pd.concat(pd.read_json(p, lines=True) for p in parts)
    # Spark's JSON writer leaves null fields out (NaN here); Parquet gives arrays.
    table["emotion_predicted"] = table["emotion_predicted"].map(
        lambda v: None if isinstance(v, float | None) else list(v)
    )
    return table.astype({"id": int}).set_index("id").sort_index()


@pytest.mark.parametrize(("fmt", "out_fmt"), [("parquet", "parquet"), ("csv", "csv"), ("jsonl", "json")])
async def test_the_command_on_parquet_csv_and_jsonl(
    spark, corpus, exported_repo, tmp_path, fmt, out_fmt, capsys
):
    posts = corpus.iloc[[*range(200), 10_001, 10_003]].assign(day=lambda d: d["id"] % 3)
    path = tmp_path / f"posts.{fmt}"
    if fmt == "parquet":
        posts.to_parquet(path)
    elif fmt == "csv":
        posts.to_csv(path, index=False)
    else:
        posts.to_json(path, orient="records", lines=True)
    out = tmp_path / "scored"
    argv = [
        "score",
        str(path),
        str(out),
        "--text-col",
        "text",
        "--repository",
        str(exported_repo),
        "--output-format",
        out_fmt,
    ]
    assert await asyncio.to_thread(cli.main, argv) == 0
    facts = json.loads(capsys.readouterr().out)
    assert (facts["rows"], facts["errors"]) == (202, 2)
    first = written(out, out_fmt)
    assert sorted(first.index) == sorted(posts["id"])
    assert first["emotion_error"].notna().sum() == 2
    scores = first["emotion_scores"].dropna()
    assert len(scores) == 200 and scores.map(len).eq(28).all()
    assert await asyncio.to_thread(cli.main, argv) == 2  # an existing output is not touched
    assert "--overwrite" in capsys.readouterr().err
    assert await asyncio.to_thread(cli.main, [*argv, "--overwrite"]) == 0  # the rerun: the same rows
    again = written(out, out_fmt)
    assert again["emotion_predicted"].tolist() == first["emotion_predicted"].tolist()


async def test_the_worked_example_of_the_docs(spark, exported_repo, tmp_path, capsys):
    """docs/spark.md: the shipped tickets as a Parquet folder -> scored -> emotion share by day."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location(
        "spark_share_by_day", root / "examples" / "spark_share_by_day.py"
    )
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    posts, scored = tmp_path / "posts", tmp_path / "scored"

    def run():
        example.write_posts(spark, str(root / "examples" / "support-tickets.csv"), str(posts))
        argv = ["score", str(posts), str(scored), "--text-col", "text", "--view", "ekman"]
        assert cli.main([*argv, "--repository", str(exported_repo)]) == 0
        return example.share_by_day(spark.read.parquet(str(scored))).toPandas()

    table = await asyncio.to_thread(run)
    assert len(list(posts.glob("part-*.parquet"))) == 3
    facts = json.loads(capsys.readouterr().out)
    assert facts["rows"] == 320 and facts["errors"] == 3  # the file's three blank messages
    assert set(table["label"]) <= {"anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"}
    assert table.groupby("day")["posts"].first().sum() == 317  # every scored post counted on its day
    assert table["share"].between(0, 1).all()


async def test_the_benchmarks_measuring_code(spark, corpus, exported_repo, gateway_target):
    """bench.spark's pieces on 300 texts (``make spark-bench`` runs them on 10,000)."""
    from bench import spark as spark_bench

    texts = corpus["text"].iloc[:300].tolist()
    cold, warm, errors = await asyncio.to_thread(
        spark_bench.timed_spark, spark, texts, 2, mode="local", repository=str(exported_repo)
    )
    assert errors == 0 and cold > 0 and warm > 0
    seconds, client_errors = await asyncio.to_thread(spark_bench.one_client, gateway_target.listen, texts)
    assert client_errors == 0 and seconds > 0


@pytest.mark.parametrize("model", ["goemotions", "poems"])  # conversation's golden texts carry context
async def test_local_mode_reproduces_the_golden_scores(spark, exported_repo, data_dir, model):
    from launcher import golden

    committed = golden.load(model)
    texts = golden.inputs(model, data_dir)
    df = spark.createDataFrame([(i, g.text) for i, g in enumerate(texts)], "id long, text string")
    out = await asyncio.to_thread(
        lambda: collected(
            score(df.repartition(2), "text", mode="local", model=model, repository=str(exported_repo))
        )
    )
    thresholds = committed.served[0].thresholds
    served = [
        golden.Served(tuple(dict(s)[k] for k in committed.labels), thresholds, frozenset(p))
        for s, p in zip(out["emotion_scores"], out["emotion_predicted"], strict=True)
    ]
    result = golden.compare(committed, texts, served)
    assert result.max_diff <= golden.TOLERANCE and not result.flipped, result.row()


async def test_local_mode_from_an_archive_the_job_ships(spark, corpus, exported_repo, tmp_path):
    """SparkContext.addArchive (spark-submit --archives works alike): the executors find the
    repository among the job's files."""
    import tarfile

    archive = tmp_path / "repo.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(exported_repo / "goemotions", arcname="goemotions")
    spark.sparkContext.addArchive(f"{archive}#shipped-repo")
    df = frame(spark, corpus.iloc[:200], 2)
    shipped = await asyncio.to_thread(
        lambda: collected(score(df, "text", mode="local", repository="shipped-repo"))
    )
    direct = await asyncio.to_thread(
        lambda: collected(score(df, "text", mode="local", repository=str(exported_repo)))
    )
    assert shipped["emotion_error"].isna().all()
    # Same graph; batches may form differently (float noise across batch shapes: ~1e-7).
    assert max_score_difference(shipped["emotion_scores"], direct["emotion_scores"]) <= 1e-6


async def test_spark_submit_with_the_repository_as_an_archive(exported_repo, tmp_path):
    """docs/spark.md's cluster command, on a local master: spark-submit runs the command's file,
    the model repository travels as ``--archives repo.tar#repo``."""
    import tarfile

    with tarfile.open(tmp_path / "repo.tar", "w") as tar:
        tar.add(exported_repo / "goemotions", arcname="goemotions")
    (tmp_path / "posts.jsonl").write_text('{"id": 1, "text": "Thank you so much!"}\n{"id": 2, "text": ""}\n')
    script = str(Path(cli.__file__).resolve())
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]", "--archives", "repo.tar#repo",
        script, "score", "posts.jsonl", "scored", "--text-col", "text", "--repository", "repo",
        cwd=tmp_path, env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert json.loads(out.decode().strip().splitlines()[-1])["errors"] == 1
    scored = pd.read_parquet(tmp_path / "scored").set_index("id")
    assert list(scored.loc[1, "emotion_predicted"]) == ["gratitude"]
