"""SubmitFeedback against real databases: SQLite (the default) and a PostgreSQL server the tests
start. Migrations up and down, 1,000 concurrent submissions, opt-out text never stored, every
malformed submission refused, and the database going away while classification answers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace

import grpc
import pytest
import sqlalchemy as sa

from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.feedback import store
from gateway.server import GatewayServer
from tests.helpers import PrivatePostgres

pytestmark = pytest.mark.grpc

TEXT = "You promised a refund three weeks ago and I'm still waiting."


@pytest.fixture(scope="module")
def postgres():
    server = PrivatePostgres()
    server.start()
    yield server
    server.stop()
    server.remove()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path, postgres) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/feedback.sqlite3"
    engine = sa.create_engine(postgres.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = f"feedback_{tmp_path.name.replace('-', '_').lower()}"[:60]
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


async def serve(grpc_settings, backend, database: str, tmp_path, **extra):
    settings = replace(
        grpc_settings,
        listen="127.0.0.1:0",
        http_listen="",
        routing_file="",
        feedback_database=database,
        request_id_key_file=str(tmp_path / "request-id.key"),
        **extra,
    )
    server = GatewayServer(settings, backend=backend)
    port = await server.start()
    return server, f"127.0.0.1:{port}"


async def answer(stub, text: str = TEXT, model: str = "goemotions") -> pb.ClassifyResponse:
    return await stub.Classify(pb.ClassifyRequest(text=text, model=model), timeout=30)


def feedback(reply, verdict=pb.VERDICT_WRONG, labels=("anger",), **fields) -> pb.SubmitFeedbackRequest:
    return pb.SubmitFeedbackRequest(
        request_id=reply.request_id, verdict=verdict, labels=list(labels), **fields
    )


async def test_verdicts_are_stored_with_the_client_model_version_and_labels(
    grpc_settings, backend, database, tmp_path
):
    server, target = await serve(grpc_settings, backend, database, tmp_path)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            reply = await answer(stub)
            assert reply.request_id.startswith("ea1.")
            first = await stub.SubmitFeedback(feedback(reply, labels=("annoyance", "anger"), text=TEXT))
            # The same answer again: the verdict is replaced, not duplicated.
            again = await stub.SubmitFeedback(
                feedback(reply, verdict=pb.VERDICT_CORRECT, labels=("annoyance",))
            )
            assert again.feedback_id == first.feedback_id
            kept = await answer(stub, "Thank you so much, this made my day!")
            await stub.SubmitFeedback(
                feedback(
                    kept,
                    pb.VERDICT_CORRECT,
                    ("gratitude",),
                    text="Thank you so much, this made my day!",
                    store_text=True,
                )
            )
    finally:
        await server.stop()
    rows = store.rows(store.engine_for(database))
    assert len(rows) == 2
    opted_out, opted_in = rows
    assert (opted_out["client"], opted_out["model"], opted_out["model_version"]) == (
        "anonymous",
        "goemotions",
        reply.model_version,
    )
    assert (opted_out["verdict"], json.loads(opted_out["labels"])) == ("correct", ["annoyance"])
    assert opted_out["text"] is None and opted_out["text_hash"] is None  # the replacement sent no text
    assert opted_in["text"] == "Thank you so much, this made my day!" and opted_in["text_hash"] is None


async def test_opt_out_text_is_never_in_the_database(grpc_settings, backend, tmp_path):
    path = tmp_path / "feedback.sqlite3"
    server, target = await serve(grpc_settings, backend, f"sqlite:///{path}", tmp_path)
    secret = "My therapist said the panic attacks are getting worse, please help."
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            reply = await answer(stub, secret)
            await stub.SubmitFeedback(feedback(reply, labels=("fear", "nervousness"), text=secret))
    finally:
        await server.stop()
    with sqlite3.connect(path) as connection:
        (text, digest), = connection.execute("SELECT text, text_hash FROM feedback").fetchall()  # fmt: skip
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert text is None and len(digest) == 64 and secret not in digest
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("feedback.sqlite3*"))
    assert secret.encode() not in raw and b"panic attacks" not in raw


async def test_a_thousand_concurrent_submissions_are_each_stored_once(
    grpc_settings, backend, database, tmp_path
):
    server, target = await serve(grpc_settings, backend, database, tmp_path)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            texts = [f"Order {i} arrived broken, again." for i in range(1000)]
            replies = []
            for start in range(0, 1000, 250):
                batch = await stub.ClassifyBatch(
                    pb.ClassifyBatchRequest(texts=texts[start : start + 250]), timeout=120
                )
                replies += [item.result for item in batch.items]
            assert len({r.request_id for r in replies}) == 1000
            outcomes = await asyncio.gather(
                *(stub.SubmitFeedback(feedback(r, labels=("disappointment",)), timeout=60) for r in replies)
            )
    finally:
        await server.stop()
    assert len({o.feedback_id for o in outcomes}) == 1000
    rows = store.rows(store.engine_for(database))
    assert len(rows) == 1000 and {r["request_id"] for r in rows} == {r.request_id for r in replies}


async def test_migrations_go_up_and_down(database):
    engine = store.engine_for(database)
    store.migrate(database)
    assert {"feedback", "feedback_meta"} <= set(sa.inspect(engine).get_table_names())
    store.migrate(database, "base")
    engine.dispose()
    assert not {"feedback", "feedback_meta"} & set(sa.inspect(store.engine_for(database)).get_table_names())
    store.migrate(database)
    assert {"feedback", "feedback_meta"} <= set(sa.inspect(store.engine_for(database)).get_table_names())


async def test_malformed_submissions_are_invalid_argument_naming_the_field(grpc_settings, backend, tmp_path):
    server, target = await serve(grpc_settings, backend, f"sqlite:///{tmp_path}/f.sqlite3", tmp_path)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            reply = await answer(stub)
            single = await answer(stub, "I can't believe it!", "conversation")
            forged = reply.request_id[:-2] + ("AA" if not reply.request_id.endswith("AA") else "BB")
            cases = [
                (pb.SubmitFeedbackRequest(verdict=pb.VERDICT_WRONG, labels=["anger"]), "request_id: must be the request_id of an answer"),
                (pb.SubmitFeedbackRequest(request_id="x" * 500, verdict=1, labels=["anger"]), "request_id: is 500 characters long; the limit is 400"),
                (pb.SubmitFeedbackRequest(request_id="ea1.abc.def", verdict=1, labels=["anger"]), "request_id: 'ea1.abc.def' is not a request id this service issued"),
                (pb.SubmitFeedbackRequest(request_id=forged, verdict=1, labels=["anger"]), "request_id: "),
                (feedback(reply, verdict=pb.VERDICT_UNSPECIFIED), "verdict: must be VERDICT_CORRECT or VERDICT_WRONG; got 0"),
                (feedback(reply, labels=()), "labels: must name the labels the text should have"),
                (feedback(reply, labels=("angr",)), "labels: 'angr' is not a label of model goemotions; its labels: admiration"),
                (feedback(reply, labels=("anger", "anger")), "labels: names a label twice"),
                (feedback(single, labels=("anger", "sadness")), "labels: model conversation is single-label: name exactly one label; got 2"),
                (feedback(reply, text="another text"), "text: is not the text of the answer request_id names"),
                (feedback(reply, store_text=True), "store_text: needs the text: send it in text"),
            ]  # fmt: skip
            for request, message in cases:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.SubmitFeedback(request)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (
                    message,
                    caught.value.details(),
                )
                assert caught.value.details().startswith(message), caught.value.details()
    finally:
        await server.stop()


async def test_ids_from_another_key_are_refused_and_a_shared_key_is_accepted(
    grpc_settings, backend, tmp_path
):
    one, target_one = await serve(grpc_settings, backend, f"sqlite:///{tmp_path}/f.sqlite3", tmp_path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    two, target_two = await serve(grpc_settings, backend, f"sqlite:///{tmp_path}/f.sqlite3", other_dir)
    same, target_same = await serve(grpc_settings, backend, f"sqlite:///{tmp_path}/f.sqlite3", tmp_path)
    try:
        async with grpc.aio.insecure_channel(target_one) as channel:
            reply = await answer(emotion_pb2_grpc.EmotionServiceStub(channel))
        async with grpc.aio.insecure_channel(target_two) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await emotion_pb2_grpc.EmotionServiceStub(channel).SubmitFeedback(feedback(reply))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        async with grpc.aio.insecure_channel(target_same) as channel:  # a replica with the key file
            assert (
                await emotion_pb2_grpc.EmotionServiceStub(channel).SubmitFeedback(feedback(reply))
            ).feedback_id
    finally:
        for server in (one, two, same):
            await server.stop()


async def test_a_database_going_away_is_unavailable_for_feedback_only(
    grpc_settings, backend, postgres, tmp_path
):
    server, target = await serve(grpc_settings, backend, postgres.url, tmp_path)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            reply = await answer(stub)
            assert (await stub.SubmitFeedback(feedback(reply))).feedback_id
            postgres.stop()
            try:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.SubmitFeedback(feedback(await answer(stub)), timeout=30)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "feedback database is not reachable" in caught.value.details()
                for _ in range(20):  # classification goes on meanwhile
                    assert (await answer(stub)).scores
            finally:
                postgres.start()
            assert (await stub.SubmitFeedback(feedback(await answer(stub)), timeout=30)).feedback_id
    finally:
        await server.stop()


async def test_without_a_database_feedback_is_unimplemented(grpc_settings, backend, tmp_path):
    server, target = await serve(grpc_settings, backend, "", tmp_path)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.SubmitFeedback(feedback(await answer(stub)))
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop()


def _submission(
    client: str, request_id: str, text: str | None, store_text: bool, labels=("anger",)
) -> store.Submission:
    return store.Submission(
        client, request_id, "goemotions", "1", "wrong", labels, text, store_text, store.utcnow()
    )


def test_export_and_retention_commands(database, tmp_path, capsys):
    from gateway.feedback import cli

    store.migrate(database)
    engine = store.engine_for(database)
    store.write(engine, [
        _submission("support-ui", "a", "I waited two hours on hold.", True, ("annoyance", "anger")),
        _submission("support-ui", "b", "secret text", False),
        _submission("moderation", "c", "Get lost.", True),
    ])  # fmt: skip
    out = tmp_path / "feedback.jsonl"
    assert cli.main(["--database", database, "export", str(out), "--model", "goemotions"]) == 0
    assert "2 examples written" in capsys.readouterr().out
    from emotionaware.feedback_file import read_examples

    examples = read_examples(out)
    assert [(e.text, e.labels) for e in examples] == [
        ("I waited two hours on hold.", ("annoyance", "anger")),
        ("Get lost.", ("anger",)),
    ]
    assert "secret text" not in out.read_text()
    assert cli.main(["--database", database, "delete", "--client", "moderation"]) == 0
    assert "1 rows deleted" in capsys.readouterr().out
    assert cli.main(["--database", database, "delete", "--older-than-days", "1"]) == 0
    assert "0 rows deleted" in capsys.readouterr().out  # nothing is a day old
    assert cli.main(["--database", database, "delete", "--older-than-days", "0"]) == 0
    assert "2 rows deleted" in capsys.readouterr().out
    assert store.rows(store.engine_for(database)) == []


async def test_a_schema_newer_than_the_gateway_is_unavailable_not_a_hang(grpc_settings, backend, tmp_path):
    url = f"sqlite:///{tmp_path}/newer.sqlite3"
    store.migrate(url)
    with store.engine_for(url).begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    server, target = await serve(grpc_settings, backend, url, tmp_path)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.SubmitFeedback(feedback(await answer(stub)), timeout=30)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "schema revision 9999" in caught.value.details()
            with pytest.raises(grpc.aio.AioRpcError) as caught:  # U+0000 cannot be stored in PostgreSQL
                reply = await answer(stub, "nul\x00here")
                await stub.SubmitFeedback(feedback(reply, text="nul\x00here", store_text=True))
            assert (
                caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "U+0000" in caught.value.details()
            )
    finally:
        await server.stop()
