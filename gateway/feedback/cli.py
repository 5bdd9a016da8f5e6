"""``emotionaware-feedback``: the feedback database's migrations, training export and retention.

    emotionaware-feedback migrate [--revision head|base|0001]
    emotionaware-feedback export OUT.jsonl [--model goemotions] [--since-days N]
    emotionaware-feedback delete [--client NAME] [--older-than-days N]

``--database`` (or EMOTIONAWARE_FEEDBACK_DATABASE, as the gateway reads it) names the database;
the default is the gateway's, a SQLite file in the working folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from emotionaware.feedback_file import FeedbackExample, write_examples
from gateway.feedback import store
from gateway.settings import Settings


def _database(args: argparse.Namespace) -> str:
    return args.database or os.environ.get("EMOTIONAWARE_FEEDBACK_DATABASE") or Settings().feedback_database


def export(url: str, out: Path, model: str | None, since_days: float | None) -> tuple[int, int]:
    """Rows with stored text as training examples; (written, skipped without text)."""
    rows = store.rows(store.engine_for(url), model)
    if since_days is not None:
        cutoff = store.utcnow() - dt.timedelta(days=since_days)
        rows = [r for r in rows if r["created_at"] >= cutoff]
    kept = [r for r in rows if r["text"] is not None]
    written = write_examples(
        out,
        (
            FeedbackExample(
                r["id"],
                r["text"],
                tuple(json.loads(r["labels"])),
                r["model"],
                r["model_version"],
                r["verdict"],
            )
            for r in kept
        ),
    )
    return written, len(rows) - len(kept)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emotionaware-feedback", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--database", default="", help="SQLAlchemy URL (default: the gateway's)")
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="bring the schema to a revision (default: the newest)")
    migrate.add_argument("--revision", default="head", help="head, base (drop everything) or a revision id")
    exporting = commands.add_parser(
        "export", help="write feedback with stored text as a training set (JSON lines)"
    )
    exporting.add_argument("out", type=Path)
    exporting.add_argument("--model", help="only this model's feedback")
    exporting.add_argument("--since-days", type=float, help="only feedback from the last N days")
    deleting = commands.add_parser("delete", help="retention: delete by client and/or by age")
    deleting.add_argument("--client", help="every row of this client")
    deleting.add_argument("--older-than-days", type=float, help="every row older than N days")
    args = parser.parse_args(argv)
    url = _database(args)
    if args.command == "migrate":
        store.migrate(url, args.revision)
        print(f"feedback database at revision {args.revision}")
    elif args.command == "export":
        store.migrate(url)
        written, skipped = export(url, args.out, args.model, args.since_days)
        print(f"{written} examples written to {args.out}; {skipped} verdicts without stored text skipped")
    else:
        if args.client is None and args.older_than_days is None:
            parser.error("delete needs --client, --older-than-days or both")
        older = dt.timedelta(days=args.older_than_days) if args.older_than_days is not None else None
        print(f"{store.delete(store.engine_for(url), args.client, older)} rows deleted")
    return 0


def entry() -> None:
    sys.exit(main())
