"""What authentication, grants, quotas and the audit line cost per call.

    python -m bench.auth [--calls 2000] [--out FILE]

In-process gateways (embedded ONNX Runtime backend, the exported repository) on free loopback
ports, one after the other, called sequentially by one client: the same calls without the
caller interceptor (the baseline), with it but no credentials and no audit line, with bearer
tokens, a quota and the audit line, and with mTLS plus tokens. It prints per-call latency and
the ratio to the baseline measured in the same run. ``GetModel`` does no inference, so it
shows the interceptor's cost alone; ``Classify`` shows it next to a real inference.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from bench.run import machine
from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc
from gateway.backends.onnxruntime import EmbeddedBackend
from gateway.server import GatewayServer
from gateway.settings import DEFAULT_MODEL_REPOSITORY, Settings
from gateway.tokens import token_hash

TOKEN = "bench-token-0123456789abcdef"


@dataclass(frozen=True)
class Setup:
    name: str
    interceptor: bool = True
    tokens: bool = False
    mtls: bool = False
    audit: bool = False


SETUPS = (
    Setup("no interceptor (baseline)", interceptor=False),
    Setup("interceptor, anonymous, no audit"),
    Setup("bearer token + quota + audit line", tokens=True, audit=True),
    Setup("mTLS + bearer token + quota + audit line", tokens=True, mtls=True, audit=True),
)


def _pki(folder: Path) -> dict[str, Path]:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=bench-ca",
        "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.crt"))  # fmt: skip
    for name in ("server", "client"):
        cn = "localhost" if name == "server" else "bench"
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", str(folder / f"{name}.key"),
            "-out", str(folder / f"{name}.csr"))  # fmt: skip
        (folder / f"{name}.ext").write_text(f"subjectAltName=DNS:{cn}\n")
        run("x509", "-req", "-in", str(folder / f"{name}.csr"), "-CA", str(folder / "ca.crt"), "-CAkey",
            str(folder / "ca.key"), "-CAcreateserial", "-days", "1", "-extfile", str(folder / f"{name}.ext"),
            "-out", str(folder / f"{name}.crt"))  # fmt: skip
    return {p.stem + p.suffix: p for p in folder.iterdir()}


def _settings(setup: Setup, repository: Path, folder: Path, pki: dict[str, Path]) -> Settings:
    settings = Settings(listen="127.0.0.1:0", http_listen="", backend="embedded", model_repository=repository, metrics_port=0,
                        audit_log=setup.audit, queue_budget_ms=0)  # fmt: skip
    if setup.tokens:
        tokens = folder / "tokens.toml"
        tokens.write_text(f'[[tokens]]\nclient = "bench"\nsha256 = "{token_hash(TOKEN)}"\n')
        routing = folder / "routing.toml"
        names = sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))
        routing.write_text(
            "".join(f"[models.{n}]\n" for n in names)
            + '[aliases]\ndefault = "goemotions"\n[clients.bench]\ntexts_per_s = 100000\n'
        )
        settings = replace(settings, auth_tokens_file=str(tokens), routing_file=str(routing))
    if setup.mtls:
        settings = replace(settings, tls_cert_file=str(pki["server.crt"]), tls_key_file=str(pki["server.key"]),
                           tls_client_ca_file=str(pki["ca.crt"]))  # fmt: skip
    return settings


async def _measure(
    setup: Setup, settings: Settings, pki: dict[str, Path], calls: int
) -> dict[str, list[float]]:
    server = GatewayServer(settings, backend=EmbeddedBackend(settings.model_repository, threads=1))
    if not setup.interceptor:
        server.interceptors = server.interceptors[1:]
    port = await server.start()
    metadata = (("authorization", f"Bearer {TOKEN}"),) if setup.tokens else ()
    if setup.mtls:
        credentials = grpc.ssl_channel_credentials(
            pki["ca.crt"].read_bytes(), pki["client.key"].read_bytes(), pki["client.crt"].read_bytes()
        )
        channel = grpc.aio.secure_channel(f"localhost:{port}", credentials)
    else:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    timings: dict[str, list[float]] = {"GetModel": [], "Classify": []}
    try:
        stub = emotion_pb2_grpc.EmotionServiceStub(channel)
        requests = {
            "GetModel": lambda: stub.GetModel(pb.GetModelRequest(), metadata=metadata, timeout=10),
            "Classify": lambda: stub.Classify(
                pb.ClassifyRequest(text="thank you so much"), metadata=metadata, timeout=10
            ),
        }
        for rpc, make in requests.items():
            count = calls if rpc == "GetModel" else max(calls // 4, 50)
            for _ in range(50):  # warm-up: connection, handshake, first inference
                await make()
            for _ in range(count):
                started = time.perf_counter()
                await make()
                timings[rpc].append((time.perf_counter() - started) * 1e6)
    finally:
        await channel.close()
        await server.stop()
    return timings


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 100 else max(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--calls", type=int, default=2000, help="GetModel calls per setup (Classify: a quarter)"
    )
    parser.add_argument("--repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pki = _pki(folder)
        # Audit lines go to a file, as a log shipper would read them: the write is part of the cost.
        audit = logging.getLogger("emotionaware.audit")
        handler = logging.FileHandler(folder / "audit.log")
        saved = audit.level, audit.propagate
        audit.setLevel(logging.INFO)
        audit.addHandler(handler)
        audit.propagate = False
        try:
            results = {}
            for setup in SETUPS:
                settings = _settings(setup, args.repository, folder, pki)
                results[setup] = asyncio.run(_measure(setup, settings, pki, args.calls))
        finally:
            audit.removeHandler(handler)
            handler.close()
            audit.setLevel(saved[0])
            audit.propagate = saved[1]
        audit_lines = sum(1 for _ in (folder / "audit.log").open())
    base, host = results[SETUPS[0]], machine()
    lines = [
        f"# Cost of authentication and audit per call ({host['cpu']}, {host['cpus']} CPUs)",
        "",
        f"One sequential client, {args.calls} GetModel and {max(args.calls // 4, 50)} Classify calls per setup; "
        f"{audit_lines} audit lines written.",
        "",
        "| setup | GetModel p50 (us) | p99 | x baseline p50 | Classify p50 (us) | p99 | x baseline p50 |",
        "|---|---|---|---|---|---|---|",
    ]
    for setup, timings in results.items():
        cells = []
        for rpc in ("GetModel", "Classify"):
            p50 = statistics.median(timings[rpc])
            cells += [
                f"{p50:,.0f}",
                f"{_p(timings[rpc], 99):,.0f}",
                f"{p50 / statistics.median(base[rpc]):.2f}",
            ]
        lines.append(f"| {setup.name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
