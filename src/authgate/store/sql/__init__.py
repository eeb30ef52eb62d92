"""The SQL store: SQLite and PostgreSQL behind one class, with Alembic migrations."""

from authgate.store.sql.bundle import sql_stores
from authgate.store.sql.store import SqlStore, upgrade

__all__ = ["SqlStore", "sql_stores", "upgrade"]
