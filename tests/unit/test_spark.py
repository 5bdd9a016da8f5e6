"""integrations.spark without a JVM: row errors, the length order and its undoing, plans, formats."""

from __future__ import annotations

import pytest

from integrations.spark import cli
from integrations.spark.rows import (
    NULL_TEXT,
    Local,
    Plan,
    RowResult,
    Service,
    _by_length,
    _place,
    error_row,
    scorer_for,
)

pytestmark = pytest.mark.unit


def test_a_rows_error_names_the_text_not_its_place_in_a_call():
    assert error_row("INVALID_ARGUMENT", "texts[17]: is 12000 characters long; the limit is 10000").error == (
        "INVALID_ARGUMENT: text: is 12000 characters long; the limit is 10000"
    )
    assert error_row("UNAVAILABLE", "gateway gone").error == "UNAVAILABLE: gateway gone"
    assert NULL_TEXT.scores is None and NULL_TEXT.error == "INVALID_ARGUMENT: text: is null"


def test_texts_go_shortest_first_and_come_back_in_input_order():
    texts = ["ccc", None, "a", "bb", "a2", None]
    order = _by_length(texts)
    assert order == [2, 3, 4, 0]  # nulls are never sent; equal lengths keep input order
    answers = [RowResult(model=texts[i]) for i in order]
    placed = _place(texts, order, answers)
    assert [r.model for r in placed] == ["ccc", None, "a", "bb", "a2", None]
    assert placed[1] is NULL_TEXT and placed[5] is NULL_TEXT


def test_plans_hide_the_token_and_reject_what_cannot_work():
    plan = Plan(options=None, service=Service(), token="secret-token")  # type: ignore[arg-type]
    assert "secret-token" not in repr(plan)
    with pytest.raises(ValueError, match="concurrency"):
        Service(concurrency=0)
    with pytest.raises(ValueError, match="service or a local model"):
        scorer_for(Plan(options=None))  # type: ignore[arg-type]
    assert Local("repo").threads == 0  # 0: the task's CPUs


def test_the_input_format_comes_from_the_files(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    assert cli.input_format(str(tmp_path / "a.jsonl"), None) == "json"
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(b"")
    (folder / "_SUCCESS").write_bytes(b"")  # Spark's markers are not data
    assert cli.input_format(str(folder), None) == "parquet"
    (folder / "extra.csv").write_text("text\n")
    with pytest.raises(cli.UsageError, match="--input-format"):
        cli.input_format(str(folder), None)
    assert cli.input_format(str(folder), "csv") == "csv"
    with pytest.raises(cli.UsageError, match="does not exist"):
        cli.input_format(str(tmp_path / "missing"), None)


def test_the_command_refuses_an_existing_output_before_starting_spark(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("text\nhello\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "part-00000.parquet").write_bytes(b"")
    assert cli.main(["score", str(src), str(tmp_path / "out"), "--text-col", "text"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_service_mode_opens_a_channel_per_task_so_new_replicas_get_work():
    from integrations.spark.rows import Options

    plan = Plan(Options(), service=Service(target="127.0.0.1:1"))  # never called: no server needed
    first, owned = scorer_for(plan)
    second, _ = scorer_for(plan)
    assert owned and first is not second
    first.close()
    second.close()


def test_a_failed_runs_leftover_folder_is_not_an_output_to_protect(tmp_path):
    out = tmp_path / "scored"
    assert not cli.holds_data(out)
    out.mkdir()
    (out / "_temporary").mkdir()
    assert not cli.holds_data(out)
    (out / "part-00000.parquet").write_bytes(b"")
    assert cli.holds_data(out)


def test_a_failed_jobs_cause_is_the_workers_exception():
    trace = (
        "An error occurred while calling o88.parquet.\n: org.apache.spark.SparkException: Job aborted.\n"
        'Traceback (most recent call last):\n  File "rows.py", line 191, in _build\n'
        "FileNotFoundError: model repository repo is not on this executor\n\tat org.apache.spark..."
    )
    assert (
        cli.cause(RuntimeError(trace)) == "FileNotFoundError: model repository repo is not on this executor"
    )
    assert cli.cause(RuntimeError("\nplain failure")) == "plain failure"
    worker = (
        "An exception was thrown from the Python worker:\nTraceback (most recent call last):\n"
        '  File "routing.py", line 96, in resolve\n    raise ModelNotFound(...)\n'
        "gateway.errors.ModelNotFound: model 'nosuch' is not served; available: goemotions"
    )
    assert (
        cli.cause(RuntimeError(worker))
        == "gateway.errors.ModelNotFound: model 'nosuch' is not served; available: goemotions"
    )
