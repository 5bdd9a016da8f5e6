"""The gateway's settings: one frozen object built at start-up from flags and environment.

Every flag has a mirrored environment variable (``--triton-url`` <-> ``EMOTIONAWARE_TRITON_URL``);
a flag given on the command line wins over the environment, which wins over the default.
Nothing reads the environment at import time: :func:`load_settings` takes it as an argument.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from emotionaware.net import is_local_address
from emotionaware.paths import MODEL_REPOSITORY
from emotionaware.tokenization import CHUNK_OVERLAP_TOKENS, MAX_CHUNKS

ENV_PREFIX = "EMOTIONAWARE_"
DEFAULT_MODEL_REPOSITORY = MODEL_REPOSITORY


def setting(default: object, help: str):
    """A settings field with its ``--help`` text: one place says what each setting does."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Gateway configuration (see ``emotionaware-gateway --help`` for each field)."""

    listen: str = setting("127.0.0.1:50051", "host:port the gRPC server binds (0.0.0.0:50051 in containers)")
    http_listen: str = setting(
        "127.0.0.1:8080",
        "host:port of the HTTP/JSON API, its OpenAPI document and the playground (empty: no HTTP port)",
    )
    tls_cert_file: str = setting("", "PEM certificate chain for TLS on the listen port (with --tls-key-file)")
    tls_key_file: str = setting("", "PEM private key for TLS on the listen port")
    tls_client_ca_file: str = setting(
        "", "PEM CA bundle: require client certificates it signed (mTLS; needs TLS)"
    )
    auth_tokens_file: str = setting(
        "", "TOML file of hashed bearer tokens naming clients (hot-reloaded); see gateway/tokens.py"
    )
    allow_unauthenticated: bool = setting(
        False, "serve a non-loopback address without tokens or mTLS (every caller is 'anonymous')"
    )
    credentials_poll_s: float = setting(
        2.0, "seconds between checks of the tokens file and TLS files for changes"
    )
    audit_log: bool = setting(
        True, "write one audit line per call (client, rpc, models, status, latency, sizes; never text)"
    )
    health_listen: str = setting(
        "", "host:port of an extra plaintext port with only grpc.health.v1 (for probes)"
    )
    triton_url: str = setting("127.0.0.1:8001", "Triton gRPC endpoint host:port")
    backend: str = setting(
        "triton", "inference backend: triton (gRPC to --triton-url) or embedded (ONNX Runtime in process)"
    )
    model_repository: Path = setting(
        DEFAULT_MODEL_REPOSITORY,
        "Triton model repository holding each model's tokenizer, labels and metadata",
    )
    routing_file: str = setting(
        "", "TOML routing file (models, versions, aliases, canary weights, limits); hot-reloaded"
    )
    routing_poll_s: float = setting(2.0, "seconds between checks of the routing file for changes")
    models: tuple[str, ...] = setting(
        (), "without a routing file: comma-separated model names to serve (empty: all in the repository)"
    )
    default_model: str = setting("goemotions", "without a routing file: model of the default alias")
    stream_model: str = setting(
        "conversation", "model or alias used by ClassifyStream messages that name none"
    )
    max_text_chars: int = setting(
        10_000, "longest accepted text, in characters (a routing file can set it per model)"
    )
    max_batch_texts: int = setting(
        256, "most texts per ClassifyBatch call (a routing file can set it per model)"
    )
    max_context_turns: int = setting(64, "most context turns accepted in one Classify request")
    stream_history_turns: int = setting(16, "earlier turns kept per conversation of a stream")
    stream_max_conversations: int = setting(
        1024, "conversations remembered per stream (least recently used forgotten)"
    )
    feedback_database: str = setting(
        "sqlite:///emotionaware-feedback.sqlite3",
        "SubmitFeedback's database (SQLAlchemy URL): a SQLite file, or postgresql+psycopg://user@host/db; "
        "opened on the first submission; empty: SubmitFeedback is off",
    )
    feedback_queue_max: int = setting(
        1000, "feedback submissions waiting to be written before RESOURCE_EXHAUSTED"
    )
    feedback_migrate: bool = setting(
        True,
        "bring the feedback database to the newest schema when opening it (else: emotionaware-feedback migrate)",
    )
    request_id_key_file: str = setting(
        "",
        "file with the key that signs request ids (created when missing; share it between replicas); "
        "empty: a random key per process",
    )
    stream_summary_turns: int = setting(
        5, "turns of a speaker in a conversation summary's negative moving average"
    )
    stream_max_pending: int = setting(
        128, "messages of one stream classified at once (the stream is not read beyond)"
    )
    max_chunks: int = setting(MAX_CHUNKS, "most windows classified per text in chunk mode")
    max_sentences: int = setting(128, "most sentences of one Analyze text")
    chunk_overlap_tokens: int = setting(
        CHUNK_OVERLAP_TOKENS, "tokens shared by consecutive windows in chunk mode"
    )
    default_timeout_s: float = setting(10.0, "deadline applied when a client sends none, in seconds")
    # Calls (a stream counts once) the server handles at once; beyond, gRPC refuses new ones
    # with RESOURCE_EXHAUSTED. With max_message_bytes it bounds the memory requests can hold.
    max_concurrent_rpcs: int = setting(
        1024, "calls handled at once (a stream counts once); beyond: RESOURCE_EXHAUSTED"
    )
    # A flood on one connection is refused below Python: gRPC's HTTP/2 layer resets streams past
    # this many (REFUSED_STREAM: nothing was processed, safe to retry), so they cost the gateway
    # no handler, parsing or admission (bench/results/*-amd-stream-limit.md).
    max_streams_per_connection: int = setting(
        0,
        "HTTP/2 streams one connection may have open at once; beyond, gRPC resets new ones "
        "(REFUSED_STREAM, UNAVAILABLE at the client, safe to retry) before any handler runs (0: no limit)",
    )
    # A full ClassifyBatch (256 texts x 10,000 characters, up to 4 bytes each) exceeds gRPC's 4 MiB default.
    max_message_bytes: int = setting(
        16 * 1024 * 1024, "largest gRPC message accepted or sent, in bytes (client and Triton side too)"
    )
    batch_max_texts: int = setting(64, "most sequences per batch sent to the backend")
    batch_token_budget: int = setting(8192, "most padded tokens (sequences x padded length) per batch")
    batch_wait_ms: float = setting(2.0, "longest a sequence waits for more to batch with, in milliseconds")
    batch_max_inflight: int = setting(2, "batches of one model version at the backend at the same time")
    queue_max_texts: int = setting(
        2048, "interactive sequences queued per model version before RESOURCE_EXHAUSTED"
    )
    bulk_queue_max_texts: int = setting(
        8192, "bulk sequences (ClassifyBatch by default) queued per model version before RESOURCE_EXHAUSTED"
    )
    queue_budget_ms: float = setting(
        500.0,
        "p99 answer time of interactive calls that admission aims for, in milliseconds: a call that would "
        "be answered later waits for room, and is refused once it could no longer make it (0: off)",
    )
    admission_hold_max: int = setting(
        1024,
        "interactive calls per model version that may wait for room at once; beyond, RESOURCE_EXHAUSTED at once",
    )
    refuse_after_ms: float = setting(
        3000.0,
        "an interactive call that cannot be answered within the budget is refused this long after it "
        "arrived (or at its deadline, if sooner), so callers that retry at once do not spin",
    )
    # Python's default (700) made full collections every few seconds under load; at 10,000 none
    # came in 15 s at 256 callers, and pauses in all fell from 585 to 364 ms (`make gc-pauses`).
    gc_young_threshold: int = setting(
        10_000,
        "allocations the garbage collector's young generation takes before a collection (0: Python's "
        "default, 700); start-up objects are frozen out of collections either way",
    )
    retry_after_ms: int = setting(
        100, "back-off suggested in the retry-after-ms trailer of RESOURCE_EXHAUSTED"
    )
    pad_to_buckets: bool = setting(
        False, "pad batches to the model's length buckets (for backends without ragged batching)"
    )
    backend_retries: int = setting(2, "retries of an inference call that failed with UNAVAILABLE")
    backend_threads: int = setting(0, "embedded backend: ONNX Runtime intra-op threads (0: one per core)")
    metrics_port: int = setting(9090, "Prometheus metrics HTTP port (0 disables)")
    health_poll_s: float = setting(2.0, "seconds between readiness checks of Triton and the models")
    shutdown_grace_s: float = setting(10.0, "seconds in-flight requests get to finish on SIGTERM")
    # Request text is private: no log line of the gateway ever contains it.
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    log_format: str = setting("text", "text or json (one JSON object per line); request text is never logged")

    def __post_init__(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("tls_client_ca_file (mTLS) needs TLS: give tls_cert_file and tls_key_file too")
        for address in (self.listen, self.http_listen):
            if not address or self.auth_tokens_file or self.tls_client_ca_file or self.allow_unauthenticated:
                continue
            if not is_local_address(address):
                raise ValueError(
                    f"refusing to serve {address} without authentication: set auth_tokens_file "
                    "(bearer tokens) or tls_client_ca_file (mTLS), or allow_unauthenticated=true"
                )
        if self.http_listen and not self.http_listen.rpartition(":")[2].isdigit():
            raise ValueError(f"http_listen must be host:port, not {self.http_listen!r}")
        if self.credentials_poll_s <= 0:
            raise ValueError(f"credentials_poll_s must be positive, got {self.credentials_poll_s}")
        if self.models and self.default_model not in self.models:
            raise ValueError(f"default model {self.default_model!r} is not among served models {self.models}")
        if self.max_text_chars < 1 or self.default_timeout_s <= 0 or self.max_message_bytes < 1024:
            raise ValueError("max_text_chars, default_timeout_s and max_message_bytes must be positive")
        if self.backend not in ("triton", "embedded"):
            raise ValueError(f"backend must be triton or embedded, not {self.backend!r}")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log_format must be text or json, not {self.log_format!r}")
        positive = ("max_concurrent_rpcs", "max_batch_texts", "batch_max_texts", "batch_token_budget",
                    "batch_max_inflight", "queue_max_texts", "bulk_queue_max_texts", "admission_hold_max", "max_chunks", "max_sentences", "stream_history_turns", "stream_max_conversations", "stream_summary_turns", "feedback_queue_max",
                    "stream_max_pending")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("queue_max_texts", "bulk_queue_max_texts"):
            if getattr(self, name) < self.max_batch_texts:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must hold a whole batch call (max_batch_texts "
                    f"{self.max_batch_texts})"
                )
        if self.max_streams_per_connection < 0:
            raise ValueError(
                f"max_streams_per_connection must be 0 (no limit) or more, got {self.max_streams_per_connection}"
            )
        if self.queue_budget_ms < 0:
            raise ValueError(f"queue_budget_ms must not be negative, got {self.queue_budget_ms}")
        if min(self.batch_wait_ms, self.chunk_overlap_tokens, self.backend_retries, self.refuse_after_ms) < 0:
            raise ValueError(
                "batch_wait_ms, chunk_overlap_tokens, backend_retries and refuse_after_ms must not be negative"
            )


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _converter(default: object):
    if isinstance(default, bool):
        return _boolean
    if isinstance(default, tuple):
        return lambda v: tuple(x.strip() for x in v.split(",") if x.strip())
    return type(default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotionaware-gateway",
        description="EmotionAware gRPC gateway in front of Triton. "
        f"Each flag can also be set as an environment variable {ENV_PREFIX}<FLAG_NAME>.",
    )
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        parser.add_argument(
            flag,
            dest=f.name,
            type=_converter(f.default),
            default=None,
            help=f"{f.metadata['help']} [env {env}, default {f.default}]",
        )
    return parser


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
    """Flags over environment over defaults; raises ``SystemExit`` with a message when invalid."""
    parser = build_parser()
    args = parser.parse_args(argv)
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = getattr(args, f.name)
        if raw is None and (env_value := environ.get(ENV_PREFIX + f.name.upper())) is not None:
            try:
                raw = _converter(f.default)(env_value)
            except ValueError as exc:
                parser.error(f"{ENV_PREFIX + f.name.upper()}={env_value!r}: {exc}")
        if raw is not None:
            values[f.name] = raw
    try:
        return Settings(**values)
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits
