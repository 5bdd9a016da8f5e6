"""`make serve`'s program: Triton + gateway as processes, answering gRPC, stopping cleanly."""

import os
import signal
import subprocess
import sys
import time

from emotionaware.tritonserver import TritonPorts, free_port


def test_serve_starts_answers_and_stops_cleanly(exported_repo, tmp_path):
    triton_ports = TritonPorts.pick_free()
    grpc_port, metrics_port = free_port(), free_port()
    target = f"127.0.0.1:{grpc_port}"
    cmd = [
        sys.executable,
        "-m",
        "gateway.serve",
        f"--grpc-port={grpc_port}",
        f"--gateway-metrics-port={metrics_port}",
        f"--triton-http-port={triton_ports.http}",
        f"--triton-grpc-port={triton_ports.grpc}",
        f"--triton-metrics-port={triton_ports.metrics}",
        f"--model-repository={exported_repo}",
        f"--log-dir={tmp_path}",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
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

        client = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.client_cli",
                "--target",
                target,
                "classify",
                "Thank you so much for your help!",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.splitlines()[1].startswith("predicted: gratitude")

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
