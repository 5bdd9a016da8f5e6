"""The emotionaware-client wheel, alone in a clean venv, against a real Triton + gateway."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.client.conftest import RETRY_AFTER_MS, TOKENS, requires_dist

pytestmark = pytest.mark.triton

SCRIPT = Path(__file__).with_name("wheel_script.py")


async def test_wheel_in_clean_venv_against_real_server(client_wheel, clean_venv, client_gateway):
    # The gateway runs on this event loop: the script runs in a thread so the loop keeps serving.
    command = [str(clean_venv.python), "-I", str(SCRIPT), client_gateway.listen,
               TOKENS["main"], TOKENS["limited"], str(RETRY_AFTER_MS)]  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, cwd=clean_venv.python.parent
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(
        f"\nemotionaware-client wheel: {client_wheel.path.name}, {client_wheel.path.stat().st_size / 1024:.1f} KiB"
        f" (built in {client_wheel.build_s:.1f} s)"
        f"\n  Requires-Dist: {', '.join(requires_dist(client_wheel.path))}"
        f"\n  clean venv install (wheel + dependencies from the registry, no cache): {clean_venv.install_s:.1f} s"
        f"\n  clean venv holds: {', '.join(f'{k}=={v}' for k, v in sorted(clean_venv.packages.items()))}"
        f"\n  real server: {json.dumps(report)}"
    )
    assert {"emotionaware-client", "grpcio", "protobuf"} <= set(clean_venv.packages)
    assert set(clean_venv.packages) - {"pip", "setuptools"} <= {
        "emotionaware-client", "emotionaware_client", "grpcio", "protobuf", "typing_extensions", "typing-extensions"
    }  # fmt: skip


async def test_docs_examples_run(clean_venv, client_gateway, tmp_path):
    """The ```python blocks of docs/client.md, in order, as one script in the clean venv."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "client.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 6
    script = tmp_path / "client_md.py"
    script.write_text("\n".join(blocks))
    env = {**os.environ, "EMOTIONAWARE_TARGET": client_gateway.listen, "EMOTIONAWARE_TOKEN": TOKENS["main"]}
    env.pop("PYTHONPATH", None)
    result = await asyncio.to_thread(
        subprocess.run, [str(clean_venv.python), "-I", str(script)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert "INVALID_ARGUMENT" in result.stdout and "NOT_FOUND" in result.stdout
