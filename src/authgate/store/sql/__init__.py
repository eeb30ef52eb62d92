"""The SQL store: SQLite and PostgreSQL behind one class, with Alembic migrations (imported
only when a migration runs: `revisions.py`)."""

from authgate.store.sql.bundle import sql_stores
from authgate.store.sql.store import SqlStore

__all__ = ["SqlStore", "sql_stores", "upgrade"]


async def upgrade(database_url: str) -> str:
    """Bring the database at `database_url` to head (`authgate db upgrade`); returns head."""
    from authgate.store.sql.migrate import upgrade as run

    return await run(database_url)
