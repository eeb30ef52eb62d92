"""`SqlDatabase`: one SQL database (SQLite or PostgreSQL), opened and migrated, and the one
way to run a transaction on it. Database failures leave it as `StoreError`; those that mean
the database cannot answer now (`engine.unavailable`) as `StoreUnavailable`, their connection
discarded. A method marked `@idempotent` (reads, and writes that may run twice) is run once
more on a fresh connection when its connection was lost; any other write is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.ext.asyncio import AsyncEngine

from authgate import metering
from authgate.errors import StoreError, StoreUnavailable
from authgate.masking import masked_urls
from authgate.store.sql.engine import (
    WRITE_OPTION,
    display_url,
    is_sqlite,
    make_engine,
    parse_url,
    sqlite_file,
    unavailable,
)
from authgate.store.sql.pg_prepared import DirectPg
from authgate.store.sql.revisions import schema_is_current, sqlite_at_head
from authgate.store.sql.sqlite_direct import DirectSqlite
from authgate.store.sql.sqlite_prepared import is_prepared

log = logging.getLogger("authgate.store")

P = ParamSpec("P")
T = TypeVar("T")

# Set while an @idempotent method runs: the methods it calls do not retry on their own.
_RETRYING = contextvars.ContextVar("authgate_store_retrying", default=False)


def idempotent(method: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Mark a store method safe to run twice (a read, or a write whose second run changes
    nothing more): when its connection is lost it runs once more, on a fresh connection."""

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if _RETRYING.get():
            return await method(*args, **kwargs)
        token = _RETRYING.set(True)
        try:
            try:
                return await method(*args, **kwargs)
            except StoreUnavailable as exc:
                if not exc.reconnect:
                    raise
                log.info("retrying %s on a fresh connection: %s", method.__qualname__, exc)
            return await method(*args, **kwargs)
        finally:
            _RETRYING.reset(token)

    run.idempotent = True  # type: ignore[attr-defined]  # what tests/store check
    return run


class Connection(Protocol):
    """What a transaction's body may use: `execute` and `scalar` of SQLAlchemy Core, awaited.
    SQLAlchemy's `AsyncConnection` (PostgreSQL, in-memory SQLite) or, on an SQLite file,
    `sqlite_direct.DirectTx`."""

    async def execute(self, statement: sa.Executable, parameters: Any = None) -> sa.CursorResult[Any]: ...

    async def scalar(self, statement: sa.Executable, parameters: Any = None) -> Any: ...


class SqlDatabase:
    """One SQL database and its transactions: what `SqlStore` and its companions (audit, rate
    limits, session bindings, upstream tokens) share. Accepts `sqlite+aiosqlite://` and
    `postgresql+asyncpg://` URLs (plain `sqlite://` / `postgresql://` too)."""

    def __init__(self, database_url: str, *, migrate: bool = True) -> None:
        self._url = parse_url(database_url)
        self._migrate = migrate
        self._engine: AsyncEngine | None = None
        self._writer: AsyncEngine | None = None
        # An in-memory SQLite database is one shared connection: take turns on it.
        in_memory = is_sqlite(self._url) and sqlite_file(self._url) is None
        self._serial: asyncio.Lock | None = asyncio.Lock() if in_memory else None
        self._direct: DirectSqlite | None = None  # an SQLite file's transactions, once open
        self._reader: AsyncEngine | None = None  # PostgreSQL's reads (engine.make_engine)
        self._pg: DirectPg | None = None  # PostgreSQL's prepared statements on asyncpg (pg_prepared.py)

    @property
    def dialect(self) -> str:
        """The backend: "sqlite" or "postgresql"."""
        return self._url.get_backend_name()

    def upsert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT of this backend's dialect, which offers `on_conflict_do_nothing` and
        `on_conflict_do_update` (both backends spell ON CONFLICT the same way)."""
        from sqlalchemy.dialects import postgresql, sqlite  # here: SQLite never loads PostgreSQL's (2.4 MB)

        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    async def open(self) -> None:
        if self._engine is not None or self._direct is not None:
            return
        self._direct = self._direct_at_head()
        if self._direct is not None:
            return
        engine = make_engine(self._url)
        try:
            if not await schema_is_current(engine):  # Alembic is imported only when it has work to do
                from authgate.store.sql.migrate import check_engine, upgrade_engine

                await (upgrade_engine(engine) if self._migrate else check_engine(engine))
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            detail = masked_urls(str(exc))  # a driver's text may quote the URL
            raise StoreError(f"cannot open the database at {display_url(self._url)}: {detail}") from exc
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        if not is_sqlite(self._url):
            self._reader = make_engine(self._url, reads=True)
            self._pg = DirectPg(self._url, engine.sync_engine.dialect)
        elif self._serial is None:  # an SQLite file: transactions run in place
            self._direct = DirectSqlite(self._url)
            await engine.dispose()  # aiosqlite's connections (a thread each) were the migration's

    def _direct_at_head(self) -> DirectSqlite | None:
        """An SQLite file whose schema is at head: its `DirectSqlite`, opened without
        SQLAlchemy's asyncio layer, the ORM that layer imports and aiosqlite (~8 MB of a
        started server, docs/benchmarks.md §4), which only an upgrade or check needs. None
        otherwise (no file yet, in memory, behind or ahead of head, or unreadable): `open`
        then takes the asyncio engine's path, which migrates or names the problem."""
        return DirectSqlite(self._url) if self._serial is None and sqlite_at_head(self._url) else None

    async def close(self) -> None:
        engine, self._engine, self._writer = self._engine, None, None
        direct, self._direct = self._direct, None
        if direct is not None:
            direct.close()
        pg, self._pg = self._pg, None
        if pg is not None:
            await pg.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.dispose()
        if engine is not None:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def _tx(
        self, *, write: bool = True, prepared: bool = False, single: bool = False
    ) -> AsyncIterator[Connection]:
        """One transaction, committed on exit; database failures become StoreError, those of
        a database that cannot answer now StoreUnavailable. A connection that broke, or was
        left mid-statement by a cancellation, is discarded rather than pooled again.
        `prepared`: every statement of the body compiles without parameters rendered at
        execution (the flow's, marked `prepared(...)`): on PostgreSQL it runs on asyncpg
        directly (`pg_prepared.DirectPg`), without SQLAlchemy's asyncio layer. `single` (with
        `prepared`): the body writes with one statement, and any read before it need not share
        its snapshot (READ COMMITTED gives each statement its own anyway): on PostgreSQL without
        BEGIN and COMMIT, two round trips less; one transaction elsewhere."""
        engine = self._writer if write else (self._reader or self._engine)
        if engine is None and self._direct is None:
            raise StoreError("the store is not open: call `await store.open()` first")
        connecting = True  # a failure to get a connection at all is the database's unavailability
        meter, begun, failed = metering.meter, time.perf_counter(), True  # latency by kind (server/metrics.py)
        try:
            async with self._serial or contextlib.nullcontext():
                if self._direct is not None:  # an SQLite file: no thread hop per call (sqlite_direct.py)
                    connecting = False
                    async with self._direct.transaction(write=write) as tx:
                        yield tx
                    failed = False
                    return
                if prepared and self._pg is not None:  # PostgreSQL: on asyncpg (pg_prepared.py)
                    async with self._pg.transaction(begin=not single) as direct:
                        connecting = False
                        yield direct
                    failed = False
                    return
                if engine is None:  # unreachable: no DirectSqlite means open() made an engine
                    raise StoreError("the store is not open: call `await store.open()` first")
                async with engine.connect() as conn:
                    connecting = False
                    try:
                        async with conn.begin():
                            yield conn
                        failed = False
                    except BaseException as exc:
                        if not conn.invalidated and (not isinstance(exc, Exception) or unavailable(exc)):
                            with contextlib.suppress(Exception):
                                await conn.invalidate()
                        raise
        except StoreError:
            raise
        except Exception as exc:  # a driver's own error may escape SQLAlchemy unwrapped
            mapped = _store_error(exc, connecting=connecting)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            if meter is not None:
                meter.store(write, time.perf_counter() - begun, failed)

    async def _read(self, query: sa.Select[Any], params: dict[str, Any] | None) -> Any:
        """A prepared `query` read without a transaction of its own (one statement, its own
        snapshot): on an SQLite file (`DirectSqlite.read`) or on asyncpg (`DirectPg.read`),
        failures and metering as in `_tx`; None otherwise, for `_tx` to run it."""
        direct: DirectSqlite | DirectPg | None = self._direct or self._pg
        if direct is None or not is_prepared(query):
            return None
        meter, begun = metering.meter, time.perf_counter()
        try:
            result = await direct.read(query, params)
        except Exception as exc:
            if meter is not None:
                meter.store(False, time.perf_counter() - begun, True)
            mapped = exc if isinstance(exc, StoreError) else _store_error(exc, connecting=False)
            if mapped is exc:
                raise
            raise mapped from exc
        if result is not None and meter is not None:  # None: not run here (`_tx` meters it)
            meter.store(False, time.perf_counter() - begun, False)
        return result

    @idempotent
    async def _one(self, query: sa.Select[Any], params: dict[str, Any] | None = None) -> sa.RowMapping | None:
        """The first row of `query` (with `params` for its `bindparam`s), in a read transaction."""
        read = await self._read(query, params)
        if read is not None:
            return cast("sa.RowMapping | None", read.mappings().first())
        async with self._tx(write=False) as conn:
            row: sa.RowMapping | None = (await conn.execute(query, params)).mappings().first()
        return row

    @idempotent
    async def _all(self, query: sa.Select[Any], params: dict[str, Any] | None = None) -> list[sa.RowMapping]:
        read = await self._read(query, params)
        if read is not None:
            return cast("list[sa.RowMapping]", read.mappings().all())
        async with self._tx(write=False) as conn:
            return list((await conn.execute(query, params)).mappings().all())

    @idempotent
    async def _count(self, table: sa.Table) -> int:
        async with self._tx(write=False) as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def _store_error(exc: Exception, *, connecting: bool) -> Exception:
    """`exc` as the store raises it: `StoreUnavailable` when the database cannot answer now,
    `StoreError` for any other database failure, anything else unchanged."""
    failure = unavailable(exc, connecting=connecting)
    if failure is not None:
        return failure
    if isinstance(exc, sa.exc.DBAPIError):
        return StoreError(f"database error: {masked_urls(str(exc.orig or exc))}")
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return StoreError(f"database error: {masked_urls(str(exc))}")
    return exc
