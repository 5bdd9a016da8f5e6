"""The command line on files and conversations against the real service: analyze (interrupted
by SIGINT and by SIGKILL, then resumed), every input format, chat, exit codes."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import sys
from pathlib import Path

import pytest

from emotionaware.datasets import load_goemotions

pytestmark = pytest.mark.triton


async def cli(target: str, *args: str, stdin: str = "", timeout: float = 300) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "--target", target, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
def tickets(tmp_path_factory, data_dir) -> Path:
    """5,000 rows: GoEmotions test texts, a blank text every 500 rows, one row with a stray cell."""
    texts = [e.text for e in load_goemotions(data_dir).test]
    path = tmp_path_factory.mktemp("files") / "tickets.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "created_at", "customer", "text"])
        for i in range(5000):
            text = "" if i % 500 == 7 else texts[i % len(texts)]
            row = [f"T{i:05d}", f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00Z", f"c{i % 40}", text]
            writer.writerow(row + (["stray"] if i == 1234 else []))
    return path


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_complete(records: list[dict], n: int) -> None:
    """Every input row exactly once, in input order, with its id."""
    assert [r["row"] for r in records] == list(range(n))
    assert [r["id"] for r in records] == [f"T{i:05d}" for i in range(n)]
    blank = [r for r in records if r["row"] % 500 == 7]
    assert all(r["error"]["code"] == "INVALID_ARGUMENT" for r in blank)
    assert (
        records[1234]["error"]["code"] == "INVALID_INPUT" and "5 cells" in records[1234]["error"]["message"]
    )
    good = [r for r in records if not r["error"]]
    assert len(good) == n - len(blank) - 1 and all(len(r["scores"]) == 28 for r in good)


async def interrupted(target: str, how: signal.Signals, out: Path, source: Path, at_least: int) -> int:
    """Start analyze, send ``how`` once ``at_least`` rows are written; its exit code."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "--target", target, "analyze", str(source), "-o", str(out),
        "--batch", "32", "--quiet", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    for _ in range(1200):
        await asyncio.sleep(0.05)
        if out.exists() and out.read_bytes().count(b"\n") >= at_least:
            break
    assert proc.returncode is None, "analyze ended before it could be interrupted"
    proc.send_signal(how)
    await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode


async def test_analyze_resumes_after_sigint_and_sigkill_with_every_row_once(
    gateway_target, tickets, tmp_path
):
    for how, expected in ((signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)):
        out = tmp_path / f"{how.name}.jsonl"
        code = await interrupted(gateway_target.listen, how, out, tickets, at_least=800)
        assert code == expected
        partial = out.read_bytes().count(b"\n")
        assert 800 <= partial < 5000
        code, stdout, err = await cli(
            gateway_target.listen, "analyze", str(tickets), "-o", str(out), "--quiet"
        )
        assert code == 0, err
        assert "5,000 of 5,000 rows" in stdout
        check_complete(rows_of(out), 5000)
        meta = json.loads((out.parent / (out.name + ".meta.json")).read_text())
        assert meta["done"] == meta["rows"] == 5000 and meta["errors"] == 11 and meta["finished"]
    # Run again: complete already, nothing is redone.
    code, stdout, _ = await cli(gateway_target.listen, "analyze", str(tickets), "-o", str(out), "--quiet")
    assert code == 0 and "5,000 of 5,000 rows" in stdout and len(rows_of(out)) == 5000
    # The report of this run: its figures are the results file's.
    code, stdout, err = await cli(gateway_target.listen, "report", str(out), "--json")
    assert code == 0, err
    figures, records = json.loads(stdout), rows_of(out)
    assert figures["rows"] == 5000 and figures["errors"] == 11
    predicted = [label for r in records for label in r["predicted"]]
    assert figures["counts"]["gratitude"] == predicted.count("gratitude") > 0
    assert "<svg" in out.with_suffix(".html").read_text()


async def test_every_input_and_output_format(gateway_target, data_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [e.text for e in load_goemotions(data_dir).test[:40]]
    parquet = tmp_path / "posts.parquet"
    pq.write_table(pa.table({"post_id": [f"p{i}" for i in range(40)], "body": texts}), parquet)
    code, _, err = await cli(gateway_target.listen, "analyze", str(parquet), "--text-column", "body",
                             "--id-column", "post_id", "-o", str(tmp_path / "posts.parquet.out.csv"), "--quiet")  # fmt: skip
    assert code == 0, err
    with (tmp_path / "posts.parquet.out.csv").open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["id"] for r in table] == [f"p{i}" for i in range(40)] and "score:gratitude" in table[0]

    jsonl = tmp_path / "dialogue.jsonl"
    lines = [json.dumps({"conversation_id": "a", "speaker": "x", "text": "I got the job!"}), "",
             "{not json", json.dumps({"conversation_id": "a", "speaker": "y", "text": "Congratulations!"})]  # fmt: skip
    jsonl.write_text("\n".join(lines) + "\n")
    code, _, err = await cli(gateway_target.listen, "analyze", str(jsonl), "--model", "conversation",
                             "-o", str(tmp_path / "dialogue.parquet"), "--quiet")  # fmt: skip
    assert code == 0, err
    out = pq.read_table(tmp_path / "dialogue.parquet").to_pylist()
    assert [r["row"] for r in out] == [0, 1, 2, 3]
    assert [r["error_code"] for r in out] == [None, "INVALID_INPUT", "INVALID_INPUT", None]
    assert out[0]["speaker"] == "x" and out[3]["conversation"] == "a" and out[0]["model"] == "conversation"

    text = tmp_path / "lines.txt"
    text.write_text("I love it\n\nThis is so scary\n")
    code, _, err = await cli(gateway_target.listen, "analyze", str(text), "--quiet")
    assert code == 0, err
    records = rows_of(tmp_path / "lines.emotions.jsonl")
    assert [r["predicted"] for r in records] == [["love"], [], ["fear"]]
    assert records[1]["error"]["code"] == "INVALID_ARGUMENT"


async def test_chat_with_scripted_turns(gateway_target):
    script = "ann: I got the job!\nbob: No way, congratulations!\nann: I start on Monday.\n/quit\n"
    code, out, err = await cli(gateway_target.listen, "chat", "--json", stdin=script)
    assert code == 0, err
    turns = [json.loads(line) for line in out.splitlines()]
    assert [t["speaker"] for t in turns] == ["ann", "bob", "ann"]
    assert [t["result"]["context_turns"] for t in turns] == [0, 1, 2]
    code, out, _ = await cli(gateway_target.listen, "chat", stdin="I am so happy today\n")
    assert code == 0 and out.startswith("  you: ")


async def test_exit_codes_and_one_line_errors(gateway_target, tmp_path):
    code, _, err = await cli(gateway_target.listen, "analyze", str(tmp_path / "missing.csv"))
    assert code == 3 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    code, _, err = await cli(gateway_target.listen, "analyze", str(bad))
    assert code == 3 and "no text column found (columns: a, b)" in err
    code, _, err = await cli(gateway_target.listen, "classify", "--model", "nope", "hi")
    assert code == 2 and err.startswith("error: NOT_FOUND")
    # A closed pipe ends the command quietly.
    proc = await asyncio.create_subprocess_shell(
        f"{sys.executable} -m client.cli --target {gateway_target.listen} models | head -c 10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert b"Traceback" not in err
