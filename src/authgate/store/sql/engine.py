"""Turning a database URL into a configured async engine, for SQLite and PostgreSQL.

SQLite needs the most care: WAL so readers never block the writer, `synchronous=FULL` so a
commit survives power loss, a busy timeout so replicas queue instead of failing, and
SQLAlchemy (not the sqlite3 module) in charge of BEGIN, so that SELECTs and DDL are really
inside transactions and write transactions take the write lock up front (`BEGIN IMMEDIATE`).

`unavailable()` says which failures mean the database cannot answer now (a lost or broken
connection, a lock held past the busy timeout, a full pool): `SqlDatabase._tx` raises those as
`StoreUnavailable`, and on PostgreSQL the engine treats each broken connection as a disconnect
(SQLAlchemy's `handle_error`), so it is discarded with the pool's older connections, never reused.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, ExceptionContext

if TYPE_CHECKING:  # imported by make_engine: an SQLite file at head never needs it (database.py)
    from sqlalchemy.ext.asyncio import AsyncEngine

from authgate.errors import StoreError, StoreUnavailable
from authgate.masking import masked_urls
from authgate.store.files import private_file

# Execution option marking a connection that will write: on SQLite it begins IMMEDIATE.
WRITE_OPTION = "authgate_write"

SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_SECONDS = 10  # asyncpg's own default is 60: a request would wait that long
PG_PING_AFTER_IDLE_SECONDS = 5.0  # a pooled write connection idle longer is pinged before use
_CHECKED_IN = "authgate_checked_in"  # a pooled connection's last check-in (time.monotonic)

# SQLSTATEs of a connection the server ended or refused: class 08 (connection exception) and
# these. 53300 (too many connections) and 57P03 (starting up) are worth a wait, not a reconnect.
_PG_LOST = frozenset({"57P01", "57P02"})  # admin_shutdown (pg_terminate_backend), crash_shutdown
_PG_REFUSED = frozenset({"53300", "57P03"})
# asyncpg's own errors for a connection in a state no statement can use ("connection is
# closed", "another operation is in progress", a protocol state it cannot leave).
_ASYNCPG_BROKEN = frozenset({"InterfaceError", "InternalClientError", "ProtocolError"})

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
    except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise StoreError(masked_urls(f"invalid database URL {database_url!r}: {exc}")) from None
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
    """The database file, or None for an in-memory database or one that is not SQLite (a
    PostgreSQL URL's database is a name, never a path here)."""
    database = url.database
    if not is_sqlite(url) or not database or database == ":memory:" or url.query.get("mode") == "memory":
        return None
    return Path(database)


def make_engine(url: URL, *, reads: bool = False) -> AsyncEngine:
    """`reads` (PostgreSQL): an engine for the store's read transactions. Autocommit: a read is
    its one statement, without BEGIN and COMMIT round trips (each statement already sees its own
    snapshot under READ COMMITTED); no ping before each use (BEGIN and ROLLBACK with asyncpg,
    two more round trips): a read whose connection was lost runs again on a fresh one
    (`database.idempotent`), and the lost connection takes the pool's older ones with it."""
    from sqlalchemy.ext.asyncio import create_async_engine  # with the ORM: ~7 MB (docs/benchmarks.md §4)

    if not is_sqlite(url):
        engine = create_async_engine(
            url,
            connect_args={"timeout": PG_CONNECT_TIMEOUT_SECONDS},
            **({"isolation_level": "AUTOCOMMIT"} if reads else {}),
        )
        sa.event.listen(engine.sync_engine, "handle_error", _broken_is_disconnect)
        if not reads:
            _ping_when_idle(engine.sync_engine)
        return engine
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


def _ping_when_idle(engine: sa.Engine) -> None:
    """The writes' engine pings a pooled connection before use only when it has idled past
    `PG_PING_AFTER_IDLE_SECONDS`, so a replica outlives a database restart during a quiet spell
    without surfacing a stale connection, and a busy one pays no ping (BEGIN and ROLLBACK with
    asyncpg: two round trips, ~0.3 ms of CPU, before each write transaction with
    `pool_pre_ping`). A connection the database ended while it was in use is a disconnect
    (`_broken_is_disconnect`): the pool discards it and its older ones, and that one request is
    a 503 (`StoreUnavailable`), as it was with the ping."""
    dialect = engine.dialect

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idled = record.info.get(_CHECKED_IN)
        if idled is None or time.monotonic() - idled < PG_PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure of the ping: reconnect
            raise sa.exc.DisconnectionError(f"a pooled connection failed its ping: {_text(exc)}") from exc
        if not alive:
            raise sa.exc.DisconnectionError("a pooled connection failed its ping")

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN] = time.monotonic()

    sa.event.listen(engine, "checkout", checkout)
    sa.event.listen(engine, "checkin", checkin)


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


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc`, the driver error SQLAlchemy wrapped (`.orig`) and their causes, each once."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(found) < 16:
        e = todo.pop(0)
        if e is None or any(e is f for f in found):
            continue
        found.append(e)
        todo += [getattr(e, "orig", None), e.__cause__, None if e.__suppress_context__ else e.__context__]
    return found


def _from_asyncpg(e: BaseException) -> bool:
    return type(e).__module__.startswith("asyncpg")


def unavailable(exc: BaseException, *, connecting: bool = False) -> StoreUnavailable | None:
    """`exc` as a `StoreUnavailable` when it means the database cannot answer now; None when it
    is anything else (a constraint, a bug, a schema problem: those stay plain `StoreError`s).
    `connecting`: it was raised while getting a connection, so no statement ran; any database
    failure then is unavailability (refused, shutting down, not accepting connections, …)."""
    for e in _chain(exc):
        if isinstance(e, sa.exc.DBAPIError) and e.connection_invalidated:
            return StoreUnavailable(f"the database connection was lost: {_text(e.orig or e)}", reconnect=True)
        if isinstance(e, sa.exc.TimeoutError):  # the pool's: every connection busy for pool_timeout
            return StoreUnavailable(f"no database connection was free in time: {_text(e)}")
        if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
            return StoreUnavailable(f"the database stayed locked past the busy timeout: {_text(e)}")
        sqlstate = getattr(e, "sqlstate", None) if _from_asyncpg(e) else None
        if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _PG_LOST):
            return StoreUnavailable(f"the database connection was lost: {_text(e)}", reconnect=True)
        if sqlstate in _PG_REFUSED:
            return StoreUnavailable(f"the database refused a connection: {_text(e)}")
        if _from_asyncpg(e) and type(e).__name__ in _ASYNCPG_BROKEN:
            return StoreUnavailable(f"the database connection broke: {_text(e)}", reconnect=True)
        if isinstance(e, TimeoutError):
            return StoreUnavailable(f"the database did not answer in time: {_text(e)}")
        if isinstance(e, OSError):  # refused, reset, unreachable
            return StoreUnavailable(f"cannot reach the database: {_text(e)}", reconnect=True)
    if connecting and isinstance(exc, sa.exc.SQLAlchemyError):
        return StoreUnavailable(f"cannot connect to the database: {_text(getattr(exc, 'orig', None) or exc)}")
    return None


def _text(e: BaseException) -> str:
    return masked_urls(str(e).split("\n", 1)[0][:300]) or type(e).__name__


def _broken_is_disconnect(context: ExceptionContext) -> None:
    """A connection that failed for any reason `unavailable` sees as a lost or broken one is a
    disconnect to SQLAlchemy too (it knows only closed sockets): invalidated, never reused,
    and the pool's older connections with it."""
    if not context.is_disconnect:
        failure = unavailable(context.original_exception)
        if failure is not None and failure.reconnect:
            context.is_disconnect = True
