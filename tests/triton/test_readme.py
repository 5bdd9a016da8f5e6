"""The README's copy-paste client calls run against the real service and print what it shows."""

import asyncio
import re
import sys

from emotionaware.paths import ROOT

README = (ROOT / "README.md").read_text()


def fenced_after(marker: str) -> list[str]:
    """Bodies of the fenced code blocks that follow ``marker`` in the README, in order."""
    tail = README[README.index(marker) :]
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


async def test_python_snippet(gateway_target):
    code, output = fenced_after("From Python")[:2]
    stdout = await run("-c", code.replace("127.0.0.1:50051", gateway_target.listen))
    assert_same_output(stdout, output)


async def test_cli_call(gateway_target):
    command, output = fenced_after("### Call it")[:2]
    assert command.strip().startswith(".venv/bin/emotionaware-client classify ")
    text = re.search(r'classify "(.*)"', command).group(1)
    stdout = await run("-m", "client.cli", "--target", gateway_target.listen, "classify", text)
    assert_same_output(stdout, output)


async def test_client_package_snippet(gateway_target):
    code, output = fenced_after("From Python, the client package")[:2]
    stdout = await run("-c", code.replace("127.0.0.1:50051", gateway_target.listen))
    assert_same_output(stdout, output)


async def test_http_curl_call(http_url):
    import json
    import urllib.request

    command, output = fenced_after("Over HTTP")[:2]
    assert command.strip().startswith("curl -s 127.0.0.1:8080/v1/classify -d '")
    body = re.search(r"-d '(.*)'", command).group(1)
    request = urllib.request.Request(f"{http_url}/v1/classify", data=body.encode())  # curl -d: a POST
    reply = await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(request, timeout=30).read()))
    documented = json.loads(output)
    assert set(reply) == set(documented)
    for key in set(documented) - {"scores", "serverLatencyUs"}:
        assert reply[key] == documented[key], key
    for got, doc in zip(reply["scores"], documented["scores"], strict=True):
        assert got["label"] == doc["label"] and got["predicted"] == doc["predicted"]
        assert abs(got["score"] - doc["score"]) <= 0.006 and abs(got["threshold"] - doc["threshold"]) <= 0.006
