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
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotionaware.v1 import emotion_pb2 as pb
from emotionaware.v1 import emotion_pb2_grpc

VIEWS = {"native": pb.VIEW_UNSPECIFIED, "goemotions": pb.VIEW_GOEMOTIONS, "ekman": pb.VIEW_EKMAN,
         "sentiment": pb.VIEW_SENTIMENT}  # fmt: skip


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
    limits = [("grpc.max_send_message_length", args.max_message_bytes),
              ("grpc.max_receive_message_length", args.max_message_bytes)]  # fmt: skip
    if args.tls or args.ca_file:
        roots = args.ca_file.read_bytes() if args.ca_file else None
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        channel = grpc.secure_channel(args.target, credentials, options=limits)
    else:
        channel = grpc.insecure_channel(args.target, options=limits)
    with channel:
        try:
            return run(args, channel)
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
