"""Start, probe and stop the bundled Triton Inference Server (from the nvidia-pytriton wheel).

Used by ``make serve`` and by the test tier that runs a real server. The server runs in its
own process group so that stopping it also stops its python-backend stub processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
SHM_DIR = Path("/dev/shm")
_instances = itertools.count()


class TritonNotInstalled(RuntimeError):
    """The server binary or the python-backend stub is missing (run ``make setup``)."""


def triton_home() -> Path:
    """Folder of the server shipped in the nvidia-pytriton wheel."""
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonNotInstalled("nvidia-pytriton is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def check_installation(home: Path) -> None:
    binary = home / "bin" / "tritonserver"
    stub = home / "backends" / "python" / "triton_python_backend_stub"
    for path in (binary, stub):
        if not os.access(path, os.X_OK):
            raise TritonNotInstalled(f"{path} is missing or not executable; run `make setup`")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class TritonPorts:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def pick_free(cls) -> TritonPorts:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        http, grpc, metrics = sorted(ports)
        return cls(http, grpc, metrics)


def die_with_parent() -> None:
    """Run in the child before exec: SIGTERM the server if the process that started it dies.

    Without this a launcher killed by SIGKILL (or a crashed test run) would leave Triton and
    its stub processes running and holding their ports.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def server_environment() -> dict[str, str]:
    """Environment in which the python-backend stub finds this interpreter's packages.

    The stub embeds libpython and imports numpy/onnxruntime from the active environment,
    so the venv must look activated (VIRTUAL_ENV and PATH), and the libpython of this very
    interpreter should be found first.
    """
    env = dict(os.environ)
    prefix = Path(sys.prefix)
    env["VIRTUAL_ENV"] = str(prefix)
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and any(Path(libdir).glob("libpython3*.so*")):
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
    return env


def remove_orphaned_shared_memory(shm_dir: Path = SHM_DIR) -> list[str]:
    """Unlink the regions of servers whose launching process is gone; returns their names.

    A launcher that was itself killed (SIGKILL of ``make serve``, a CI runner stopped) never
    removes its server's regions; the next launch on the machine does. A region's name holds
    its launcher's pid, and a region whose launcher still runs is left alone.
    """
    removed = []
    for region in sorted(shm_dir.glob("emotionaware_*_*")) if shm_dir.is_dir() else []:
        owner = region.name.split("_")[1]
        if not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        with contextlib.suppress(FileNotFoundError):
            region.unlink()
            removed.append(region.name)
    if removed:
        log.info("removed %d shared-memory regions of launchers that are gone", len(removed))
    return removed


class TritonServer:
    """A tritonserver child process bound to loopback (or ``host``) ports.

    Use as a context manager; ``stop()`` is idempotent and always reaps the process group.
    """

    def __init__(
        self,
        model_repository: Path,
        ports: TritonPorts | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.ports = ports or TritonPorts.pick_free()
        self.host = host
        self.log_path = log_path
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None
        # The python backend's shared-memory regions are named with this prefix, so that the
        # regions of a server that was killed (which never unlinks them) can be found and removed.
        self.shm_prefix = f"emotionaware_{os.getpid()}_{next(_instances)}_"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    def command(self) -> list[str]:
        home = triton_home()
        check_installation(home)
        return [
            str(home / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={home / 'backends'}",
            f"--http-address={self.host}",
            f"--http-port={self.ports.http}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.ports.metrics}",
            # Configs are generated explicitly; never let a backend guess them.
            "--disable-auto-complete-config",
            "--exit-timeout-secs=10",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            *self.extra_args,
        ]

    def start(self) -> TritonServer:
        if self._proc is not None:
            raise RuntimeError("server already started")
        remove_orphaned_shared_memory()
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = out = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.command(),
            env=server_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        log.info("tritonserver pid %d: grpc %s, http %s", self._proc.pid, self.grpc_url, self.http_url)
        return self

    def _probe(self, path: str, timeout_s: float) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}{path}", timeout=timeout_s) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def is_ready(self, timeout_s: float = 2.0) -> bool:
        """Every model loaded and the server accepting requests."""
        return self._probe("/v2/health/ready", timeout_s)

    def is_live(self, timeout_s: float = 2.0) -> bool:
        """The server answers at all (a stopped or wedged one does not)."""
        return self._probe("/v2/health/live", timeout_s)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until every model is loaded and the server reports ready."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise RuntimeError(
                    f"tritonserver exited with code {code} before it was ready{self._log_hint()}"
                )
            if self.is_ready():
                return
            time.sleep(0.25)
        raise TimeoutError(f"tritonserver not ready after {timeout_s:.0f} s{self._log_hint()}")

    def _log_hint(self) -> str:
        return f"; see {self.log_path}" if self.log_path else ""

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once the server has exited (negative: killed by that signal)."""
        return None if self._proc is None else self._proc.poll()

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not stop in %.0f s; killing it", grace_s)
            # Stub processes can outlive the server for a moment; the group goes in any case.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.remove_shared_memory()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def shared_memory(self) -> list[Path]:
        """This server's python-backend shared-memory regions (present while it runs)."""
        return sorted(SHM_DIR.glob(self.shm_prefix + "*")) if SHM_DIR.is_dir() else []

    def remove_shared_memory(self) -> None:
        """Unlink regions left by a server that did not exit cleanly (SIGKILL, crash)."""
        for region in self.shared_memory():
            with contextlib.suppress(FileNotFoundError):
                region.unlink()
                log.info("removed leftover shared memory %s", region.name)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
