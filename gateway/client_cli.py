"""``emotionaware-client``: call the gateway from a shell.

emotionaware-client classify "Thank you so much for your help!"
emotionaware-client classify --json --model goemotions "I miss her so much"
emotionaware-client health
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from emotionaware.v1 import emotion_pb2, emotion_pb2_grpc


def format_response(response: emotion_pb2.ClassifyResponse, top: int) -> str:
    lines = [
        f"model {response.model} v{response.model_version}  "
        f"({emotion_pb2.ScoreType.Name(response.score_type).removeprefix('SCORE_TYPE_').lower()} scores)",
        f"predicted: {', '.join(response.predicted) or '(none above threshold)'}",
        f"tokens: {response.token_count}{f' (truncated to {response.max_tokens})' if response.truncated else ''}"
        f"  server latency: {response.server_latency_us / 1000:.1f} ms",
    ]
    for score in response.scores[:top]:
        mark = "*" if score.predicted else " "
        lines.append(f" {mark} {score.label:<15} {score.score:.3f}  (threshold {score.threshold:.2f})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotionaware-client", description="Call the EmotionAware gateway.")
    parser.add_argument(
        "--target", default="127.0.0.1:50051", help="gateway host:port (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="deadline in seconds (default: %(default)s)"
    )
    parser.add_argument("--tls", action="store_true", help="use TLS (the system's CA certificates)")
    parser.add_argument("--ca-file", type=Path, help="use TLS, trusting this PEM CA certificate")
    sub = parser.add_subparsers(dest="command", required=True)
    classify = sub.add_parser("classify", help="classify one text")
    classify.add_argument("text")
    classify.add_argument("--model", default="", help="model name (default: the server's default)")
    classify.add_argument("--json", action="store_true", help="print the response as JSON")
    classify.add_argument("--top", type=int, default=5, help="labels to show (default: %(default)s)")
    sub.add_parser("health", help="print the gateway's gRPC health status")
    args = parser.parse_args(argv)

    if args.tls or args.ca_file:
        roots = args.ca_file.read_bytes() if args.ca_file else None
        channel = grpc.secure_channel(args.target, grpc.ssl_channel_credentials(root_certificates=roots))
    else:
        channel = grpc.insecure_channel(args.target)
    with channel:
        try:
            if args.command == "health":
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=args.timeout
                )
                print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
                return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1
            stub = emotion_pb2_grpc.EmotionServiceStub(channel)
            response = stub.Classify(
                emotion_pb2.ClassifyRequest(text=args.text, model=args.model), timeout=args.timeout
            )
        except grpc.RpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(MessageToDict(response, preserving_proto_field_name=True), indent=2))
    else:
        print(format_response(response, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
