"""The gateway's settings: one frozen object built at start-up from flags and environment.

Every flag has a mirrored environment variable (``--triton-url`` <-> ``EMOTIONAWARE_TRITON_URL``);
a flag given on the command line wins over the environment, which wins over the default.
Nothing reads the environment at import time: :func:`load_settings` takes it as an argument.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

ENV_PREFIX = "EMOTIONAWARE_"
DEFAULT_MODEL_REPOSITORY = Path(__file__).resolve().parent.parent / "model_repository"


@dataclass(frozen=True)
class Settings:
    """Gateway configuration (see ``emotionaware-gateway --help`` for each field)."""

    listen: str = "127.0.0.1:50051"
    # TLS for the public port: PEM files (both or neither); empty serves plaintext.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Extra plaintext port serving only grpc.health.v1 (for kubelet probes, which cannot speak
    # TLS); empty: none.
    health_listen: str = ""
    triton_url: str = "127.0.0.1:8001"
    model_repository: Path = DEFAULT_MODEL_REPOSITORY
    models: tuple[str, ...] = ()  # empty: every model in the model repository
    default_model: str = "goemotions"
    max_text_chars: int = 10_000
    default_timeout_s: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    metrics_port: int = 9090
    health_poll_s: float = 2.0
    shutdown_grace_s: float = 10.0
    # Request text is private: no log line of the gateway ever contains it.
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file must be given together")
        if self.models and self.default_model not in self.models:
            raise ValueError(f"default model {self.default_model!r} is not among served models {self.models}")
        if self.max_text_chars < 1 or self.default_timeout_s <= 0 or self.max_message_bytes < 1024:
            raise ValueError("max_text_chars, default_timeout_s and max_message_bytes must be positive")


_HELP = {
    "listen": "host:port the gRPC server binds (0.0.0.0:50051 in containers)",
    "tls_cert_file": "PEM certificate chain for TLS on the listen port (with --tls-key-file)",
    "tls_key_file": "PEM private key for TLS on the listen port",
    "health_listen": "host:port of an extra plaintext port with only grpc.health.v1 (for probes)",
    "triton_url": "Triton gRPC endpoint host:port",
    "model_repository": "Triton model repository holding each model's tokenizer, labels and metadata",
    "models": "comma-separated model names to serve (empty: every model in the repository)",
    "default_model": "model used when a request names none",
    "max_text_chars": "longest accepted text, in characters",
    "default_timeout_s": "deadline applied when a client sends none, in seconds",
    "max_message_bytes": "largest gRPC message accepted or sent, in bytes",
    "metrics_port": "Prometheus metrics HTTP port (0 disables)",
    "health_poll_s": "seconds between readiness checks of Triton and the models",
    "shutdown_grace_s": "seconds in-flight requests get to finish on SIGTERM",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
}


def _converter(default: object):
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
            help=f"{_HELP[f.name]} [env {env}, default {f.default}]",
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
