"""The feedback table and its metadata (the salt of text hashes).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(400), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("text_hash", sa.String(64), nullable=True),
        sa.Column("answered_at", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("client", "request_id", name="uq_feedback_client_request"),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    op.create_index("ix_feedback_model", "feedback", ["model"])
    meta = op.create_table(
        "feedback_meta",
        sa.Column("key", sa.String(50), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )
    op.bulk_insert(meta, [{"key": "text_salt", "value": os.urandom(16).hex()}])


def downgrade() -> None:
    op.drop_table("feedback_meta")
    op.drop_index("ix_feedback_model", "feedback")
    op.drop_index("ix_feedback_created_at", "feedback")
    op.drop_table("feedback")
