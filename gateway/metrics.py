"""Prometheus metrics of the gateway (served by prometheus_client on the metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Buckets from 0.25 ms to 5 s: single-text calls live in the low milliseconds.
_LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

REQUESTS = Counter(
    "emotionaware_requests_total", "gRPC requests by method and status code", ["method", "code"]
)
ITEM_ERRORS = Counter(
    "emotionaware_item_errors_total",
    "Per-item errors inside successful ClassifyBatch and ClassifyStream calls, by status code",
    ["method", "code"],
)
LATENCY = Histogram(
    "emotionaware_request_seconds", "Request latency in the gateway", ["method"], buckets=_LATENCY_BUCKETS
)
STAGE_LATENCY = Histogram(
    "emotionaware_stage_seconds",
    "Latency per pipeline stage: tokenize, queue (waiting for a batch), infer (per batch), postprocess",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
TOKENS = Histogram(
    "emotionaware_request_tokens",
    "Tokens per text (before truncation)",
    buckets=(8, 16, 32, 64, 128, 256, 512, 1024, 4096),
)
SENTENCES = Histogram(
    "emotionaware_analyze_sentences",
    "Sentences per Analyze call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
POLICY_MATCHES = Counter(
    "emotionaware_policy_matches_total",
    "Policy rules (routing file [policies]) that matched, by rule and scope (text, sentence, conversation)",
    ["rule", "scope"],
)
FEEDBACK = Counter(
    "emotionaware_feedback_total",
    "Feedback submissions by outcome: stored, refused (its queue full), unavailable (database unreachable), "
    "failed (anything else, e.g. a schema newer than the gateway)",
    ["outcome"],
)
TRUNCATED = Counter("emotionaware_truncated_texts_total", "Texts cut to the model's token limit", ["model"])
BATCH_TEXTS = Histogram(
    "emotionaware_batch_texts",
    "Sequences per batch sent to the backend",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PADDING_EFFICIENCY = Histogram(
    "emotionaware_batch_padding_efficiency",
    "Real tokens / padded tokens per batch sent to the backend (1 = no padding)",
    ["model"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
)
BATCH_TOKENS = Counter(
    "emotionaware_batch_tokens_total",
    "Tokens sent to the backend: kind=real or padded (real/padded over any window is the efficiency)",
    ["model", "kind"],
)
REFUSED = Counter(
    "emotionaware_refused_total",
    "Requests refused at admission by a model's queue, by traffic class (interactive, bulk) and "
    "reason: queue_full (the class's sequence limit, or the limit of interactive calls waiting "
    "for room), queue_time (an interactive call that waited until it could no longer be "
    "answered within the queue-time budget) or deadline (the work ahead and the request's own "
    "would end past its deadline)",
    ["model", "traffic_class", "reason"],
)
HELD = Gauge(
    "emotionaware_admission_held",
    "Interactive calls and stream messages waiting for room in a model's queue (not yet admitted)",
    ["model"],
)
ADMISSION_ESTIMATE = Gauge(
    "emotionaware_admission_estimate",
    "What admission knows of a model's backend: term=batch_seconds and token_seconds (the fitted cost "
    "of one batch, a + b * padded tokens) and calibration (the factor estimates are scaled by: a high "
    "quantile of actual / estimated answer times of recent interactive texts)",
    ["model", "term"],
)
GC_PAUSE = Histogram(
    "emotionaware_gc_pause_seconds",
    "Garbage-collection pauses of the gateway process (the event loop waits for each), by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
QUEUE_DEPTH = Gauge("emotionaware_queue_depth", "Sequences waiting for a batch", ["model"])
BACKEND_RETRIES = Counter(
    "emotionaware_backend_retries_total", "Inference calls retried after UNAVAILABLE", ["model"]
)
ROUTING_RELOADS = Counter("emotionaware_routing_reloads_total", "Routing file reloads by result", ["result"])
STREAM_CONVERSATIONS = Gauge(
    "emotionaware_stream_conversations", "Conversations whose context is held by open streams"
)
CLIENT_REQUESTS = Counter(
    "emotionaware_client_requests_total",
    "Calls by client, method and status code; client is a configured name, other, anonymous or unauthenticated",
    ["client", "method", "code"],
)
