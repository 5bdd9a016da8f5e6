"""The command-line client calls every rpc of the in-process gateway."""

from __future__ import annotations

import asyncio
import json
import sys


async def cli(target: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client.cli", "--target", target, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_cli_classify_with_view_and_context(gateway):
    settings, _ = gateway
    code, out, _ = await cli(
        settings.listen, "classify", "--view", "sentiment", "Thank you so much for your help!"
    )
    assert code == 0 and out.splitlines()[1] == "predicted: positive"
    code, out, _ = await cli(
        settings.listen, "classify", "--model", "conversation", "--speaker", "bob",
        "--context", "ann:I got the job!", "--json", "No way!",
    )  # fmt: skip
    reply = json.loads(out)
    assert code == 0 and reply["model"] == "conversation" and reply["context_turns"] == 1


async def test_cli_batch_stream_and_models(gateway):
    settings, _ = gateway
    code, out, _ = await cli(settings.listen, "batch", stdin="I love it\n\nThis is so scary\n")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("[0] model goemotions") and lines[1] == "predicted: love"
    # A blank line keeps its row: output row i is input row i.
    assert any(line.startswith("[1] error INVALID_ARGUMENT: texts[1]") for line in lines)
    assert any(line.startswith("[2] model goemotions") for line in lines)
    messages = [{"conversation_id": "a", "speaker": "x", "text": "I got the job!"},
                {"conversation_id": "a", "speaker": "y", "text": "Congratulations!"}]  # fmt: skip
    code, out, _ = await cli(
        settings.listen, "stream", "--json", stdin="\n".join(json.dumps(m) for m in messages)
    )
    replies = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["result"].get("context_turns", 0) for r in replies] == [0, 1]
    code, out, _ = await cli(settings.listen, "models", "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)["models"]] == [
        "conversation",
        "goemotions",
        "tiny-user-model",
    ]
    code, out, _ = await cli(settings.listen, "models")
    table = out.splitlines()
    assert code == 0 and table[0].split()[:4] == ["model", "version", "labels", "scores"]
    assert table[2].split()[:4] == ["goemotions", "1", "28", "sigmoid"]
    assert "alias default -> goemotions (1)" in table
    code, out, _ = await cli(settings.listen, "model", "stable")
    assert code == 0 and json.loads(out)["name"] == "goemotions"


async def test_cli_reports_errors_with_the_status(gateway):
    settings, _ = gateway
    code, _, err = await cli(settings.listen, "classify", "--model", "nope", "hi")
    assert code == 2 and err.startswith("error: NOT_FOUND: model 'nope' is not served")


async def test_cli_sentences_and_feedback(gateway):
    settings, _ = gateway
    text = "The parcel is late again. Thanks for the refund though!"
    code, out, _ = await cli(settings.listen, "sentences", "--model", "goemotions", text)
    lines = out.splitlines()
    assert code == 0 and "2 sentences" in lines[0]
    assert lines[1].startswith("[0] 0-25  intensity ") and lines[2] == "    The parcel is late again."
    assert lines[3].startswith("[1] 26-55") and "gratitude" in lines[3]
    assert lines[5].startswith("document (max of the sentences): ") and "gratitude" in lines[5]
    code, out, _ = await cli(settings.listen, "sentences", "--json", "--model", "goemotions", text)
    analyzed = json.loads(out)
    assert code == 0 and [s["span"]["utf8_start"] for s in analyzed["sentences"]] == [0, 26]
    code, out, _ = await cli(settings.listen, "classify", "--json", "--model", "goemotions", text)
    request_id = json.loads(out)["request_id"]
    code, out, err = await cli(
        settings.listen, "feedback", request_id, "--wrong", "--labels", "annoyance,gratitude"
    )
    assert code == 0 and out.startswith("feedback stored (id "), err
    code, out, err = await cli(settings.listen, "feedback", request_id, "--correct", "--labels", "rage")
    assert code != 0 and "INVALID_ARGUMENT" in err + out and "'rage' is not a label" in err + out
