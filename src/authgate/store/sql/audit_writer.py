"""The audit trail's batch writers (`AuditBatchWriter`): a database connection of their own,
used only by the audit writer thread (`audit/writer.py`), never on the serving event loop.

* SQLite: the stdlib `sqlite3` module on the same database file (no SQLAlchemy, no aiosqlite
  thread hop), with the store's rules: WAL, `synchronous=FULL`, the same busy timeout,
  `BEGIN IMMEDIATE`. A batch is written in a few multi-row INSERTs (STATEMENT_ROWS): SQLite
  does its work in a few calls that release the GIL, where `executemany` would release and take
  it back once per row, and each taking back can wait for the serving thread's switch
  interval (5 ms). This connection and the store's
  take turns for the write lock (WAL has one writer at a time): a batch holds it for the
  time of its insert and commit (measured in docs/benchmarks.md), well inside the busy timeout.
* PostgreSQL: asyncpg on an event loop private to the thread; one `executemany` per batch
  in one transaction. The connection is opened on the first batch and again after a failure.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from authgate.errors import StoreError
from authgate.masking import masked_urls
from authgate.store.models import AuditEvent
from authgate.store.sql.engine import SQLITE_BUSY_TIMEOUT_MS

__all__ = ["PostgresBatchWriter", "SqliteBatchWriter"]

COLUMNS = tuple(f.name for f in fields(AuditEvent) if f.name != "event_id")
PG_CONNECT_TIMEOUT_SECONDS = 10


_VALUES = attrgetter(*COLUMNS)  # an event → its row, in COLUMNS order


def _rows(events: Sequence[AuditEvent]) -> list[tuple[Any, ...]]:
    return [_VALUES(e) for e in events]


def _insert(rows: int) -> str:
    one = "(" + ", ".join(["?"] * len(COLUMNS)) + ")"
    return f"INSERT INTO audit_events ({', '.join(COLUMNS)}) VALUES " + ", ".join([one] * rows)


# A batch goes in INSERTs of 256, 128, …, 2, 1 rows (500 rows: six statements): few calls
# into SQLite, each letting go of the GIL once and taking it back once (beside a busy serving
# thread each taking back can wait its 5 ms switch interval), and only these nine statements
# prepared (one per batch size kept up to 128 large ones in sqlite3's statement cache: ~1 KB of
# RSS a request in a server). 256 rows are 2 816 parameters; SQLite before 3.32 allowed 999.
STATEMENT_ROWS = (256, 128, 64, 32, 16, 8, 4, 2, 1)
_INSERTS = {rows: _insert(rows) for rows in STATEMENT_ROWS}


class SqliteBatchWriter:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._sizes: tuple[int, ...] = STATEMENT_ROWS

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            most = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS)
            self._sizes = tuple(size for size in STATEMENT_ROWS if size <= most)
            self._conn = conn
        return self._conn

    def write(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        rows = _rows(events)
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                start = 0
                for size in self._sizes:
                    while len(rows) - start >= size:
                        conn.execute(_INSERTS[size], [v for row in rows[start : start + size] for v in row])
                        start += size
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self.close()  # a fresh connection for the next attempt
            raise StoreError(f"audit: database error: {exc}") from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class PostgresBatchWriter:
    def __init__(self, url: URL) -> None:
        # asyncpg takes the libpq URL form: the SQLAlchemy driver name goes. The DSN holds the
        # password: it is never logged, and errors are shown through masked_urls.
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Any = None  # asyncpg.Connection
        self._sql = "INSERT INTO audit_events ({}) VALUES ({})".format(
            ", ".join(COLUMNS), ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        )

    def write(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._write(_rows(events)))
        except (OSError, TimeoutError) as exc:
            self._drop_connection()
            raise StoreError(
                f"audit: cannot reach the database: {type(exc).__name__}: {masked_urls(str(exc))}"
            ) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("asyncpg"):
                self._drop_connection()
                raise StoreError(f"audit: database error: {type(exc).__name__}: {masked_urls(str(exc))}") from exc
            raise

    async def _write(self, rows: list[tuple[Any, ...]]) -> None:
        if self._conn is None:
            import asyncpg

            self._conn = await asyncpg.connect(self._dsn, timeout=PG_CONNECT_TIMEOUT_SECONDS)
        async with self._conn.transaction():
            await self._conn.executemany(self._sql, rows)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._loop is not None:
            try:
                self._loop.run_until_complete(conn.close(timeout=2))
            except Exception:
                conn.terminate()

    def close(self) -> None:
        self._drop_connection()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()
