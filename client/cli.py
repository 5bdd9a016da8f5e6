"""``emotionaware-client``: call every RPC of the gateway from a shell.

emotionaware-client classify "Thank you so much for your help!"
emotionaware-client classify --view ekman --top 3 "I miss her so much"
emotionaware-client classify --model conversation --context "ann:I got the job!" --speaker bob "No way!"
emotionaware-client classify --chunk --json "$(cat examples/long-letter.txt)"
emotionaware-client batch "I love it" "This is scary"          # or one text per line on stdin
emotionaware-client stream < examples/conversation.jsonl                # {"conversation_id", "speaker", "text"}
emotionaware-client analyze examples/support-tickets.csv      # -> examples/support-tickets.emotions.jsonl
emotionaware-client report examples/support-tickets.emotions.jsonl   # -> ...emotions.html
emotionaware-client chat --model conversation                  # type "ann: I got the job!"
emotionaware-client models
emotionaware-client model conversation
emotionaware-client health

Exit codes: 0 done; 1 health is not SERVING; 2 bad usage or the server refused the call;
3 an input or output file cannot be used; 130 interrupted (analyze resumes where it stopped).

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
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from emotionaware_client import (
    AnalyzeResult,
    ClassifyResult,
    Conversation,
    DeadlineExceededError,
    EmotionAwareError,
    EmotionClient,
    ItemError,
    LongTextMode,
    Models,
    ResourceExhaustedError,
    TlsConfig,
    TrafficClass,
    Turn,
    UnavailableError,
    View,
)

from client import analyze
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


def format_sentences(result: AnalyzeResult, top: int) -> str:
    """Each sentence with its code-point span, predicted labels and intensity; then the document."""

    def strength(value: float | None) -> str:
        return f"  intensity {value:.2f}" if value is not None else ""

    lines = [
        f"model {result.model} v{result.model_version}  ({result.score_type} scores, {len(result.sentences)} sentences)"
    ]
    for s in result.sentences:
        shown = (
            ", ".join(f"{x.label} {x.score:.2f}" for x in s.scores if x.predicted) or "(none above threshold)"
        )
        lines.append(f"[{s.index}] {s.span.start}-{s.span.end}{strength(s.intensity)}  {shown}")
        lines.append(f"    {s.text}")
    aggregation = "" if result.aggregation == "none" else f" ({result.aggregation} of the sentences)"
    lines.append(
        f"document{aggregation}: {', '.join(result.predicted) or '(none above threshold)'}{strength(result.intensity)}"
    )
    lines += [
        f"  flag {f.rule} ({f.scope}{'' if f.sentence is None else f' {f.sentence}'})" for f in result.flags
    ]
    return "\n".join(lines)


def plain(value: Any) -> Any:
    """Dataclasses, enums and tuples as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value if not hasattr(value, "name") or isinstance(value.value, str) else value.name
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {(" + ".join(map(str, k)) if isinstance(k, tuple) else k): plain(v) for k, v in value.items()}
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

    def examples(command: str, *lines: str) -> dict[str, Any]:
        """Keyword arguments of a sub-command whose --help ends with these example lines."""
        return {"formatter_class": argparse.RawDescriptionHelpFormatter,
                "epilog": "examples:\n" + "\n".join(f"  emotionaware-client {command} {line}".rstrip() for line in lines)}  # fmt: skip

    classify = sub.add_parser("classify", help="classify one text", **examples("classify",
        '"Thank you so much for your help!"',
        '--view ekman --top 3 "I miss her so much"',
        '--model conversation --speaker bob --context "ann:I got the job!" "No way!"',
        '--chunk --json "$(cat examples/long-letter.txt)"',
    ))  # fmt: skip
    classify.add_argument("text")
    classify.add_argument("--context", type=turn, action="append", default=[], metavar="SPEAKER:TEXT",
                          help="an earlier turn, oldest first (repeat); for conversation models")  # fmt: skip
    classify.add_argument("--speaker", default="", help="speaker of TEXT, compared with the context's")
    with_options(classify)
    batch = sub.add_parser(
        "batch", help="classify many texts (arguments, or one per line of stdin, blank lines kept in place)",
        **examples("batch", '"I love it" "This is scary"', "--view sentiment < texts.txt", "--json < texts.txt"),
    )  # fmt: skip
    batch.add_argument("texts", nargs="*")
    with_options(batch)
    stream = sub.add_parser(
        "stream", help="conversation messages: JSON lines on stdin, one response each, in order",
        **examples("stream", "< examples/conversation.jsonl", "--json < examples/conversation.jsonl"),
    )  # fmt: skip
    with_options(stream)
    analyze_cmd = sub.add_parser(  # its own epilog: examples and what resuming means
        "analyze",
        help="classify the texts of files (CSV, JSONL, Parquet, text) into a results file, resumably",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  emotionaware-client analyze tickets.csv                          # -> tickets.emotions.jsonl
  emotionaware-client analyze tickets.csv -o out.csv --text-column body --time-column created_at
  emotionaware-client analyze chats.jsonl --model conversation --view ekman -o chats.parquet
  emotionaware-client analyze a.txt b.txt                          # one text per line; a.emotions.jsonl, ...

Every input row gets one output row, in order, with its row number (0-based, header not
counted); blank or invalid rows carry their error. Interrupted (Ctrl-C, a crash, a server
restart)? Run the same command again: it continues after the last row written.""",
    )
    analyze_cmd.add_argument("files", nargs="+", type=Path, metavar="FILE")
    analyze_cmd.add_argument("-o", "--output", type=Path,
                             help="results file (.jsonl, .csv or .parquet; default FILE.emotions.jsonl); one FILE only")  # fmt: skip
    for role in ("text", "id", "time", "speaker", "conversation"):
        analyze_cmd.add_argument(f"--{role}-column", metavar="NAME",
                                 help=f"input column of the {role} (default: guessed from the header)")  # fmt: skip
    analyze_cmd.add_argument(
        "--model", default="", help="model name or alias (default: the server's default)"
    )
    analyze_cmd.add_argument(
        "--view", choices=VIEWS, default="native", help="label set (default: the model's own)"
    )
    analyze_cmd.add_argument("--batch", type=int, default=64, help="texts per call (default: %(default)s)")
    analyze_cmd.add_argument(
        "--concurrency", type=int, default=4, help="calls in flight (default: %(default)s)"
    )
    analyze_cmd.add_argument("--restart", action="store_true", help="start over instead of resuming")
    analyze_cmd.add_argument("--give-up-after", type=float, default=600.0, metavar="SECONDS",
                             help="stop when the server is unavailable or refuses for this long (default: %(default)s)")  # fmt: skip
    analyze_cmd.add_argument("--quiet", action="store_true", help="no progress bar")
    analyze_cmd.add_argument("--json", action="store_true", help="print the run's facts as JSON at the end")
    report = sub.add_parser("report", help="write a self-contained HTML report of a results file", **examples("report",
        "tickets.jsonl                        # -> tickets.html",
        'tickets.csv -o march.html --title "Support inbox, March"',
    ))  # fmt: skip
    report.add_argument("results", type=Path, help="a results file of analyze (.jsonl, .csv or .parquet)")
    report.add_argument("-o", "--output", type=Path, help="HTML file (default: RESULTS with .html)")
    report.add_argument("--title", help="the report's title")
    report.add_argument("--json", action="store_true", help="print the report's figures as JSON")
    chat = sub.add_parser(
        "chat",
        help="type turns of a conversation and see each turn's emotions",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""Type one turn per line as "SPEAKER: TEXT" (or just TEXT, spoken by --speaker).
/new starts a new conversation, /quit (or Ctrl-D) ends. Works with piped input too:
  printf 'ann: I got the job!\nbob: No way, congratulations!\n' | emotionaware-client chat""",
    )
    chat.add_argument("--model", default="", help="model or alias (default: the server's conversation model)")
    chat.add_argument(
        "--speaker", default="you", help="speaker of lines without 'SPEAKER:' (default: %(default)s)"
    )
    chat.add_argument("--view", choices=VIEWS, default="native", help="label set (default: the model's own)")
    chat.add_argument("--top", type=int, default=3, help="emotions shown per turn (default: %(default)s)")
    chat.add_argument("--json", action="store_true", help="one JSON object per turn")
    sentences = sub.add_parser(
        "sentences", help="one text by sentence: offsets, emotions, intensity, and the document (Analyze)",
        **examples("sentences", '"The parcel is late again. Thanks for the refund though!"', '--json "$(cat message.txt)"'),
    )  # fmt: skip
    sentences.add_argument("text")
    with_options(sentences)
    verdict = sub.add_parser(
        "feedback", help="tell the service an answer was right or wrong (SubmitFeedback)",
        **examples("feedback", "ea1.AbC... --wrong --labels anger,annoyance",
                   'ea1.AbC... --correct --labels gratitude --text "Thanks!" --store-text'),
    )  # fmt: skip
    verdict.add_argument("request_id", help="the answer's request_id (classify --json prints it)")
    right_or_wrong = verdict.add_mutually_exclusive_group(required=True)
    right_or_wrong.add_argument("--correct", action="store_true", help="the answer was right")
    right_or_wrong.add_argument("--wrong", action="store_true", help="the answer was wrong")
    verdict.add_argument("--labels", required=True, help="the labels the text should have, comma-separated")
    verdict.add_argument(
        "--text", help="the answer's text (the server keeps a salted hash unless --store-text)"
    )
    verdict.add_argument(
        "--store-text", action="store_true", help="let the server keep the text (for training)"
    )
    models = sub.add_parser("models", help="list models and aliases", **examples("models", "", "--json"))
    models.add_argument("--json", action="store_true", help="print the models as JSON")
    model = sub.add_parser("model", help="describe one model or alias (JSON)",
                           **examples("model", "conversation", "default"))  # fmt: skip
    model.add_argument("name", nargs="?", default="")
    health = sub.add_parser("health", help="print the gateway's gRPC health status (exit 1 unless SERVING)",
                            **examples("health", "", "--json"))  # fmt: skip
    health.add_argument("--json", action="store_true", help='print {"status": ...}')
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
        print(json.dumps({"status": status}) if args.json else status)
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
    elif args.command == "sentences":
        analyzed = client.analyze(args.text, args.model, **options(args))
        print(as_json(analyzed) if args.json else format_sentences(analyzed, args.top))
    elif args.command == "feedback":
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
        row = client.submit_feedback(
            args.request_id, correct=args.correct, labels=labels, text=args.text, store_text=args.store_text
        )
        print(f"feedback stored (id {row})")
    elif args.command == "analyze":
        return run_analyze(client, args)
    elif args.command == "chat":
        return run_chat(client, args)
    return 0


def outcomes_of(items: Sequence[Any]) -> list[analyze.Outcome]:
    out = []
    for item in items:
        if isinstance(item, ItemError):
            out.append(analyze.Outcome(error_code=item.code.name, error_message=item.message))
        else:
            out.append(analyze.Outcome(
                model=item.model, model_version=item.model_version, score_type=item.score_type,
                predicted=tuple(item.predicted), scores={s.label: round(s.score, 6) for s in item.scores},
                token_count=item.token_count, truncated=item.truncated,
            ))  # fmt: skip
    return out


def run_analyze(client: EmotionClient, args: argparse.Namespace) -> int:
    if args.output and len(args.files) > 1:
        raise analyze.InputError("--output names one results file: give one FILE, or none")
    view = View(args.view)

    def classify(texts: list[str]) -> list[analyze.Outcome]:
        """One call (bulk); waits and resends while the server is busy or restarting."""
        give_up = time.monotonic() + args.give_up_after
        wait = 1.0
        while True:
            try:
                items = client.classify_batch(texts, args.model, view=view, return_all_scores=True,
                                              traffic_class=TrafficClass.BULK, concurrency=1, timeout=120.0)  # fmt: skip
                return outcomes_of(items)
            except (ResourceExhaustedError, UnavailableError, DeadlineExceededError) as err:
                if time.monotonic() + wait > give_up:
                    raise
                print(f"\nserver {err.code.name}: sending again in {wait:.0f} s", file=sys.stderr)
                time.sleep(wait)
                wait = min(wait * 2, 30.0)

    probe = client.classify("labels", args.model, view=view, return_all_scores=True)
    info = client.model(probe.model)
    native = [label.name for label in info.labels]
    labels = native if view is View.NATIVE else sorted(s.label for s in probe.scores)
    status = 0
    for source in args.files:
        fmt = analyze.file_format(source)
        if not source.is_file():
            raise analyze.InputError(f"{source}: no such file")
        named = {"text": args.text_column, "id": args.id_column, "timestamp": args.time_column,
                 "speaker": args.speaker_column, "conversation": args.conversation_column}  # fmt: skip
        columns = analyze.choose_columns(source, fmt, named)
        output = args.output or analyze.default_output(source)
        facts = analyze.Facts(
            input=str(source), input_fingerprint=analyze.fingerprint(source),
            columns=dataclasses.asdict(columns), model=probe.model, view=view.value,
            options={"batch_labels": labels},
        )  # fmt: skip
        facts = analyze.analyze_file(source, output, classify, labels, facts, batch=args.batch,
                                     concurrency=args.concurrency, restart=args.restart, quiet=args.quiet)  # fmt: skip
        print(json.dumps(dataclasses.asdict(facts)) if args.json else analyze.describe(facts, output))
    return status


def parse_turn(line: str, default_speaker: str) -> tuple[str, str]:
    speaker, sep, text = line.partition(":")
    if sep and speaker.strip() and len(speaker.strip()) <= 40 and " " not in speaker.strip():
        return speaker.strip(), text.strip()
    return default_speaker, line.strip()


def run_chat(client: EmotionClient, args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty()
    conversation = client.conversation(args.model, view=View(args.view), return_all_scores=True)
    if interactive:
        print('Type "SPEAKER: text" per turn; /new starts over, /quit ends.', file=sys.stderr)
    try:
        while True:
            if interactive:
                print("> ", end="", flush=True, file=sys.stderr)
            line = sys.stdin.readline()
            if not line or line.strip() == "/quit":
                break
            if not line.strip():
                continue
            if line.strip() == "/new":
                conversation.close()
                conversation = client.conversation(args.model, view=View(args.view), return_all_scores=True)
                print("(a new conversation)", file=sys.stderr)
                continue
            speaker, text = parse_turn(line, args.speaker)
            try:
                result = conversation.send(speaker, text)
            except EmotionAwareError as err:
                if args.json:
                    print(
                        json.dumps(
                            {"speaker": speaker, "error": {"code": err.code.name, "message": err.message}}
                        )
                    )
                else:
                    print(f"  error {err.code.name}: {err.message}")
                continue
            if args.json:
                print(json.dumps({"speaker": speaker, "result": plain(result)}), flush=True)
                continue
            best = ", ".join(f"{s.label} {s.score:.2f}" for s in result.scores[: args.top])
            print(f"  {speaker}: {', '.join(result.predicted) or '-'}   ({best}; "
                  f"{result.context_turns} earlier turns read)", flush=True)  # fmt: skip
    finally:
        conversation.close()
    return 0


def run_report(args: argparse.Namespace) -> int:
    from client.report import ReportError, write_report

    output = args.output or args.results.with_suffix(".html")
    try:
        figures = write_report(args.results, output, args.title)
    except ReportError as exc:
        raise analyze.InputError(str(exc)) from None
    if args.json:
        print(json.dumps(plain(figures), default=str))
    else:
        print(f"{output}: report of {args.results}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "report":
            return run_report(args)
        with open_client(args, dict(os.environ)) as client:
            return run(args, client)
    except EmotionAwareError as err:
        print(f"error: {err.code.name}: {err.message}", file=sys.stderr)
        return 2
    except (analyze.InputError, OSError) as err:
        if isinstance(err, BrokenPipeError):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def entry() -> int:
    """The console script: no traceback when the reader of stdout goes away (| head)."""
    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python would complain again at exit while flushing stdout: point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(entry())
