"""The SQL store: SQLite and PostgreSQL behind one class, with Alembic migrations."""

from authgate.store.sql.store import SqlStore, upgrade

__all__ = ["SqlStore", "upgrade"]
