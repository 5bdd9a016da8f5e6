"""`make serve`'s program: Triton + gateway as processes, answering gRPC, stopping cleanly.

Served on every address (``--host 0.0.0.0``, with bearer tokens as a non-loopback gateway
requires): the gateway answers on the machine's own address, Triton's ports stay on loopback.
"""

import ipaddress
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.tokens import token_hash
from launcher.tritonserver import TritonPorts, free_port


def listening(port: int) -> set[str]:
    """Addresses with a TCP socket listening on ``port`` (IPv4 and IPv6, from /proc/net)."""
    found = set()
    for table, size in ((Path("/proc/net/tcp"), 4), (Path("/proc/net/tcp6"), 16)):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc writes each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(words[:size])
            found.add(str(getattr(ip, "ipv4_mapped", None) or ip))  # ::ffff:127.0.0.1 is 127.0.0.1
    return found


def own_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses."""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True
    )
    return [line.split()[3].split("/")[0] for line in out.stdout.splitlines() if len(line.split()) > 3]


def refused(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect((host, port))
        except ConnectionRefusedError:
            return True
        except OSError:
            return True  # unreachable counts as not served
    return False


def test_serve_starts_answers_and_stops_cleanly(exported_repo, tmp_path):
    triton_ports = TritonPorts.pick_free()
    grpc_port, metrics_port, http_port = free_port(), free_port(), free_port()
    target = f"127.0.0.1:{grpc_port}"
    token = "serve-test-token-0123456789"
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'[[tokens]]\nclient = "tester"\nsha256 = "{token_hash(token)}"\n')
    cmd = [
        sys.executable,
        "-m",
        "launcher.serve",
        "--host=0.0.0.0",
        f"--grpc-port={grpc_port}",
        f"--gateway-metrics-port={metrics_port}",
        f"--http-port={http_port}",
        f"--triton-http-port={triton_ports.http}",
        f"--triton-grpc-port={triton_ports.grpc}",
        f"--triton-metrics-port={triton_ports.metrics}",
        f"--model-repository={exported_repo}",
        f"--log-dir={tmp_path}",
        f"--state-dir={tmp_path / 'state'}",
    ]
    env = {**os.environ, "EMOTIONAWARE_AUTH_TOKENS_FILE": str(tokens)}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env
    )
    output = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C to stop" in line:
                break
        assert any("EmotionAware is ready" in line for line in output), "".join(output)
        # The banner names the HTTP API and the playground beside gRPC.
        banner = "".join(output)
        assert f"gateway HTTP    http://0.0.0.0:{http_port}" in banner
        assert f"playground      http://0.0.0.0:{http_port}/playground/" in banner
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/classify",
            data=json.dumps({"text": "Thank you so much for your help!"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answered = json.loads(response.read())
            assert answered["predicted"][0] == "gratitude"
        # Feedback on that answer lands in the SQLite file under --state-dir, naming the client.
        verdict = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/feedback",
            data=json.dumps(
                {"requestId": answered["requestId"], "verdict": "VERDICT_CORRECT", "labels": ["gratitude"]}
            ).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(verdict, timeout=30) as response:
            assert int(json.loads(response.read())["feedbackId"]) >= 1
        with sqlite3.connect(tmp_path / "state" / "feedback.sqlite3") as db:
            assert db.execute("SELECT client, model, verdict, labels FROM feedback").fetchall() == [
                ("tester", "goemotions", "correct", '["gratitude"]')
            ]
        assert (tmp_path / "state" / "request-id.key").stat().st_mode & 0o077 == 0  # the key is private

        client = subprocess.run(
            [
                sys.executable,
                "-m",
                "client.cli",
                "--target",
                target,
                "classify",
                "Thank you so much for your help!",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "EMOTIONAWARE_TOKEN": token},
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.splitlines()[1].startswith("predicted: gratitude")

        # --host moved the gateway (and its metrics) to every address; Triton stayed on loopback.
        assert listening(grpc_port) & {"0.0.0.0", "::"}, listening(grpc_port)
        assert listening(metrics_port) & {"0.0.0.0", "::"}
        assert listening(http_port) & {"0.0.0.0", "::"}
        for port in (triton_ports.http, triton_ports.grpc, triton_ports.metrics):
            assert listening(port) == {"127.0.0.1"}, (port, listening(port))
        for address in own_addresses():
            for port in (triton_ports.http, triton_ports.grpc, triton_ports.metrics):
                assert refused(address, port), f"Triton answers on {address}:{port}"
            with grpc.insecure_channel(f"{address}:{grpc_port}") as channel:
                health = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=10
                )
                assert health.status == health_pb2.HealthCheckResponse.SERVING

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(output) + rest
        assert "stopped" in rest
    finally:
        if proc.poll() is None:  # a failed assertion above: stop it the polite way first
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    leftovers = subprocess.run(
        ["pgrep", "-f", f"--grpc-port={triton_ports.grpc}"], capture_output=True, text=True
    )
    assert leftovers.stdout == "", f"processes left behind: {leftovers.stdout}"
