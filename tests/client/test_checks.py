"""mypy --strict on emotionaware_client; what its wheel holds."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.client.conftest import CLIENT, requires_dist


def test_mypy_strict():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--config-file", "pyproject.toml"],
        cwd=CLIENT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_wheel_contents(client_wheel):
    with zipfile.ZipFile(client_wheel.path) as archive:
        names = archive.namelist()
        grpc_module = archive.read("emotionaware_client/_proto/emotion_pb2_grpc.py").decode()
    assert "emotionaware_client/py.typed" in names
    assert {"emotionaware_client/_proto/emotion_pb2.py", "emotionaware_client/_proto/emotion_pb2.pyi"} <= set(
        names
    )
    assert all(n.startswith(("emotionaware_client/", "emotionaware_client-")) for n in names), names
    assert "from emotionaware_client._proto import emotion_pb2" in grpc_module
    assert "from emotionaware." not in grpc_module and "import emotionaware\n" not in grpc_module
    assert sorted(r.split("<")[0].split(">")[0] for r in requires_dist(client_wheel.path)) == [
        "grpcio",
        "protobuf",
    ]
