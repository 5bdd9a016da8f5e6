"""Reliability proofs against the real ``make serve`` program: chaos, overload, correspondence.

    python -m bench.reliability chaos          # SIGKILL / SIGSTOP Triton, SIGTERM the gateway, under load
    python -m bench.reliability overload       # 4x measured capacity, open loop
    python -m bench.reliability correspondence # every answer checked against its own request

Each starts ``launcher.serve`` (supervised Triton + gateway) on free loopback ports, prints a
Markdown table and, with ``--out``, writes it to a file. ``make chaos``, ``make overload`` and
``make correspondence`` run the long forms; tests/triton/test_reliability.py runs short ones
with the same functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.run import machine
from bench.soak import gateway_metrics, refusals, rss_mib
from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.settings import DEFAULT_MODEL_REPOSITORY
from launcher.tritonserver import SHM_DIR, TritonPorts, free_port

# Status codes a client may see while the service is being broken and recovers.
FAULT_CODES = {"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}
# A gateway that shuts down: gRPC's core cancels calls it has received but not yet handed to
# a handler, and their clients see CANCELLED, not UNAVAILABLE (grpc/grpc#41785, open). Those
# calls did not run; a client may retry them like UNAVAILABLE.
SHUTDOWN_CODES = FAULT_CODES | {"CANCELLED"}
TEXTS = (
    "Thank you so much for your help!",
    "This is the worst day of my life.",
    "I can't believe you did that, I'm furious.",
    "Wow, I did not expect that at all!",
    "I miss her so much.",
    "ok",
    "That is hilarious, I can't stop laughing",
    "I'm a bit nervous about tomorrow's interview.",
)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path(f"/proc/{pid}/cmdline").read_bytes()).replace(b"\0", b" ").decode()
    return ""


def _cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far: steal is time the hypervisor gave elsewhere."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields[7], sum(fields)


def _state(pid: int) -> str:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return "gone"


class Serve:
    """``python -m launcher.serve`` on free ports, as ``make serve`` runs it."""

    def __init__(self, repository: Path, log_dir: Path, extra: Sequence[str] = ()) -> None:
        self.ports = TritonPorts.pick_free()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.http_port = free_port()
        self.target = f"127.0.0.1:{self.grpc_port}"
        cmd = [
            sys.executable, "-m", "launcher.serve", f"--grpc-port={self.grpc_port}", f"--http-port={self.http_port}",
            f"--gateway-metrics-port={self.metrics_port}", f"--triton-http-port={self.ports.http}",
            f"--triton-grpc-port={self.ports.grpc}", f"--triton-metrics-port={self.ports.metrics}",
            f"--model-repository={repository}", f"--log-dir={log_dir}", f"--state-dir={log_dir / 'state'}",
            "--hang-restart-s=30", *extra,
        ]  # fmt: skip
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "serve.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        while "Press Ctrl-C to stop" not in self.log_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not become ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def answered(self, method: str) -> Counter:
        """Calls of ``method`` the gateway has answered so far, by status code (its own metrics)."""
        counts: Counter = Counter()
        for family in gateway_metrics(self.metrics_port):
            if family.name == "emotionaware_requests":
                for sample in family.samples:
                    if sample.name.endswith("_total") and sample.labels.get("method") == method:
                        counts[sample.labels["code"]] += int(sample.value)
        return counts

    def histograms(self, name: str, label: str) -> dict[str, dict[float, float]]:
        """Cumulative bucket counts of the gateway's histogram ``name``, by the value of ``label``.

        Each maps a bucket's upper bound (inf included) to the observations at or under it.
        """
        out: dict[str, dict[float, float]] = {}
        for family in gateway_metrics(self.metrics_port):
            if family.name == name:
                for sample in family.samples:
                    if sample.name.endswith("_bucket"):
                        out.setdefault(sample.labels[label], {})[float(sample.labels["le"])] = sample.value
        return out

    def triton_pid(self) -> int | None:
        return next((p for p in _children(self.proc.pid) if "tritonserver" in _cmdline(p)), None)

    def gateway_pid(self) -> int | None:
        return next((p for p in _children(self.proc.pid) if "-m gateway " in _cmdline(p) + " "), None)

    def leftovers(self) -> list[str]:
        """Processes and shared-memory regions of this serve that should not exist any more."""
        found = [f"/dev/shm/{p.name}" for p in SHM_DIR.glob(f"emotionaware_{self.proc.pid}_*")]
        for entry in Path("/proc").iterdir():
            pid = int(entry.name) if entry.name.isdigit() else 0
            mine = (f"--grpc-port={self.ports.grpc}", f"--listen={self.target}")  # Triton, gateway
            if pid and any(m in _cmdline(pid) for m in mine) and _state(pid) not in ("Z", "gone"):
                found.append(f"pid {pid}")
        return found

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@dataclass
class Call:
    sent: float
    took: float
    code: str


@dataclass
class Load:
    """Closed-loop Classify callers in threads, recording every call."""

    target: str
    workers: int = 4
    timeout_s: float = 2.0
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with grpc.insecure_channel(self.target) as channel:
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    stub.Classify(pb.ClassifyRequest(text=rng.choice(TEXTS)), timeout=self.timeout_s)
                    code = "OK"
                except grpc.RpcError as err:
                    code = err.code().name
                    time.sleep(0.05)  # a client backs off a little after an error
                self.calls.append(Call(sent, time.monotonic() - sent, code))

    def __enter__(self) -> Load:
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.workers)
        ]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout_s + 5)


def health(target: str) -> str:
    try:
        with grpc.insecure_channel(target) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.RpcError as err:
        return err.code().name


@dataclass
class FaultResult:
    fault: str
    calls: int
    codes: dict[str, int]
    slowest_over_deadline_s: float  # most any call took beyond its deadline
    saw_not_serving: bool
    recovered_s: float | None  # from the fault's end to the first OK call after it
    leftovers: list[str]

    def row(self) -> str:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.codes.items()))
        recovered = "never" if self.recovered_s is None else f"{self.recovered_s:.1f} s"
        return (f"| {self.fault} | {self.calls} | {codes} | {self.slowest_over_deadline_s:+.2f} s | "
                f"{'yes' if self.saw_not_serving else 'no'} | {recovered} | {', '.join(self.leftovers) or 'none'} |")  # fmt: skip


def _watch_health(target: str, until: threading.Event, seen: list[str]) -> None:
    while not until.is_set():
        seen.append(health(target))
        time.sleep(0.1)


def inject(
    serve: Serve, fault: str, load_workers: int = 4, timeout_s: float = 2.0, settle_s: float = 25.0
) -> FaultResult:
    """Apply one fault under load and measure what clients saw until the service recovered."""
    with Load(serve.target, load_workers, timeout_s) as load:
        time.sleep(2.0)
        seen: list[str] = []
        done = threading.Event()
        watcher = threading.Thread(target=_watch_health, args=(serve.target, done, seen), daemon=True)
        watcher.start()
        old_triton = serve.triton_pid()
        if fault == "SIGKILL triton":
            os.kill(old_triton, signal.SIGKILL)
        elif fault == "SIGSTOP triton 5 s":
            os.kill(old_triton, signal.SIGSTOP)
            time.sleep(5)
            os.kill(old_triton, signal.SIGCONT)
        elif fault == "SIGTERM gateway":
            os.kill(serve.gateway_pid(), signal.SIGTERM)
        else:
            raise ValueError(fault)
        fault_end = time.monotonic()
        deadline = fault_end + settle_s
        recovered = None
        while time.monotonic() < deadline:
            ok = [c for c in list(load.calls) if c.sent >= fault_end + 0.2 and c.code == "OK"]
            if ok:
                recovered = ok[0].sent + ok[0].took - fault_end
                break
            time.sleep(0.1)
        time.sleep(1.0)
        done.set()
        watcher.join()
    calls = load.calls
    leftovers = old_server_leftovers(serve, old_triton) if fault != "SIGTERM gateway" else []
    return FaultResult(
        fault, len(calls), dict(Counter(c.code for c in calls)),
        max(c.took - timeout_s for c in calls), "NOT_SERVING" in seen or "UNAVAILABLE" in seen, recovered,
        leftovers,
    )  # fmt: skip


def old_server_leftovers(serve: Serve, old_pgid: int | None) -> list[str]:
    """Live processes of a replaced Triton's group, and shared memory of replaced instances."""
    if serve.triton_pid() == old_pgid:  # not replaced (SIGSTOP recovered by itself): nothing is old
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[2]) == old_pgid and stat[0] != "Z":
                    found.append(f"pid {entry.name} ({_cmdline(int(entry.name))[:60]})")
    regions = list(SHM_DIR.glob(f"emotionaware_{serve.proc.pid}_*"))
    newest = max((int(p.name.split("_")[2]) for p in regions), default=None)
    found += [f"/dev/shm/{p.name}" for p in regions if int(p.name.split("_")[2]) != newest]
    return found


CHAOS_HEADER = [
    "| fault | calls | status codes | worst over deadline | NOT_SERVING seen | recovered after | left behind |",
    "|---|---:|---|---:|---|---:|---|",
]


def chaos(serve: Serve, rounds: int) -> list[FaultResult]:
    """``rounds`` rounds of the three faults, each under load, each measured to recovery."""
    return [inject(serve, fault) for _ in range(rounds) for fault in FAULTS]


FAULTS = ("SIGKILL triton", "SIGSTOP triton 5 s", "SIGTERM gateway")


def chaos_ok(results: Sequence[FaultResult]) -> bool:
    """The guarantees: documented codes only, nothing past deadline + 1 s, recovery in 10 s, no leaks."""
    return all(
        set(r.codes) <= (SHUTDOWN_CODES if r.fault == "SIGTERM gateway" else FAULT_CODES)
        and r.slowest_over_deadline_s <= 1.0 and r.saw_not_serving
        and r.recovered_s is not None and r.recovered_s <= 10.0 and not r.leftovers
        for r in results
    )  # fmt: skip


# -- overload ---------------------------------------------------------------------------------


@dataclass
class OverloadResult:
    capacity: float
    rate: float
    seconds: float
    sent: int  # calls started in the overload window (the open loop may fall behind its rate)
    accepted: list[float]  # latencies of OK calls as the client saw them, ms
    served: list[float]  # the same calls' latency inside the gateway (server_latency_us), ms
    refused: list[float]  # latencies of RESOURCE_EXHAUSTED, ms
    codes: dict[str, int]
    rss_start: float
    rss_max: float
    after_ms: float  # median latency of calls made right after the overload
    cores: dict[str, float]  # CPU cores used during the overload, by the load generator, gateway, Triton
    steal: float  # share of the machine's CPU time the hypervisor took during the overload
    # Other codes, with their details and the seconds they took: what to look at when one appears.
    unexpected: dict[str, int] = field(default_factory=dict)
    # The same window's Classify calls by status code as the gateway answered them (its metrics).
    answered: dict[str, int] = field(default_factory=dict)
    # The accepted calls' latencies in the gateway, by the 10 s window they were sent in.
    windows: list[list[float]] = field(default_factory=list)
    # Per pipeline stage in the gateway (its histograms over the window): observations, and the
    # shares over 0.2 s and over 0.5 s. Says where the tail of accepted calls is spent.
    stages: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    # The gateway's admission refusals in the window, by reason (emotionaware_refused_total).
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def never_handled(self) -> int:
        """Calls the client saw as CANCELLED that no handler of the gateway ever ran.

        On a saturated host some calls end CANCELLED at the client although the gateway did
        nothing with them: its own count of answered calls (every handled call is counted,
        whatever its outcome) matches the client's OK and RESOURCE_EXHAUSTED exactly, and a
        GRPC_TRACE=http trace of the client shows one incoming RST_STREAM from the server per
        such call. gRPC dropped them before any handler; nothing ran, and a client may
        retry them like UNAVAILABLE. Counted only while the gateway's numbers account for
        every other call.
        """
        cancelled = self.codes.get("CANCELLED", 0)
        handled = {"OK": self.codes.get("OK", 0), "RESOURCE_EXHAUSTED": self.gateway_refused}
        matched = all(self.answered.get(k, 0) == v for k, v in handled.items())
        return cancelled if matched and set(self.answered) <= {"OK", "RESOURCE_EXHAUSTED"} else 0

    @property
    def core_refused(self) -> int:
        """RESOURCE_EXHAUSTED from gRPC's core: calls over ``max_concurrent_rpcs``, no handler run."""
        return self.codes.get(_CORE_REFUSED, 0)

    @property
    def gateway_refused(self) -> int:
        """RESOURCE_EXHAUSTED the gateway's admission answered (with ``retry-after-ms``)."""
        return self.codes.get("RESOURCE_EXHAUSTED", 0) - self.core_refused

    @property
    def stream_refused(self) -> int:
        """Calls refused by the HTTP/2 stream limit (REFUSED_STREAM), before any handler."""
        return self.codes.get(_STREAM_REFUSED, 0)

    def codes_ok(self) -> bool:
        """The gateway answered only OK and RESOURCE_EXHAUSTED; the client saw nothing else but
        calls the gateway never handled (:attr:`never_handled`, :attr:`core_refused`,
        :attr:`stream_refused`)."""
        seen = {k for k in self.codes if not (k == "CANCELLED" and self.never_handled)} - {
            _CORE_REFUSED,
            _STREAM_REFUSED,
        }
        if self.codes.get("UNAVAILABLE", 0) == self.stream_refused:
            seen.discard("UNAVAILABLE")
        return set(self.answered) <= {"OK", "RESOURCE_EXHAUSTED"} and seen <= {"OK", "RESOURCE_EXHAUSTED"}

    def ok(self, budget_ms: float) -> bool:
        """The issue's targets: only OK or RESOURCE_EXHAUSTED, the gateway's p99 of accepted calls
        within the budget, memory bounded, and the next calls served at once."""
        return (
            self.codes_ok()
            and bool(self.accepted)
            and percentile(self.served, 99) <= budget_ms
            and self.rss_max < self.rss_start + 300
            and self.after_ms < 1000
        )

    def lines(self, budget_ms: float) -> list[str]:
        q = percentile
        return [
            f"Capacity {self.capacity:.0f} texts/s (closed loop); offered {self.rate:.0f} calls/s "
            f"({self.rate / self.capacity:.1f}x) for {self.seconds:.0f} s, open loop, 5 s deadlines; "
            f"queue-time budget {budget_ms:.0f} ms. The load generator runs on the same CPUs.",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| calls sent | {self.sent} ({self.sent / self.seconds:.0f}/s) |",
            f"| accepted calls | {len(self.accepted)} ({len(self.accepted) / self.seconds:.0f}/s, "
            f"{len(self.accepted) / self.seconds / self.capacity:.2f} of capacity) |",
            f"| accepted p50 / p99, in the gateway | {q(self.served, 50):.0f} / {q(self.served, 99):.0f} ms |",
            f"| accepted p50 / p99, as the client saw them | {q(self.accepted, 50):.0f} / {q(self.accepted, 99):.0f} ms |",
            f"| refused (RESOURCE_EXHAUSTED) | {len(self.refused)} |",
            f"| of which by gRPC's core over max_concurrent_rpcs, before any handler | {self.core_refused} |",
            f"| UNAVAILABLE: streams reset by the HTTP/2 stream limit (REFUSED_STREAM), before any handler | {self.stream_refused} |",
            f"| refusal p50 / p99 | {q(self.refused, 50):.1f} / {q(self.refused, 99):.1f} ms |",
            f"| refusals by the gateway's reason | {', '.join(f'{k} {v}' for k, v in sorted(self.reasons.items())) or 'none'} |",
            f"| other status codes | {', '.join(f'{k} {v}' for k, v in sorted(self.codes.items()) if k not in ('OK', 'RESOURCE_EXHAUSTED', _CORE_REFUSED, _STREAM_REFUSED) and not (k == 'UNAVAILABLE' and v == self.stream_refused)) or 'none'} |",
            f"| status codes as the gateway answered them | {', '.join(f'{k} {v}' for k, v in sorted(self.answered.items()))} |",
            f"| CANCELLED at the client for calls no handler ran (RST_STREAM from the server's core) | {self.never_handled} |",
            f"| gateway RSS start / max | {self.rss_start:.0f} / {self.rss_max:.0f} MiB |",
            f"| median latency right after | {self.after_ms:.0f} ms |",
            f"| CPU cores used: {', '.join(self.cores)} | {' / '.join(f'{v:.2f}' for v in self.cores.values())} |",
            f"| CPU time taken by the hypervisor (steal) | {self.steal:.0%} |",
            f"| accepted p99 in the gateway, per {_WINDOW_S} s window | {', '.join(f'{q(w, 99):.0f}' for w in self.windows)} ms |",
            *(
                f"| stage {name}: observations; share over 0.2 s / over 0.5 s | {n}; {over_02:.1%} / {over_05:.1%} |"
                for name, (n, over_02, over_05) in self.stages.items()
            ),
            f"| targets met (codes, gateway p99 within the budget, memory, recovery) | {'yes' if self.ok(budget_ms) else 'no'} |",
        ] + [f"| other: {what} | {count} |" for what, count in sorted(self.unexpected.items())]


def percentile(xs: list[float], p: int) -> float:
    if len(xs) > 1:
        return statistics.quantiles(xs, n=100)[p - 1]
    return xs[0] if xs else 0.0


async def _closed_loop(target: str, workers: int, seconds: float) -> float:
    done = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        end = time.monotonic() + seconds

        async def worker(i: int) -> None:
            nonlocal done
            while time.monotonic() < end:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.Classify(pb.ClassifyRequest(text=TEXTS[(done + i) % len(TEXTS)]), timeout=10)
                    done += 1

        await asyncio.gather(*(worker(i) for i in range(workers)))
    return done / seconds


_AFTER_CALLS = 20
# A RESOURCE_EXHAUSTED no handler of the gateway ran (also counted under RESOURCE_EXHAUSTED).
_CORE_REFUSED = "RESOURCE_EXHAUSTED before any handler"
# An UNAVAILABLE whose stream gRPC's HTTP/2 layer reset with REFUSED_STREAM (over
# max_streams_per_connection): nothing ran, and the client may retry (also counted under UNAVAILABLE).
_STREAM_REFUSED = "UNAVAILABLE, stream refused"
_WINDOW_S = 10


async def _open_loop(target: str, rate: float, seconds: float, gateway_pid: int, rss: list[float]):
    accepted, served, refused, codes, unexpected = [], [], [], Counter(), Counter()
    sent_at: list[float] = []  # when each accepted call was sent, seconds into the window
    tasks: set[asyncio.Task] = set()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)

        async def one(i: int) -> None:
            began = time.perf_counter()
            try:
                reply = await stub.Classify(pb.ClassifyRequest(text=TEXTS[i % len(TEXTS)]), timeout=5)
                accepted.append((time.perf_counter() - began) * 1e3)
                served.append(reply.server_latency_us / 1e3)
                sent_at.append(began - start)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as err:
                codes[err.code().name] += 1
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    refused.append((time.perf_counter() - began) * 1e3)
                    # The gateway's refusals say when to retry; gRPC's core, refusing a call over
                    # max_concurrent_rpcs before any handler runs, does not.
                    if not any(k == "retry-after-ms" for k, _ in (err.trailing_metadata() or ())):
                        codes[_CORE_REFUSED] += 1
                elif err.code() == grpc.StatusCode.UNAVAILABLE and "error code 7" in (err.details() or ""):
                    codes[_STREAM_REFUSED] += 1  # RST_STREAM REFUSED_STREAM: the HTTP/2 stream limit
                else:
                    took = time.perf_counter() - began
                    unexpected[f"{err.code().name} after {took:.1f} s: {(err.details() or '')[:120]}"] += 1

        start, sent, last_rss = time.perf_counter(), 0, 0.0
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(int(elapsed * rate) - sent):
                task = asyncio.create_task(one(sent))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if elapsed - last_rss >= 1:
                rss.append(rss_mib(gateway_pid))
                last_rss = elapsed
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)
        after = []
        for i in range(_AFTER_CALLS):
            t = time.perf_counter()
            await stub.Classify(pb.ClassifyRequest(text=TEXTS[i % len(TEXTS)]), timeout=5)
            after.append((time.perf_counter() - t) * 1e3)
    return sent, accepted, served, refused, dict(codes), statistics.median(after), dict(unexpected), sent_at


def _stage_shares(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, tuple[int, float, float]]:
    """Observations per stage between two histogram reads, and the shares over 0.2 and 0.5 s."""
    shares = {}
    for stage, buckets in after.items():
        old = before.get(stage, {})
        count = buckets[math.inf] - old.get(math.inf, 0)
        if count > 0:
            over = [(count - (buckets[b] - old.get(b, 0))) / count for b in (0.2, 0.5)]
            shares[stage] = (int(count), over[0], over[1])
    return shares


def overload(serve: Serve, seconds: float, factor: float, rate: float | None = None) -> OverloadResult:
    """Closed-loop capacity for 10 s, then ``factor`` times it (or ``rate`` calls/s) open loop for ``seconds``."""
    asyncio.run(_closed_loop(serve.target, 32, 3))  # warm-up: first runs of each session are slow
    capacity = asyncio.run(_closed_loop(serve.target, 32, 10))
    offered = rate or factor * capacity
    pid = serve.gateway_pid()
    triton = serve.triton_pid()
    groups = {"load generator": [os.getpid()], "gateway": [pid], "Triton": [triton, *_children(triton)]}
    used = {name: _cpu_s(pids) for name, pids in groups.items()}
    steal_before, total_before = _cpu_times()
    answered_before = serve.answered("Classify")
    stages_before = serve.histograms("emotionaware_stage_seconds", "stage")
    reasons_before = refusals(serve.metrics_port)
    started = time.monotonic()
    rss = [rss_mib(pid)]
    sent, accepted, served, refused, codes, after, unexpected, sent_at = asyncio.run(
        _open_loop(serve.target, offered, seconds, pid, rss)
    )
    took = time.monotonic() - started
    cores = {name: (_cpu_s(groups[name]) - used[name]) / took for name in groups}
    steal_after, total_after = _cpu_times()
    steal = (steal_after - steal_before) / max(1, total_after - total_before)
    answered = serve.answered("Classify")
    answered.subtract(answered_before)
    answered["OK"] -= _AFTER_CALLS  # the calls made right after the window
    window = {k: v for k, v in answered.items() if v}
    stages = _stage_shares(stages_before, serve.histograms("emotionaware_stage_seconds", "stage"))
    reasons = dict(refusals(serve.metrics_port) - reasons_before)
    windows = [[ms for ms, at in zip(served, sent_at, strict=True) if w <= at < w + _WINDOW_S]
               for w in range(0, math.ceil(seconds), _WINDOW_S)]  # fmt: skip
    return OverloadResult(capacity, offered, seconds, sent, accepted, served, refused, codes,
                          rss[0], max(rss), after, cores, steal, unexpected, window, windows, stages,
                          reasons)  # fmt: skip


# -- correspondence ---------------------------------------------------------------------------


def _variants(i: int) -> str:
    """A distinct text per request index, so an answer can be matched to its request."""
    return f"{TEXTS[i % len(TEXTS)]} #{i}"


def correspondence(serve: Serve, requests: int, concurrency: int = 32) -> dict:
    """Unary, batch and stream calls at once; every answer compared with its request's own answer."""
    return asyncio.run(_correspondence(serve.target, requests, concurrency))


async def _correspondence(target: str, requests: int, concurrency: int) -> dict:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        # Reference: each distinct text classified alone, one call at a time.
        distinct = 512
        reference = {}
        for i in range(distinct):
            r = await stub.Classify(
                pb.ClassifyRequest(text=_variants(i), options=pb.ClassifyOptions(return_all_scores=True))
            )
            reference[_variants(i)] = {s.label: s.score for s in r.scores}
        counts, counts_refused = Counter(), Counter()
        mismatches: list[str] = []
        rng = random.Random(0)
        next_id = 0

        async def polite(call, *args, **kwargs):
            """A client that backs off as told (retry-after-ms) when the server sheds load."""
            while True:
                try:
                    return await call(*args, **kwargs)
                except grpc.aio.AioRpcError as err:
                    if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                        raise
                    counts_refused["RESOURCE_EXHAUSTED"] += 1
                    hint = dict(err.trailing_metadata() or ()).get("retry-after-ms", "100")
                    await asyncio.sleep(int(hint) / 1000)

        def refused(item: pb.BatchItem | pb.ClassifyStreamResponse) -> bool:
            """An item shed under load (RESOURCE_EXHAUSTED) has no answer to compare; other errors do."""
            if item.HasField("error") and item.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]:
                counts_refused["RESOURCE_EXHAUSTED"] += 1
                return True
            return False

        def check(text: str, reply: pb.ClassifyResponse, where: str) -> None:
            got = {s.label: s.score for s in reply.scores}
            want = reference[text]
            if got.keys() != want.keys() or max(abs(got[k] - want[k]) for k in got) > 1e-4:
                mismatches.append(where)

        async def unary() -> None:
            text = _variants(rng.randrange(distinct))
            reply = await polite(
                stub.Classify,
                pb.ClassifyRequest(text=text, options=pb.ClassifyOptions(return_all_scores=True)),
                timeout=30,
            )
            check(text, reply, "Classify")
            counts["Classify"] += 1

        async def batch() -> None:
            texts = [_variants(rng.randrange(distinct)) for _ in range(rng.randint(1, 32))]
            reply = await polite(
                stub.ClassifyBatch,
                pb.ClassifyBatchRequest(texts=texts, options=pb.ClassifyOptions(return_all_scores=True)),
                timeout=30,
            )
            if len(reply.items) != len(texts):
                mismatches.append("ClassifyBatch item count")
            for text, item in zip(texts, reply.items, strict=False):
                if not refused(item):
                    check(text, item.result, "ClassifyBatch")
            counts["ClassifyBatch texts"] += len(texts)

        async def stream() -> None:
            nonlocal next_id
            # Interleaved conversations; goemotions (no context) so every answer has a reference,
            # and ids and order are checked for the conversation bookkeeping.
            sent = []
            for _ in range(rng.randint(4, 24)):
                next_id += 1
                sent.append(pb.ClassifyStreamRequest(conversation_id=f"c{rng.randrange(4)}", speaker="a",
                    text=_variants(rng.randrange(distinct)), message_id=str(next_id), model="goemotions",
                    options=pb.ClassifyOptions(return_all_scores=True)))  # fmt: skip
            replies = [r async for r in stub.ClassifyStream(iter(sent), timeout=60)]
            if [r.message_id for r in replies] != [m.message_id for m in sent]:
                mismatches.append("ClassifyStream order")
            for message, reply in zip(sent, replies, strict=False):
                if reply.conversation_id != message.conversation_id:
                    mismatches.append("ClassifyStream conversation id")
                if not refused(reply):
                    check(message.text, reply.result, "ClassifyStream")
            counts["ClassifyStream messages"] += len(sent)

        total = lambda: sum(counts.values())  # noqa: E731
        started = time.monotonic()

        async def worker() -> None:
            while total() < requests:
                kind = rng.random()
                await (unary() if kind < 0.6 else batch() if kind < 0.8 else stream())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"answers": total(), "by_rpc": dict(counts), "mismatches": len(mismatches),
                "refused_and_retried": counts_refused["RESOURCE_EXHAUSTED"],
                "examples": mismatches[:5], "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("proof", choices=("chaos", "overload", "correspondence"))
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--rounds", type=int, default=3, help="chaos: rounds of the three faults")
    parser.add_argument("--seconds", type=float, default=60, help="overload: duration")
    parser.add_argument("--factor", type=float, default=4.0, help="overload: offered load over capacity")
    parser.add_argument(
        "--rate",
        type=float,
        help="overload: offered calls/s instead of --factor (to compare settings at one load)",
    )
    parser.add_argument("--requests", type=int, default=100_000, help="correspondence: answers to check")
    parser.add_argument(
        "--budget-ms", type=float, default=500, help="overload: the gateway's queue budget (report)"
    )
    parser.add_argument(
        "--streams-per-connection",
        type=int,
        default=0,
        help="overload: the gateway's max_streams_per_connection (0: its default, no limit)",
    )
    parser.add_argument("--log-dir", type=Path, default=Path("build/logs/reliability"))
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    lines = [
        f"# {args.proof}, {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        f"Machine: {(m := machine())['cpu']}, {m['cpus']} CPUs.",
        "",
    ]
    if args.streams_per_connection:  # the gateway's settings mirror EMOTIONAWARE_* variables
        os.environ["EMOTIONAWARE_MAX_STREAMS_PER_CONNECTION"] = str(args.streams_per_connection)
        lines += [f"Gateway: max_streams_per_connection {args.streams_per_connection}.", ""]
    serve = Serve(args.model_repository, args.log_dir)
    try:
        if args.proof == "chaos":
            results = chaos(serve, args.rounds)
            ok = chaos_ok(results)
            lines += [*CHAOS_HEADER, *(r.row() for r in results)]
        elif args.proof == "overload":
            result = overload(serve, args.seconds, args.factor, args.rate)
            ok = result.ok(args.budget_ms)
            lines += result.lines(args.budget_ms)
        else:
            r = correspondence(serve, args.requests)
            ok = r["mismatches"] == 0
            lines += [
                f"{r['answers']} answers checked in {r['seconds']} s ({r['by_rpc']}): {r['mismatches']} mismatches; "
                f"{r['refused_and_retried']} calls or items shed (RESOURCE_EXHAUSTED) and retried or skipped."
            ]
    finally:
        code = serve.stop()
    left = serve.leftovers() + ([f"serve exit code {code}"] if code else [])
    lines += ["", f"After stopping serve (SIGTERM): left behind {', '.join(left) or 'nothing'}."]
    ok = ok and not left
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
