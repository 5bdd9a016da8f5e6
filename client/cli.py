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

Credentials: ``--token-file`` (or the EMOTIONAWARE_TOKEN environment variable) sends a bearer
token; ``--cert-file``/``--key-file`` present a client certificate (mTLS, with ``--ca-file``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotionaware.net import is_local_address
from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc

# --view names from the proto's View enum: VIEW_EKMAN -> "ekman"; VIEW_UNSPECIFIED is the model's own.
VIEWS = {"native": pb.VIEW_UNSPECIFIED} | {
    name.removeprefix("VIEW_").lower(): number for name, number in pb.View.items() if number
}


def format_response(response: pb.ClassifyResponse, top: int) -> str:
    truncated = f" (truncated to {response.max_tokens})" if response.truncated else ""
    chunks = f", {response.chunk_count} chunks" if response.chunk_count > 1 else ""
    context = f", {response.context_turns} context turns" if response.context_turns else ""
    lines = [
        f"model {response.model} v{response.model_version}  "
        f"({pb.ScoreType.Name(response.score_type).removeprefix('SCORE_TYPE_').lower()} scores)",
        f"predicted: {', '.join(response.predicted) or '(none above threshold)'}",
        f"tokens: {response.token_count}{truncated}{chunks}{context}"
        f"  server latency: {response.server_latency_us / 1000:.1f} ms",
    ]
    for score in response.scores[:top]:
        mark = "*" if score.predicted else " "
        lines.append(f" {mark} {score.label:<15} {score.score:.3f}  (threshold {score.threshold:.2f})")
    return "\n".join(lines)


def as_json(message) -> str:
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2)


def options(args: argparse.Namespace) -> pb.ClassifyOptions:
    result = pb.ClassifyOptions(
        model_version=args.version,
        view=VIEWS[args.view],
        top_k=args.top_k,
        # Human output shows the `--top` best labels, so ask for every score.
        return_all_scores=args.all_scores or not args.json,
        long_text_mode=(
            pb.LONG_TEXT_MODE_CHUNK
            if args.chunk
            else pb.LONG_TEXT_MODE_TRUNCATE
            if args.truncate
            else pb.LONG_TEXT_MODE_UNSPECIFIED  # the model's default
        ),
    )
    if args.threshold is not None:
        result.threshold = args.threshold
    return result


def turn(value: str) -> pb.Turn:
    speaker, sep, text = value.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected SPEAKER:TEXT, got {value!r}")
    return pb.Turn(speaker=speaker, text=text)


def stream_requests(lines: Iterator[str], args: argparse.Namespace) -> Iterator[pb.ClassifyStreamRequest]:
    for line in lines:
        if line.strip():
            message = ParseDict(json.loads(line), pb.ClassifyStreamRequest())
            if not message.HasField("options"):
                message.options.CopyFrom(options(args))
            yield message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotionaware-client", description="Call the EmotionAware gateway.")
    parser.add_argument(
        "--target", default="127.0.0.1:50051", help="gateway host:port (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="deadline in seconds (default: %(default)s)"
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
    parser.add_argument(
        "--max-message-bytes", type=int, default=64 << 20, help="largest message sent or received"
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
    batch = sub.add_parser("batch", help="classify many texts in one call (arguments, or lines of stdin)")
    batch.add_argument("texts", nargs="*")
    with_options(batch)
    stream = sub.add_parser(
        "stream", help="stream conversation messages: JSON lines on stdin, one response each"
    )
    with_options(stream)
    sub.add_parser("models", help="list models and aliases")
    model = sub.add_parser("model", help="describe one model or alias")
    model.add_argument("name", nargs="?", default="")
    sub.add_parser("health", help="print the gateway's gRPC health status")
    return parser


class _Bearer(grpc.AuthMetadataPlugin):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, context, callback) -> None:
        callback((("authorization", f"Bearer {self.token}"),), None)


class _CallDetails(
    collections.namedtuple("_CallDetails", "method timeout metadata credentials wait_for_ready compression"),
    grpc.ClientCallDetails,
):
    pass


class _MetadataInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = tuple(details.metadata or ()) + self.metadata
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)  # fmt: skip

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def open_channel(args: argparse.Namespace, environ) -> grpc.Channel:
    """A channel with the TLS, client certificate and bearer token the arguments ask for."""
    limits = [("grpc.max_send_message_length", args.max_message_bytes),
              ("grpc.max_receive_message_length", args.max_message_bytes)]  # fmt: skip
    token = args.token_file.read_text().strip() if args.token_file else environ.get("EMOTIONAWARE_TOKEN", "")
    if bool(args.cert_file) != bool(args.key_file):
        raise SystemExit("error: --cert-file and --key-file go together")
    if not (args.tls or args.ca_file or args.cert_file):
        channel = grpc.insecure_channel(args.target, options=limits)
        if token:
            # gRPC sends call credentials over TLS only; plaintext (loopback, a mesh sidecar's
            # mTLS) carries the token as ordinary metadata.
            if not is_local_address(args.target):
                print("warning: sending a bearer token without TLS", file=sys.stderr)
            channel = grpc.intercept_channel(channel, _MetadataInterceptor(token))
        return channel
    credentials = grpc.ssl_channel_credentials(
        root_certificates=args.ca_file.read_bytes() if args.ca_file else None,
        private_key=args.key_file.read_bytes() if args.key_file else None,
        certificate_chain=args.cert_file.read_bytes() if args.cert_file else None,
    )
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.metadata_call_credentials(_Bearer(token))
        )
    return grpc.secure_channel(args.target, credentials, options=limits)


def run(args: argparse.Namespace, channel: grpc.Channel) -> int:
    if args.command == "health":
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=args.timeout
        )
        print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
    stub = emotion_pb2_grpc.EmotionServiceStub(channel)
    if args.command == "models":
        print(as_json(stub.ListModels(pb.ListModelsRequest(), timeout=args.timeout)))
    elif args.command == "model":
        print(as_json(stub.GetModel(pb.GetModelRequest(model=args.name), timeout=args.timeout)))
    elif args.command == "classify":
        request = pb.ClassifyRequest(
            text=args.text,
            model=args.model,
            options=options(args),
            context=args.context,
            speaker=args.speaker,
        )
        response = stub.Classify(request, timeout=args.timeout)
        print(as_json(response) if args.json else format_response(response, args.top))
    elif args.command == "batch":
        texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
        reply = stub.ClassifyBatch(
            pb.ClassifyBatchRequest(texts=texts, model=args.model, options=options(args)),
            timeout=args.timeout,
        )
        if args.json:
            print(as_json(reply))
        for i, item in enumerate(reply.items if not args.json else ()):
            if item.HasField("error"):
                print(f"[{i}] error {item.error.code}: {item.error.message}")
            else:
                print(f"[{i}] " + format_response(item.result, args.top))
    elif args.command == "stream":
        for reply in stub.ClassifyStream(stream_requests(iter(sys.stdin), args), timeout=args.timeout):
            if args.json:
                print(json.dumps(MessageToDict(reply, preserving_proto_field_name=True)), flush=True)
            elif reply.HasField("error"):
                print(
                    f"[{reply.sequence}] {reply.conversation_id}: error {reply.error.code}: {reply.error.message}"
                )
            else:
                print(
                    f"[{reply.sequence}] {reply.conversation_id}: " + format_response(reply.result, args.top)
                )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with open_channel(args, os.environ) as channel:
        try:
            return run(args, channel)
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
