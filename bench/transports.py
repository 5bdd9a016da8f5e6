"""HTTP/JSON against gRPC: the same unary Classify calls, closed loops, one run on one machine.

Starts ``make serve``'s program (real Triton, the gateway with both ports) on free loopback
ports, then for each concurrency runs gRPC, HTTP, gRPC, HTTP (alternating, so drift of a
shared machine lands on both) and prints a table: texts/s, p50 / p99 as the client saw them,
the CPU cores of the load generator, gateway and Triton, and HTTP's rate as a share of gRPC's.

    python -m bench.transports [--levels 1,16] [--seconds 10] [--rounds 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench.admission import Corpus, Outcome, closed_loop, corpus, measured
from bench.reliability import Serve
from bench.run import machine
from emotionaware.datasets import DEFAULT_DATA_DIR
from emotionaware.v1 import emotion_pb2 as pb
from gateway.settings import DEFAULT_MODEL_REPOSITORY


async def http_closed_loop(base_url: str, texts: Sequence[str], concurrency: int, seconds: float,
                           warmup_s: float = 1.0) -> Outcome:  # fmt: skip
    """``concurrency`` callers of POST /v1/classify over keep-alive connections, each sending its
    next call when the last one ends; counts what was answered after the warm-up."""
    out = Outcome(f"HTTP c{concurrency}")
    counter = itertools.count()
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:

        async def worker() -> None:
            while (now := time.perf_counter()) < stop_at:
                body = json.dumps({"text": texts[next(counter) % len(texts)], "model": "goemotions"})
                async with session.post(
                    "/v1/classify", data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    reply = await response.json()
                end = time.perf_counter()
                if response.status != 200:
                    if now >= measure_from:
                        if response.status == 429:
                            out.refused += 1
                        else:
                            out.errors[reply["error"]["status"]] += 1
                    continue
                if measure_from <= end <= stop_at:
                    out.texts += 1
                    out.latencies_ms.append((end - now) * 1e3)
                    out.served_ms.append(int(reply["serverLatencyUs"]) / 1e3)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    out.seconds = seconds
    return out


def run(
    serve: Serve, c: Corpus, levels: Sequence[int], seconds: float, rounds: int
) -> list[tuple[int, Outcome, Outcome]]:
    """Per level, the gRPC and HTTP outcomes of ``rounds`` alternating runs, merged per transport."""
    http_url = f"http://127.0.0.1:{serve.http_port}"

    def grpc_make(i: int) -> pb.ClassifyRequest:
        return pb.ClassifyRequest(text=c.short[i % len(c.short)], model="goemotions")

    asyncio.run(closed_loop(serve.target, grpc_make, 16, 3))  # warm-up: a session's first runs are slow
    rows = []
    for level in levels:
        merged = {"gRPC": Outcome(f"gRPC c{level}"), "HTTP": Outcome(f"HTTP c{level}")}
        for _ in range(rounds):
            for name in ("gRPC", "HTTP"):
                if name == "gRPC":
                    o = measured(serve, lambda: closed_loop(serve.target, grpc_make, level, seconds))  # noqa: B023
                else:
                    o = measured(serve, lambda: http_closed_loop(http_url, c.short, level, seconds))  # noqa: B023
                m = merged[name]
                m.seconds += o.seconds
                m.texts += o.texts
                m.refused += o.refused
                m.errors += o.errors
                m.latencies_ms += o.latencies_ms
                for k, v in o.cores.items():
                    m.cores[k] = m.cores.get(k, 0.0) + v / rounds
        rows.append((level, merged["gRPC"], merged["HTTP"]))
    return rows


def lines(rows: list[tuple[int, Outcome, Outcome]], seconds: float, rounds: int) -> list[str]:
    out = [
        f"Unary Classify on goemotions (GoEmotions dev texts), closed loops of {seconds:g} s, "
        f"{rounds} alternating rounds per transport. CPU cores: load generator / gateway / Triton.",
        "",
        "| load | transport | texts/s | p50 / p99 ms | refused | errors | cores | HTTP / gRPC |",
        "|---|---|---:|---:|---:|---|---|---:|",
    ]
    for level, g, h in rows:
        for name, o in (("gRPC", g), ("HTTP", h)):
            cores = " / ".join(f"{v:.2f}" for v in o.cores.values())
            ratio = f"{h.rate / g.rate:.2f}" if name == "HTTP" and g.rate else ""
            errors = ", ".join(f"{k} {v}" for k, v in o.errors.items()) or "none"
            out.append(f"| c{level} | {name} | {o.rate:.0f} | {o.p(50):.1f} / {o.p(99):.1f} | {o.refused} | {errors} "
                       f"| {cores} | {ratio} |")  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,16", help="closed-loop concurrencies")
    parser.add_argument("--seconds", type=float, default=10.0, help="each closed loop")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs per transport and level")
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--log-dir", type=Path, default=Path("build/logs/transports"))
    parser.add_argument("--min-ratio", type=float, default=0.8, help="exit 1 when HTTP / gRPC is below this")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    c = corpus(args.data_dir)
    serve = Serve(args.model_repository, args.log_dir)
    try:
        rows = run(serve, c, [int(x) for x in args.levels.split(",")], args.seconds, args.rounds)
    finally:
        serve.stop()
    m = machine()
    text = "\n".join([f"# HTTP/JSON and gRPC, {time.strftime('%Y-%m-%d %H:%M')}", "",
                      f"Machine: {m['cpu']}, {m['cpus']} CPUs.", "", *lines(rows, args.seconds, args.rounds)]) + "\n"  # fmt: skip
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    met = all(h.rate >= args.min_ratio * g.rate and not h.errors and not g.errors for _, g, h in rows)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
