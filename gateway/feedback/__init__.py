"""Feedback on answers: signed request ids, the store (SQLAlchemy, Alembic), its write path."""
