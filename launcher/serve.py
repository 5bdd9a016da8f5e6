"""``make serve``: run Triton and the gateway together, supervised, until Ctrl-C.

Starts the bundled Triton on the model repository, waits until every model is ready,
starts the gateway as its own process (exactly as it runs in production), waits for its
gRPC health to report SERVING, prints how to call it, and then supervises both:

- Triton exits or crashes: its process group (python-backend stubs included) is killed,
  its shared-memory regions are removed, and it is started again on the same ports after a
  back-off (0.5 s, doubling to 30 s while it keeps failing; reset once it has stayed ready
  for a minute). The gateway keeps running: its health says NOT_SERVING and calls get
  UNAVAILABLE until Triton is ready again, then it reconnects by itself.
- Triton stops answering its liveness probe for ``--hang-restart-s`` (SIGSTOP, a wedged
  server): it is killed and restarted the same way.
- The gateway exits: it is started again with the same back-off.

This process is a child subreaper, so stub processes orphaned by a crashed server are
reparented to it and reaped. On Ctrl-C or SIGTERM it stops the gateway first (draining
requests) and then Triton.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotionaware.paths import MODEL_REPOSITORY as DEFAULT_MODEL_REPOSITORY
from launcher.tritonserver import TritonPorts, TritonServer, die_with_parent

log = logging.getLogger("serve")
PR_SET_CHILD_SUBREAPER = 36  # from <sys/prctl.h>
POLL_S = 0.5


@dataclass
class Backoff:
    """Delay before the next restart: doubling from ``first_s`` to ``max_s``, reset by stability."""

    first_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 60.0
    failures: int = 0
    up_since: float | None = None

    def delay(self) -> float:
        if self.up_since is not None and time.monotonic() - self.up_since >= self.stable_s:
            self.failures = 0
        self.up_since = None
        self.failures += 1
        return min(self.max_s, self.first_s * 2 ** (self.failures - 1))

    def up(self) -> None:
        if self.up_since is None:
            self.up_since = time.monotonic()


@dataclass
class Stopping:
    requested: bool = False

    def sleep(self, seconds: float) -> None:
        """Sleep, but return early once a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0)))


def become_subreaper() -> None:
    if sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1)


def reap_orphans(own: set[int]) -> None:
    """Reap exited processes reparented to us (never our own children, which Popen waits for)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in own:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, 0)


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


@dataclass
class Supervisor:
    """Keeps one Triton and one gateway process running (see the module doc)."""

    args: argparse.Namespace
    stopping: Stopping
    triton: TritonServer | None = None
    gateway: subprocess.Popen | None = None
    triton_backoff: Backoff = field(default_factory=Backoff)
    gateway_backoff: Backoff = field(default_factory=Backoff)
    restarts: int = 0
    _down_since: float | None = None
    _unresponsive_since: float | None = None
    _last_probe: float = 0.0

    @property
    def target(self) -> str:
        return f"{self.args.host}:{self.args.grpc_port}"

    @property
    def http_target(self) -> str:
        return f"{self.args.host}:{self.args.http_port}"

    def start_triton(self) -> TritonServer:
        a = self.args
        ports = TritonPorts(a.triton_http_port, a.triton_grpc_port, a.triton_metrics_port)
        # Triton listens on loopback whatever --host says: only the gateway may call it.
        self.triton = TritonServer(
            a.model_repository, ports, host="127.0.0.1", log_path=a.log_dir / "triton.log"
        )
        self.triton.start()
        return self.triton

    def start_gateway(self) -> subprocess.Popen:
        a = self.args
        assert self.triton is not None
        self.gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                f"--listen={self.target}",
                f"--triton-url={self.triton.grpc_url}",
                f"--model-repository={a.model_repository}",
                f"--metrics-port={a.gateway_metrics_port}",
                f"--http-listen={self.http_target if a.http_port else ''}",
                *self._state_flags(),
            ],
            env=dict(os.environ),
            # A serve killed outright (SIGKILL) must not leave its gateway running.
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        return self.gateway

    def _state_flags(self) -> list[str]:
        """Where the gateway keeps what outlives it (unless the environment says otherwise): the
        key of its request ids (so feedback on answers from before a restart is accepted) and
        the feedback database, under --state-dir."""
        state = self.args.state_dir
        flags = []
        if "EMOTIONAWARE_REQUEST_ID_KEY_FILE" not in os.environ:
            flags.append(f"--request-id-key-file={state / 'request-id.key'}")
        if "EMOTIONAWARE_FEEDBACK_DATABASE" not in os.environ:
            flags.append(f"--feedback-database=sqlite:///{(state / 'feedback.sqlite3').resolve()}")
        return flags

    def _restart_triton(self, why: str) -> None:
        assert self.triton is not None
        delay = self.triton_backoff.delay()
        log.error("Triton %s; restarting it in %.1f s (see %s)", why, delay, self.triton.log_path)
        self.triton.stop(grace_s=2)  # the group, stubs included, and its shared memory
        self._down_since = self._down_since or time.monotonic()
        self._unresponsive_since = None
        self.stopping.sleep(delay)
        if not self.stopping.requested:
            self.restarts += 1
            self.start_triton()

    def check(self) -> None:
        """One supervision round: restart what died or hangs, note what recovered."""
        assert self.triton is not None and self.gateway is not None
        now = time.monotonic()
        if not self.triton.running():
            self._restart_triton(f"exited with code {self.triton.returncode}")
        elif now - self._last_probe >= self.args.probe_s:
            self._last_probe = now
            if self.triton.is_ready(timeout_s=1):
                self._unresponsive_since = None
                self.triton_backoff.up()
                if self._down_since is not None:
                    log.info("Triton ready again, %.1f s after it went down", now - self._down_since)
                    self._down_since = None
            elif self.triton.is_live(timeout_s=1):
                self._unresponsive_since = None  # loading models after a restart
            else:
                self._unresponsive_since = self._unresponsive_since or now
                if now - self._unresponsive_since >= self.args.hang_restart_s:
                    self._restart_triton(f"did not answer for {now - self._unresponsive_since:.0f} s")
        if self.gateway.poll() is not None:
            delay = self.gateway_backoff.delay()
            log.error("gateway exited with code %s; restarting it in %.1f s", self.gateway.returncode, delay)
            self.stopping.sleep(delay)
            if not self.stopping.requested:
                self.restarts += 1
                self.start_gateway()
        else:
            self.gateway_backoff.up()
        reap_orphans({p for p in (self.gateway.pid, self.triton.pid) if p is not None})

    def stop(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            try:
                self.gateway.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()
        if self.triton is not None:
            self.triton.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotionaware-serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="address the gateway's ports bind; Triton stays on 127.0.0.1"
    )
    parser.add_argument(
        "--grpc-port", type=int, default=50051, help="gateway gRPC port (default: %(default)s)"
    )
    parser.add_argument(
        "--http-port",
        type=int,
        default=8080,
        help="gateway HTTP/JSON API and playground (default: %(default)s; 0: none)",
    )
    parser.add_argument(
        "--gateway-metrics-port", type=int, default=9090, help="gateway metrics (default: %(default)s)"
    )
    parser.add_argument("--triton-http-port", type=int, default=8000)
    parser.add_argument("--triton-grpc-port", type=int, default=8001)
    parser.add_argument("--triton-metrics-port", type=int, default=8002)
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--log-dir", type=Path, default=Path("build/logs"), help="Triton log folder")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("build/state"),
        help="the gateway's request-id key and feedback database (SQLite) live here",
    )
    parser.add_argument("--probe-s", type=float, default=1.0, help="seconds between Triton health probes")
    parser.add_argument(
        "--hang-restart-s",
        type=float,
        default=30.0,
        help="restart Triton when it has not answered its liveness probe for this long",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stopping = Stopping()

    def request_stop(signum: int, _frame: object) -> None:
        stopping.requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    become_subreaper()
    supervisor = Supervisor(args, stopping)
    code = 0
    try:
        started = time.monotonic()
        triton = supervisor.start_triton()
        triton.wait_ready(timeout_s=180)
        log.info("Triton ready in %.1f s (gRPC %s, HTTP %s)", time.monotonic() - started, triton.grpc_url,
                 triton.http_url)  # fmt: skip
        gateway = supervisor.start_gateway()
        wait_gateway(supervisor.target, gateway, timeout_s=60)
        http = f"http://{supervisor.http_target}"
        web = (
            f"  gateway HTTP    {http}   (the same API as JSON; OpenAPI at {http}/openapi.json)\n"
            f"  playground      {http}/playground/\n"
            if args.http_port
            else ""
        )
        curl = (
            f'  curl -s {http}/v1/classify -d \'{{"text": "Thank you so much for your help!"}}\'\n'
            if args.http_port
            else ""
        )
        print(
            f"\nEmotionAware is ready ({time.monotonic() - started:.1f} s).\n"
            f"  gateway gRPC    {supervisor.target}   (emotionaware.v1.EmotionService, grpc.health.v1, reflection)\n"
            f"{web}"
            f"  gateway metrics http://{args.host}:{args.gateway_metrics_port}/metrics\n"
            f"  Triton          gRPC {triton.grpc_url}, HTTP {triton.http_url}, metrics :{args.triton_metrics_port}"
            " (loopback only)\n"
            f'Try:\n  .venv/bin/emotionaware-client --target {supervisor.target} classify "Thank you so much for your help!"\n'
            f"{curl}"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping.requested:
            supervisor.check()
            stopping.sleep(POLL_S)
    except (RuntimeError, TimeoutError) as exc:
        log.error("%s", exc)
        code = 1
    finally:
        supervisor.stop()
        log.info("stopped (%d restarts)", supervisor.restarts)
    return code


if __name__ == "__main__":
    sys.exit(main())
