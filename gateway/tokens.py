"""Bearer tokens: the tokens file (SHA-256 hashes, one client each, optional expiry) and the
``python -m gateway.tokens new-token`` command that makes a token and its file entry.

The file (a mounted Kubernetes Secret, say) is re-read when it changes (the process's
:class:`gateway.reloading.Reloader` calls :meth:`TokenFile.reload`); a file that fails to load
is logged and the previous tokens stay.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import secrets
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import Unauthenticated

log = logging.getLogger(__name__)

_TOKEN_KEYS = {"client", "sha256", "expires"}
MAX_CLIENT_CHARS = 128


def token_hash(token: str) -> str:
    """The hex SHA-256 a token is stored as (tokens are random, so no salt or stretching is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    client: str
    expires: dt.datetime | None  # aware, UTC


def parse_tokens(raw: Mapping) -> dict[str, TokenEntry]:
    """``[[tokens]]`` entries by hash; raises ValueError naming the bad entry."""
    unknown = set(raw) - {"tokens"}
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}")
    entries: dict[str, TokenEntry] = {}
    for i, entry in enumerate(raw.get("tokens", [])):
        where = f"tokens[{i}]"
        if set(entry) - _TOKEN_KEYS:
            raise ValueError(f"{where}: unknown keys {sorted(set(entry) - _TOKEN_KEYS)}")
        client, digest = str(entry.get("client", "")), str(entry.get("sha256", "")).lower()
        if not client or len(client) > MAX_CLIENT_CHARS or not client.isprintable():
            raise ValueError(
                f"{where}.client: a printable name of 1 to {MAX_CLIENT_CHARS} characters is required"
            )
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{where}.sha256: expected 64 hex digits")
        expires = entry.get("expires")
        if expires is not None:
            if not isinstance(expires, dt.datetime) or expires.tzinfo is None:
                raise ValueError(
                    f"{where}.expires: expected a TOML date-time with an offset (2027-01-31T00:00:00Z)"
                )
            expires = expires.astimezone(dt.UTC)
        if digest in entries:
            raise ValueError(f"{where}: the same token is listed twice")
        entries[digest] = TokenEntry(client, expires)
    return entries


class TokenFile:
    """The hashed bearer tokens of one file."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._apply(parse_tokens(tomllib.loads(self.path.read_text())))

    def _apply(self, entries: dict[str, TokenEntry]) -> None:
        self.entries = entries
        self.clients = frozenset(e.client for e in entries.values())  # metrics labels, per call

    def reload(self) -> bool:
        """Read the file again; True when the new tokens are in place."""
        try:
            entries = parse_tokens(tomllib.loads(self.path.read_text()))
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            log.error("tokens file %s not applied, keeping the previous tokens: %s", self.path, exc)
            return False
        self._apply(entries)
        log.info("tokens file reloaded: %d tokens for %d clients", len(entries), len(self.clients))
        return True

    def client_of(self, token: str, now: dt.datetime | None = None) -> str:
        entry = self.entries.get(token_hash(token))
        if entry is None:
            raise Unauthenticated("the bearer token is not valid (unknown or revoked)")
        if entry.expires is not None and (now or dt.datetime.now(dt.UTC)) >= entry.expires:
            raise Unauthenticated(f"the bearer token expired at {entry.expires.isoformat()}")
        return entry.client


def new_token_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.tokens", description="Bearer tokens for the gateway's tokens file."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new-token", help="print a new random token (stderr) and its file entry (stdout)")
    new.add_argument("--client", required=True, help="client identity the token names")
    new.add_argument("--expires", help="expiry as an ISO date-time with offset, e.g. 2027-01-31T00:00:00Z")
    args = parser.parse_args(argv)
    token = secrets.token_urlsafe(32)
    print(
        f"token for {args.client} (shown once; give it to the client, keep it out of files):", file=sys.stderr
    )
    print(token, file=sys.stderr)
    expires = f"\nexpires = {args.expires}" if args.expires else ""
    print(f'[[tokens]]\nclient = "{args.client}"\nsha256 = "{token_hash(token)}"{expires}')
    return 0


if __name__ == "__main__":
    sys.exit(new_token_main())
