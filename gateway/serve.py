"""``make serve``: run Triton and the gateway together until Ctrl-C.

Starts the bundled Triton on the model repository, waits until every model is ready,
starts the gateway as its own process (exactly as it runs in production), waits for its
gRPC health to report SERVING, prints how to call it, and on Ctrl-C or SIGTERM stops the
gateway first (draining requests) and then Triton. If either dies, the other is stopped too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotionaware.tritonserver import TritonPorts, TritonServer
from gateway.settings import DEFAULT_MODEL_REPOSITORY

log = logging.getLogger("serve")


def wait_gateway(target: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited with code {proc.returncode} before it was ready")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.25)
    raise TimeoutError(f"gateway not SERVING after {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotionaware-serve", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address every port binds (default: %(default)s)")
    parser.add_argument(
        "--grpc-port", type=int, default=50051, help="gateway gRPC port (default: %(default)s)"
    )
    parser.add_argument(
        "--gateway-metrics-port", type=int, default=9090, help="gateway metrics (default: %(default)s)"
    )
    parser.add_argument("--triton-http-port", type=int, default=8000)
    parser.add_argument("--triton-grpc-port", type=int, default=8001)
    parser.add_argument("--triton-metrics-port", type=int, default=8002)
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--log-dir", type=Path, default=Path("build/logs"), help="Triton log folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    ports = TritonPorts(args.triton_http_port, args.triton_grpc_port, args.triton_metrics_port)
    triton = TritonServer(args.model_repository, ports, host=args.host, log_path=args.log_dir / "triton.log")
    gateway: subprocess.Popen | None = None
    target = f"{args.host}:{args.grpc_port}"
    code = 0
    try:
        started = time.monotonic()
        triton.start()
        triton.wait_ready(timeout_s=180)
        log.info(
            "Triton ready in %.1f s (gRPC %s, HTTP %s)",
            time.monotonic() - started,
            triton.grpc_url,
            triton.http_url,
        )
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                f"--listen={target}",
                f"--triton-url={triton.grpc_url}",
                f"--model-repository={args.model_repository}",
                f"--metrics-port={args.gateway_metrics_port}",
            ],
            env=dict(os.environ),
        )
        wait_gateway(target, gateway, timeout_s=60)
        print(
            f"\nEmotionAware is ready ({time.monotonic() - started:.1f} s).\n"
            f"  gateway gRPC    {target}   (emotionaware.v1.EmotionService, grpc.health.v1, reflection)\n"
            f"  gateway metrics http://{args.host}:{args.gateway_metrics_port}/metrics\n"
            f"  Triton          gRPC {triton.grpc_url}, HTTP {triton.http_url}, metrics :{ports.metrics}\n"
            f'Try:\n  .venv/bin/emotionaware-client --target {target} classify "Thank you so much for your help!"\n'
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            if gateway.poll() is not None:
                log.error("gateway exited with code %s", gateway.returncode)
                code = 1
                break
            if not triton.running():
                log.error("Triton exited; see %s", triton.log_path)
                code = 1
                break
            time.sleep(0.5)
    except (RuntimeError, TimeoutError) as exc:
        log.error("%s", exc)
        code = 1
    finally:
        if gateway is not None and gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait()
        triton.stop()
        log.info("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
