"""Alembic environment: migrations run on the URL the caller configured (store.alembic_config)."""

from __future__ import annotations

from alembic import context

from gateway.feedback.store import METADATA, engine_for

config = context.config
engine = engine_for(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=METADATA, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
