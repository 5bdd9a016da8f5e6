"""The feedback store: one table, through SQLAlchemy, migrated by Alembic.

A SQLite file by default (no setup; the gateway's ``--feedback-database``), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``). One row per (client, request id): submitting again
for the same answer replaces the verdict and labels. The text is kept only when the caller opts
in; otherwise, when it is sent, only a salted SHA-256 of it (the salt lives in the database, so
equal texts can be matched without keeping them). Every row names the client (from
authentication), the model, its version and the labels.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

METADATA = sa.MetaData()

FEEDBACK = sa.Table(
    "feedback",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("client", sa.Text, nullable=False),  # certificate identities can be long
    sa.Column("request_id", sa.String(400), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("verdict", sa.String(10), nullable=False),  # "correct" or "wrong"
    sa.Column("labels", sa.Text, nullable=False),  # JSON list: the labels the text should have
    sa.Column("text", sa.Text, nullable=True),  # only when the caller opted in
    sa.Column("text_hash", sa.String(64), nullable=True),  # salted SHA-256 when it did not
    # Times are UTC, stored without a zone (the same on SQLite and PostgreSQL).
    sa.Column("answered_at", sa.DateTime, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("client", "request_id", name="uq_feedback_client_request"),
)
META = sa.Table(
    "feedback_meta",
    METADATA,
    sa.Column("key", sa.String(50), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Submission:
    """One verdict on one answer, validated (gateway.feedback.writer builds it)."""

    client: str
    request_id: str
    model: str
    model_version: str
    verdict: str
    labels: tuple[str, ...]
    text: str | None  # None: not sent
    store_text: bool
    answered_at: dt.datetime


def utcnow() -> dt.datetime:
    """Now in UTC, without a zone: how the table stores times."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def engine_for(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder, WAL and a busy timeout."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A busy file waits at most 5 s: well inside a call's default 10 s deadline.
        engine = sa.create_engine(url, connect_args={"timeout": 5})

        @sa.event.listens_for(engine, "connect")
        def _wal(connection, _record) -> None:  # readers never wait for the writer
            connection.execute("PRAGMA journal_mode=WAL")

        return engine
    connect_args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2, connect_args=connect_args)


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class SchemaError(RuntimeError):
    """The database's schema is one this code does not know (a newer release migrated it)."""


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database to ``revision`` (upgrade, or downgrade for an older one; "base": empty).

    A database at a revision this code does not know (a newer release migrated it) is left
    alone: :class:`SchemaError`.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config(url)
    engine = engine_for(url)
    with engine.connect() as connection:
        from alembic.runtime.migration import MigrationContext

        current = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    script = ScriptDirectory.from_config(config)
    target = None if revision == "base" else script.get_revision(revision).revision
    if current == target:
        return
    ordered = [r.revision for r in script.walk_revisions()]  # newest first
    if current is not None and current not in ordered:
        raise SchemaError(
            f"the feedback database is at schema revision {current}, which this gateway does not know "
            "(a newer release migrated it); run the newer release"
        )
    if target is None or (current is not None and ordered.index(target) > ordered.index(current)):
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


def salt(connection) -> bytes:
    value = connection.execute(sa.select(META.c.value).where(META.c.key == "text_salt")).scalar()
    if value is None:  # the migration writes it; a database made some other way gets one here
        value = os.urandom(16).hex()
        connection.execute(META.insert().values(key="text_salt", value=value))
    return bytes.fromhex(value)


def text_hash(salt_bytes: bytes, text: str) -> str:
    return hashlib.sha256(salt_bytes + text.encode("utf-8")).hexdigest()


def write(engine: Engine, submissions: list[Submission]) -> list[int]:
    """Store a batch in one transaction; the row id of each (an existing row is replaced).

    Two gateways inserting the same (client, request id) at once: one transaction meets the
    unique constraint and is run again, finding the other's row to replace.
    """
    try:
        return _write(engine, submissions)
    except sa.exc.IntegrityError:
        return _write(engine, submissions)


def _write(engine: Engine, submissions: list[Submission]) -> list[int]:
    now = utcnow()
    ids = []
    with engine.begin() as connection:
        salt_bytes = salt(connection)
        for s in submissions:
            values = {
                "model": s.model,
                "model_version": s.model_version,
                "verdict": s.verdict,
                "labels": json.dumps(list(s.labels)),
                "text": s.text if s.store_text else None,
                "text_hash": text_hash(salt_bytes, s.text)
                if s.text is not None and not s.store_text
                else None,
                "answered_at": s.answered_at,
                "updated_at": now,
            }
            key = (FEEDBACK.c.client == s.client) & (FEEDBACK.c.request_id == s.request_id)
            existing = connection.execute(sa.select(FEEDBACK.c.id).where(key)).scalar()
            if existing is None:
                result = connection.execute(
                    FEEDBACK.insert().values(
                        client=s.client, request_id=s.request_id, created_at=now, **values
                    )
                )
                ids.append(int(result.inserted_primary_key[0]))
            else:
                connection.execute(FEEDBACK.update().where(FEEDBACK.c.id == existing).values(**values))
                ids.append(int(existing))
    return ids


def delete(engine: Engine, client: str | None = None, older_than: dt.timedelta | None = None) -> int:
    """Retention: delete a client's rows and/or rows older than ``older_than``; how many."""
    if client is None and older_than is None:
        raise ValueError("say which rows to delete: a client, an age, or both")
    condition = sa.true()
    if client is not None:
        condition = condition & (FEEDBACK.c.client == client)
    if older_than is not None:
        condition = condition & (FEEDBACK.c.created_at < utcnow() - older_than)
    with engine.begin() as connection:
        return connection.execute(FEEDBACK.delete().where(condition)).rowcount


def rows(engine: Engine, model: str | None = None) -> list[dict]:
    """Every row (oldest first), optionally of one model."""
    query = sa.select(FEEDBACK).order_by(FEEDBACK.c.id)
    if model is not None:
        query = query.where(FEEDBACK.c.model == model)
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(query)]
