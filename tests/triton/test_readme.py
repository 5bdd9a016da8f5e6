"""The README's copy-paste calls (and docs/api.md's) run against the real service and print what they show."""

import asyncio
import os
import re
import shlex
import subprocess
import sys

from emotionaware.paths import ROOT

README = (ROOT / "README.md").read_text()
API_DOC = (ROOT / "docs" / "api.md").read_text()

# The README's examples, by the text that precedes them: (marker, how many fenced blocks).
PYTHON_PACKAGE = "**From Python**, with the client package"
HTTP = "**Over HTTP**"
CLI = "**From the command line**"
MORE_CLI = "More calls, with the sample inputs in `examples/`"
FILES = "Files and conversations: `analyze`"
SPARK = "Corpora on Apache Spark"
README_EXAMPLES = {PYTHON_PACKAGE: 2, HTTP: 2, CLI: 2, MORE_CLI: 1, FILES: 1, SPARK: 1}


def fenced_after(marker: str, document: str = README) -> list[str]:
    """Bodies of the fenced code blocks that follow ``marker`` in the document, in order."""
    tail = document[document.index(marker) :]
    return re.findall(r"^```[a-z]*\n(.*?)^```", tail, flags=re.S | re.M)


def labels_and_scores(text: str) -> list[tuple[str, float]]:
    return [(m[0], float(m[1])) for m in re.findall(r"^\s*\*?\s*([a-z]+)\s+(\d\.\d{3})", text, flags=re.M)]


def assert_same_output(actual: str, documented: str) -> None:
    actual_lines, documented_lines = actual.strip().splitlines(), documented.strip().splitlines()
    # Identical text apart from server latency and score rounding at the last digit.
    strip = lambda lines: [re.sub(r"latency: [\d.]+ ms|\d\.\d{3}", "", line) for line in lines]  # noqa: E731
    assert strip(actual_lines) == strip(documented_lines)
    for (label, score), (doc_label, doc_score) in zip(
        labels_and_scores(actual), labels_and_scores(documented), strict=True
    ):
        assert label == doc_label and abs(score - doc_score) <= 0.002


async def run(*args: str) -> str:
    """Run a client process without blocking the event loop that serves the in-process gateway."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, stderr.decode()
    return stdout.decode()


def test_every_readme_example_is_run_here():
    """A code block added to the README without a test here fails this test."""
    tested = [block for marker, count in README_EXAMPLES.items() for block in fenced_after(marker)[:count]]
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", README, flags=re.S | re.M):
        # The one exception: make serve and make test, which CI itself runs.
        assert block in tested or block.startswith("make serve "), block


async def test_client_package_snippet(gateway_target):
    code, output = fenced_after(PYTHON_PACKAGE)[:2]
    assert code.startswith("from emotionaware_client import EmotionClient")
    stdout = await run("-c", code.replace("127.0.0.1:50051", gateway_target.listen))
    assert_same_output(stdout, output)


async def test_http_curl_call(http_url):
    import json
    import urllib.request

    command, output = fenced_after(HTTP)[:2]
    assert command.strip().startswith("curl -s 127.0.0.1:8080/v1/classify -d '")
    assert "http://127.0.0.1:8080/playground/" in README
    body = re.search(r"-d '(.*)'", command).group(1)
    request = urllib.request.Request(f"{http_url}/v1/classify", data=body.encode())  # curl -d: a POST
    reply = await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(request, timeout=30).read()))
    documented = json.loads(output)
    assert set(reply) == set(documented)
    for key in set(documented) - {"scores", "serverLatencyUs", "intensity", "requestId"}:
        assert reply[key] == documented[key], key
    assert reply["requestId"].startswith("ea1.") and reply["requestId"] != documented["requestId"]
    assert abs(reply["intensity"] - documented["intensity"]) <= 0.006
    for got, doc in zip(reply["scores"], documented["scores"], strict=True):
        assert got["label"] == doc["label"] and got["predicted"] == doc["predicted"]
        assert abs(got["score"] - doc["score"]) <= 0.006 and abs(got["threshold"] - doc["threshold"]) <= 0.006


async def test_http_playground_is_served(http_url):
    import urllib.request

    def get() -> tuple[int, str]:
        with urllib.request.urlopen(f"{http_url}/playground/", timeout=30) as reply:
            return reply.status, reply.read().decode()

    status, page = await asyncio.to_thread(get)
    assert status == 200 and "<html" in page.lower()


async def test_cli_call(gateway_target):
    command, output = fenced_after(CLI)[:2]
    assert command.strip().startswith(".venv/bin/emotionaware-client classify ")
    text = re.search(r'classify "(.*)"', command).group(1)
    stdout = await run("-m", "client.cli", "--target", gateway_target.listen, "classify", text)
    assert_same_output(stdout, output)


def more_cli_commands() -> list[str]:
    (block,) = fenced_after(MORE_CLI)[:1]
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


async def test_more_cli_calls_with_the_example_files(gateway_target):
    """Each command line of the README's block, as written (shell quoting, $(cat ...), < file)."""
    client = f"{shlex.quote(sys.executable)} -m client.cli --target {gateway_target.listen}"
    commands = more_cli_commands()
    assert len(commands) >= 7
    for command in commands:
        assert command.startswith(".venv/bin/emotionaware-client "), command
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command.replace(".venv/bin/emotionaware-client", client, 1),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout_bytes, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
        stdout = stdout_bytes.decode()
        assert proc.returncode == 0, (command, stderr.decode())
        assert stdout.strip() and not re.search(r"\berror\b", stdout, flags=re.I), (command, stdout)
        if " stream " in command:
            messages = (ROOT / "examples" / "conversation.jsonl").read_text().splitlines()
            assert all(f"[{i}] " in stdout for i in range(len(messages))), stdout


async def test_raw_stubs_snippet_in_the_api_doc(gateway_target):
    code, output = fenced_after("## From Python with the generated stubs", API_DOC)[:2]
    assert "emotion_pb2_grpc.EmotionServiceStub" in code
    stdout = await run("-c", code.replace("127.0.0.1:50051", gateway_target.listen))
    assert_same_output(stdout, output)


def test_the_example_tickets_are_reproducible():
    """examples/support-tickets.csv is what examples/make_tickets.py writes."""
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_tickets.py"), "--check"], check=True)


async def test_files_and_chat_commands(gateway_target, tmp_path):
    """The README's analyze, report and chat lines, as written, in a scratch folder holding
    a copy of examples/ (what they write stays out of the repository)."""
    import shutil

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    client = f"{shlex.quote(sys.executable)} -m client.cli --target {gateway_target.listen}"
    (block,) = fenced_after(FILES)[:1]
    outputs = []
    for command in [line.strip() for line in block.splitlines() if line.strip()]:
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command.replace(".venv/bin/emotionaware-client", client, 1), cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=300)
        assert proc.returncode == 0, (command, err.decode())
        outputs.append(out.decode())
    rows = (tmp_path / "tickets.jsonl").read_text().splitlines()
    assert len(rows) == 320 and "320 of 320 rows" in outputs[0]
    assert "<svg" in (tmp_path / "tickets.html").read_text()
    assert outputs[2].splitlines()[0].startswith("  ann: ") and "1 earlier turns read" in outputs[2]


async def test_spark_command(exported_repo, tmp_path):
    """The README's Spark line, as written (its own local Spark), in a scratch folder with examples/."""
    import shutil

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (block,) = fenced_after(SPARK)[:1]
    command = block.strip().replace(
        ".venv/bin/emotionaware-spark", f"{shlex.quote(sys.executable)} -m integrations.spark.cli", 1
    )
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", f"{command} --repository {shlex.quote(str(exported_repo.resolve()))}", cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert "scored 320 rows (3 with an error)" in err.decode()  # the file's three blank messages
    assert (tmp_path / "scored" / "_SUCCESS").exists()
