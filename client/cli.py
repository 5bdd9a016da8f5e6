"""``emotionaware-client``: call every RPC of the gateway from a shell.

emotionaware-client classify "Thank you so much for your help!"
emotionaware-client classify --view ekman --top 3 "I miss her so much"
emotionaware-client classify --model conversation --context "ann:I got the job!" --speaker bob "No way!"
emotionaware-client classify --chunk --json "$(cat long-letter.txt)"
emotionaware-client batch "I love it" "This is scary"          # or one text per line on stdin
emotionaware-client stream < conversation.jsonl                # {"conversation_id", "speaker", "text"}
emotionaware-client models
emotionaware-client model conversation
emotionaware-client health

It is a user of the Python client package (``emotionaware_client``, clients/python): typed
results, retries that honour ``retry-after-ms``, batches of any length split by the server's
limit. Credentials: ``--token-file`` (or the EMOTIONAWARE_TOKEN environment variable) sends a
bearer token; ``--cert-file``/``--key-file`` present a client certificate (mTLS, with
``--ca-file``).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from emotionaware_client import (
    ClassifyResult,
    Conversation,
    EmotionAwareError,
    EmotionClient,
    ItemError,
    LongTextMode,
    Models,
    TlsConfig,
    Turn,
    View,
)

from emotionaware.net import is_local_address

VIEWS = [v.value for v in View]


def format_response(result: ClassifyResult, top: int) -> str:
    truncated = f" (truncated to {result.max_tokens})" if result.truncated else ""
    chunks = f", {result.chunk_count} chunks" if result.chunk_count > 1 else ""
    context = f", {result.context_turns} context turns" if result.context_turns else ""
    lines = [
        f"model {result.model} v{result.model_version}  ({result.score_type} scores)",
        f"predicted: {', '.join(result.predicted) or '(none above threshold)'}",
        f"tokens: {result.token_count}{truncated}{chunks}{context}"
        f"  server latency: {result.server_latency_us / 1000:.1f} ms",
    ]
    for score in result.scores[:top]:
        mark = "*" if score.predicted else " "
        # Single-label (softmax) models predict the top label: they have no thresholds to show.
        threshold = f"  (threshold {score.threshold:.2f})" if result.score_type == "sigmoid" else ""
        lines.append(f" {mark} {score.label:<15} {score.score:.3f}{threshold}")
    return "\n".join(lines)


def plain(value: Any) -> Any:
    """Dataclasses, enums and tuples as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value if not hasattr(value, "name") or isinstance(value.value, str) else value.name
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def as_json(value: Any) -> str:
    return json.dumps(plain(value), indent=2)


def item_error(error: ItemError) -> dict[str, Any]:
    return {"index": error.index, "code": error.code.name, "message": error.message}


def models_table(models: Models) -> str:
    rows = [("model", "version", "labels", "scores", "max tokens", "context", "views", "aliases")]
    for m in models.models:
        views = ",".join(v.value for v in m.views) or "-"
        rows.append((m.name, m.version, str(len(m.labels)), m.score_type, str(m.max_tokens),
                     str(m.context_turns) if m.context_turns else "-", views, ",".join(m.aliases) or "-"))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for alias in models.aliases:
        targets = ", ".join(f"{t.model}{'@' + t.model_version if t.model_version else ''} ({t.weight:g})"
                            for t in alias.targets)  # fmt: skip
        lines.append(f"alias {alias.name} -> {targets}")
    return "\n".join(lines)


def turn(value: str) -> Turn:
    speaker, sep, text = value.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected SPEAKER:TEXT, got {value!r}")
    return Turn(speaker=speaker, text=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotionaware-client", description="Call the EmotionAware gateway.")
    parser.add_argument(
        "--target", default="127.0.0.1:50051", help="gateway host:port (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="deadline of each call in seconds (default: %(default)s)"
    )
    parser.add_argument("--tls", action="store_true", help="use TLS (the system's CA certificates)")
    parser.add_argument("--ca-file", type=Path, help="use TLS, trusting this PEM CA certificate")
    parser.add_argument("--cert-file", type=Path, help="mTLS: PEM client certificate chain (with --key-file)")
    parser.add_argument("--key-file", type=Path, help="mTLS: PEM private key of --cert-file")
    parser.add_argument(
        "--token-file",
        type=Path,
        help="send the bearer token in this file (default: the EMOTIONAWARE_TOKEN environment variable)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default="", help="model name or alias (default: the server's default)")
        p.add_argument("--version", default="", help="pin a model version")
        p.add_argument("--view", choices=VIEWS, default="native", help="label set (default: the model's own)")
        p.add_argument("--top-k", type=int, default=0, help="at most K predicted labels (0: no limit)")
        p.add_argument("--threshold", type=float, help="one threshold for every label (multi-label models)")
        p.add_argument("--all-scores", action="store_true", help="return every label's score (JSON output)")
        long_text = p.add_mutually_exclusive_group()
        long_text.add_argument(
            "--chunk", action="store_true", help="long texts: classify overlapping windows and aggregate"
        )
        long_text.add_argument(
            "--truncate", action="store_true", help="long texts: classify the first window only"
        )
        p.add_argument("--json", action="store_true", help="print responses as JSON")
        p.add_argument("--top", type=int, default=5, help="labels shown per text (default: %(default)s)")

    classify = sub.add_parser("classify", help="classify one text")
    classify.add_argument("text")
    classify.add_argument("--context", type=turn, action="append", default=[], metavar="SPEAKER:TEXT",
                          help="an earlier turn, oldest first (repeat); for conversation models")  # fmt: skip
    classify.add_argument("--speaker", default="", help="speaker of TEXT, compared with the context's")
    with_options(classify)
    batch = sub.add_parser(
        "batch", help="classify many texts (arguments, or one per line of stdin, blank lines kept in place)"
    )
    batch.add_argument("texts", nargs="*")
    with_options(batch)
    stream = sub.add_parser(
        "stream", help="conversation messages: JSON lines on stdin, one response each, in order"
    )
    with_options(stream)
    models = sub.add_parser("models", help="list models and aliases")
    models.add_argument("--json", action="store_true", help="print the models as JSON")
    model = sub.add_parser("model", help="describe one model or alias (JSON)")
    model.add_argument("name", nargs="?", default="")
    sub.add_parser("health", help="print the gateway's gRPC health status")
    return parser


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The classify options the arguments ask for, as keyword arguments of the client."""
    return {
        "view": args.view,
        "top_k": args.top_k,
        "threshold": args.threshold,
        # Human output shows the `--top` best labels, so ask for every score.
        "return_all_scores": args.all_scores or not args.json,
        "long_text": LongTextMode.CHUNK if args.chunk else LongTextMode.TRUNCATE if args.truncate
        else LongTextMode.DEFAULT,  # the model's default
        "model_version": args.version,
    }  # fmt: skip


def open_client(args: argparse.Namespace, environ: dict[str, str]) -> EmotionClient:
    """A client with the TLS, client certificate and bearer token the arguments ask for."""
    token = args.token_file.read_text().strip() if args.token_file else environ.get("EMOTIONAWARE_TOKEN", "")
    if bool(args.cert_file) != bool(args.key_file):
        raise SystemExit("error: --cert-file and --key-file go together")
    tls: bool | TlsConfig = False
    if args.ca_file or args.cert_file:
        tls = TlsConfig(ca=args.ca_file, cert=args.cert_file, key=args.key_file)
    elif args.tls:
        tls = True
    if token and not tls and not is_local_address(args.target):
        print("warning: sending a bearer token without TLS", file=sys.stderr)
    return EmotionClient(args.target, token=token or None, tls=tls, timeout=args.timeout)


def stream_lines(client: EmotionClient, lines: Iterable[str], args: argparse.Namespace) -> int:
    """Each JSON line {conversation_id, speaker, text[, message_id]} to its conversation's stream."""
    conversations: dict[str, Conversation] = {}
    opts = {
        k: v for k, v in options(args).items() if k in ("view", "top_k", "threshold", "return_all_scores")
    }
    try:
        for sequence, line in enumerate(line for line in lines if line.strip()):
            message = json.loads(line)
            cid = str(message.get("conversation_id", ""))
            out: dict[str, Any] = {"sequence": sequence, "conversation_id": cid,
                                   "message_id": str(message.get("message_id", ""))}  # fmt: skip
            try:
                if cid not in conversations:
                    conversations[cid] = client.conversation(args.model, conversation_id=cid, **opts)
                result = conversations[cid].send(
                    str(message.get("speaker", "")), str(message.get("text", "")),
                    message_id=out["message_id"],
                )  # fmt: skip
            except EmotionAwareError as err:
                if args.json:
                    print(
                        json.dumps({**out, "error": {"code": err.code.name, "message": err.message}}),
                        flush=True,
                    )
                else:
                    print(f"[{sequence}] {cid}: error {err.code.name}: {err.message}", flush=True)
                continue
            if args.json:
                print(json.dumps({**out, "result": plain(result)}), flush=True)
            else:
                print(f"[{sequence}] {cid}: " + format_response(result, args.top), flush=True)
    finally:
        for conversation in conversations.values():
            conversation.close()
    return 0


def run(args: argparse.Namespace, client: EmotionClient) -> int:
    if args.command == "health":
        status = client.health()
        print(status)
        return 0 if status == "SERVING" else 1
    if args.command == "models":
        models = client.models()
        print(as_json(models) if args.json else models_table(models))
    elif args.command == "model":
        print(as_json(client.model(args.name)))
    elif args.command == "classify":
        result = client.classify(args.text, args.model, args.context, args.speaker, **options(args))
        print(as_json(result) if args.json else format_response(result, args.top))
    elif args.command == "batch":
        # Every line is a text, blank ones too (they come back as errors in their place), so
        # output row i is input row i.
        texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
        items = client.classify_batch(texts, args.model, **options(args))
        if args.json:
            print(
                json.dumps([item_error(i) if isinstance(i, ItemError) else plain(i) for i in items], indent=2)
            )
            return 0
        for i, item in enumerate(items):
            if isinstance(item, ItemError):
                print(f"[{i}] error {item.code.name}: {item.message}")
            else:
                print(f"[{i}] " + format_response(item, args.top))
    elif args.command == "stream":
        return stream_lines(client, iter(sys.stdin), args)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with open_client(args, dict(os.environ)) as client:
        try:
            return run(args, client)
        except EmotionAwareError as err:
            print(f"error: {err.code.name}: {err.message}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
