"""``make perf-soak``: the gateway's memory over a long run at 80% of its peak throughput.

Starts Triton and the gateway (with the production admission), measures the peak unary
throughput (concurrency 32, 15 s; ``--peak-seconds``), then sends an open-loop load at 80% of it for ``--minutes``
while sampling the gateway's resident memory and the p99 and errors of each 10 s window, and
measures the peak again at the end (a shared host may have slowed meanwhile). The first minute
is warm-up; growth is measured from its end. Refusals are broken down by the gateway's reason.
Writes ``bench/results/<date>-<host>-soak.{md,json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench import gateway_load
from bench.run import OUT_DIR, RESULTS_DIR, machine, start_gateway
from emotionaware.datasets import DEFAULT_DATA_DIR, load_goemotions
from emotionaware.machine import result_name
from gateway.settings import DEFAULT_MODEL_REPOSITORY, Settings
from launcher.tritonserver import TritonServer, free_port


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def p99(latencies: list[float]) -> float:
    if len(latencies) < 2:
        return latencies[0] if latencies else 0.0
    return statistics.quantiles(latencies, n=100)[98]


def gateway_metrics(metrics_port: int):
    """The gateway's Prometheus metric families, read from its metrics port now."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    return text_string_to_metric_families(text.decode())


def refusals(metrics_port: int) -> Counter[str]:
    """The gateway's admission refusals so far, by reason (its emotionaware_refused_total)."""
    counts: Counter[str] = Counter()
    for family in gateway_metrics(metrics_port):
        if family.name == "emotionaware_refused":
            for sample in family.samples:
                if sample.name == "emotionaware_refused_total":
                    counts[sample.labels["reason"]] += int(sample.value)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=DEFAULT_MODEL_REPOSITORY)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--minutes", type=float, default=10.0)
    # 32: near the best level of `make perf` (182 vs 188 texts/s at 64 on 2026-12-01) and below
    # the queue-time budget, so the peak is not measured through refusals and instant retries.
    parser.add_argument("--peak-concurrency", type=int, default=32, help="unary calls in flight for the peak")
    parser.add_argument(
        "--peak-seconds", type=float, default=15.0, help="how long each peak measurement runs"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    texts = [e.text for e in load_goemotions(args.data_dir).test[:2000]]
    samples: list[tuple[float, float]] = []
    windows: list[tuple[float, float, int]] = []  # (second, p99 ms, errors) of the last tick
    with TritonServer(args.model_repository, log_path=OUT_DIR / "triton-soak.log") as triton:
        triton.wait_ready()
        # The soak runs the production admission (start_gateway turns the time budget off for
        # the saturation benchmarks): at 80% of peak nothing may be refused.
        metrics_port = free_port()
        gateway, target = start_gateway(triton.grpc_url, args.model_repository, OUT_DIR / "gateway-soak.log",
                                        f"--queue-budget-ms={Settings().queue_budget_ms}",
                                        f"--metrics-port={metrics_port}")  # fmt: skip
        try:
            peak = asyncio.run(
                gateway_load.unary(target, texts, args.peak_concurrency, args.peak_seconds)
            ).texts_per_s
            rate = 0.8 * peak
            print(
                f"peak {peak:.0f} texts/s; soaking at {rate:.0f} texts/s for {args.minutes} min",
                file=sys.stderr,
            )
            samples.append((0.0, rss_mib(gateway.pid)))
            before = refusals(metrics_port)  # the peak's closed loop may have been refused too
            seen, failed = [0], [0]

            def tick(elapsed: float, latencies: list[float], errors: Counter[str]) -> None:
                samples.append((round(elapsed), rss_mib(gateway.pid)))
                window, seen[0] = latencies[seen[0] :], len(latencies)
                total = sum(errors.values())
                windows.append((round(elapsed), p99(window), total - failed[0]))
                failed[0] = total

            result = asyncio.run(gateway_load.paced(target, texts, rate, args.minutes * 60, on_tick=tick))
            samples.append((round(args.minutes * 60), rss_mib(gateway.pid)))
            refused = dict(refusals(metrics_port) - before)
            # The peak again: a shared host can slow over the run, and then the soak ran at more
            # than 80% of what the host could do by its end.
            peak_end = asyncio.run(
                gateway_load.unary(target, texts, args.peak_concurrency, args.peak_seconds)
            ).texts_per_s
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
    warm = [mib for t, mib in samples if t >= 60] or [samples[-1][1]]
    growth = (warm[-1] - warm[0]) / warm[0]
    report = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "minutes": args.minutes,
        "peak_texts_per_s": round(peak, 1), "peak_end_texts_per_s": round(peak_end, 1), "rate": round(rate, 1), "load": result.summary(),
        "rss_mib": samples, "rss_after_warmup_mib": round(warm[0], 1), "rss_end_mib": round(warm[-1], 1),
        "rss_max_mib": round(max(m for _, m in samples), 1), "growth": round(growth, 4),
        "p99_windows_ms": [(t, v) for t, v, _ in windows], "errors_per_window": [(t, e) for t, _, e in windows],
        "refused_by_reason": refused,
    }  # fmt: skip
    steady = [v for t, v, _ in windows if t >= 60] or [0.0]
    by_second = {t: (v, e) for t, v, e in windows}

    def row(second: float, mib: float) -> str:
        p99_ms, errors = by_second.get(second, (float("nan"), ""))
        return f"| {second:.0f} | {mib:.1f} | {p99_ms:.1f} | {errors} |"

    m = report["machine"]
    lines = [
        f"# Gateway memory soak, {report['date']}",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB. Model `goemotions` behind the bundled "
        f"Triton, production admission (queue-time budget on). Peak unary throughput {peak:.0f} texts/s (concurrency {args.peak_concurrency}); soak at {rate:.0f} texts/s "
        f"(80%) for {args.minutes:g} minutes, open loop. The same peak measured after the soak: {peak_end:.0f} "
        f"texts/s (the soak's rate is {100 * rate / peak_end:.0f}% of it).",
        "",
        f"- Served: {result.texts} calls, p50 {result.percentile(50):.1f} ms, p99 {result.percentile(99):.1f} ms, "
        f"errors {result.errors or 0}; refused by the gateway's admission, by reason: {refused or 'none'}.",
        f"- Gateway RSS: {samples[0][1]:.0f} MiB at start, {warm[0]:.0f} MiB after the first minute, "
        f"{warm[-1]:.0f} MiB at the end, {report['rss_max_mib']:.0f} MiB at most: growth after warm-up "
        f"{100 * growth:+.1f}% (target: within 10%).",
        "",
        f"- p99 per 10 s window after warm-up: {min(steady):.1f} to {max(steady):.1f} ms "
        f"(median {statistics.median(steady):.1f} ms).",
        "",
        "| second | RSS MiB | p99 of the last 10 s, ms | errors in the last 10 s |",
        "|---:|---:|---:|---:|",
        *[row(t, mib) for t, mib in samples],
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / result_name(f"{m['host']}-soak")  # one day's AMD and Intel soaks both stay
    stem.with_suffix(".md").write_text("\n".join(lines))
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n".join(lines[:8]))


if __name__ == "__main__":
    main()
