"""Turning a database URL into a configured async engine, for SQLite and PostgreSQL.

SQLite needs the most care: WAL so readers never block the writer, `synchronous=FULL` so a
commit survives power loss, a busy timeout so replicas queue instead of failing, and
SQLAlchemy (not the sqlite3 module) in charge of BEGIN, so that SELECTs and DDL are really
inside transactions and write transactions take the write lock up front (`BEGIN IMMEDIATE`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authgate.errors import StoreError
from authgate.store.files import private_file

# Execution option marking a connection that will write: on SQLite it begins IMMEDIATE.
WRITE_OPTION = "authgate_write"

SQLITE_BUSY_TIMEOUT_MS = 5000

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def parse_url(database_url: str) -> URL:
    """Parse and pin the async driver, so `sqlite:///x` and `postgresql://...` also work."""
    try:
        url = sa.make_url(database_url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"invalid database URL {database_url!r}: {exc}") from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise StoreError(
            f"unsupported database URL scheme {url.drivername!r}: use "
            "sqlite+aiosqlite:///path/to/authgate.db or postgresql+asyncpg://user@host/db"
        )
    return url.set(drivername=driver)


def display_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_file(url: URL) -> Path | None:
    """The database file, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    return Path(database)


def make_engine(url: URL) -> AsyncEngine:
    if not is_sqlite(url):
        # pre_ping: a replica outlives database restarts without surfacing stale connections.
        return create_async_engine(url, pool_pre_ping=True)
    path = sqlite_file(url)
    if path is not None:
        try:
            private_file(path)  # 0600 in a 0700 folder before SQLite creates it
        except OSError as exc:
            raise StoreError(f"cannot create the directory for {path}: {exc}") from None
    engine = create_async_engine(url)
    sa.event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # None = the sqlite3 module never emits BEGIN itself; _sqlite_on_begin does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another replica may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock now, waiting via busy_timeout; a deferred transaction
    # that read first could not upgrade to a writer after another replica committed.
    if conn.get_execution_options().get(WRITE_OPTION, False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
