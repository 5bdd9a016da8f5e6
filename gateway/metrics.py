"""Prometheus metrics of the gateway (served by prometheus_client on the metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Buckets from 0.5 ms to 5 s: single-text calls live in the low milliseconds.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

REQUESTS = Counter(
    "emotionaware_requests_total", "gRPC requests by method and status code", ["method", "code"]
)
LATENCY = Histogram(
    "emotionaware_request_seconds", "Request latency in the gateway", ["method"], buckets=_LATENCY_BUCKETS
)
STAGE_LATENCY = Histogram(
    "emotionaware_stage_seconds", "Latency per pipeline stage", ["stage"], buckets=_LATENCY_BUCKETS
)
TOKENS = Histogram(
    "emotionaware_request_tokens",
    "Tokens per text (before truncation)",
    buckets=(8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
TRUNCATED = Counter("emotionaware_truncated_texts_total", "Texts cut to the model's token limit", ["model"])
