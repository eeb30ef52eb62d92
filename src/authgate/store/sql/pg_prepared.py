"""The OAuth flow's statements on PostgreSQL without SQLAlchemy's asyncio layer.

Through `AsyncEngine` each statement costs ~250 µs of CPU beyond its round trip (the greenlet
hops of a pool check-out, the execution context, the adapted cursor, the check-in's reset);
asyncpg itself ~50 (docs/benchmarks.md §3). Here a statement marked `prepared(...)` (the
module constants of `grants.py`, `store.py`, `ratelimits.py`) is compiled once per set of
parameter names with the engine's own dialect (its `$1::TYPE` text, the types' bind and result
processors, as `sqlite_prepared.py` does for SQLite) and run on an asyncpg connection of
`DirectPg`'s own small pool, whose connections get SQLAlchemy's JSON codecs: a value goes in
and a row comes back exactly as through SQLAlchemy (tests/contract/test_pg_prepared.py runs
each statement both ways). A failure is raised as SQLAlchemy raises it (asyncpg's error
translated by the dialect's DBAPI adapter, then `sa.exc.DBAPIError.instance`: an
`IntegrityError` stays one), so `database.py`'s rules (`engine.unavailable`, the 503 path,
`@idempotent` retries) see no difference.

The pool: at most `MAX_OPEN` connections, `KEEP_IDLE` kept between uses (newest first), a
wait for a free one bounded by `WAIT_SECONDS` (then `StoreUnavailable`, as SQLAlchemy's pool
timeout). A write transaction pings a connection that idled past
`engine.PG_PING_AFTER_IDLE_SECONDS` first (as the writes' engine does); a read does not (a
lost connection fails it and `@idempotent` runs it again on a fresh one). A connection goes
back to the pool only after a statement or a COMMIT/ROLLBACK that completed, never in a
transaction, never after a cancellation or a failure of the connection; a lost connection
takes the idle ones with it (they are as old).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, Dialect

from authgate.errors import StoreUnavailable
from authgate.store.sql import engine as engines
from authgate.store.sql.engine import PG_CONNECT_TIMEOUT_SECONDS, unavailable
from authgate.store.sql.sqlite_prepared import REQUIRED_BIND, DirectResult, Prepared, is_prepared

if TYPE_CHECKING:
    import asyncpg

__all__ = ["DirectPg", "PgPrepared", "PgTx"]

MAX_OPEN = 10  # connections open at once (SQLAlchemy's default pool: 5 kept + 10 overflow)
KEEP_IDLE = 5
WAIT_SECONDS = 30.0  # SQLAlchemy's pool_timeout
_FLOAT_OID = 701  # DOUBLE PRECISION: asyncpg's numeric types pick their result processor by OID
_CONNECT_ONLY = ("async_creator_fn", "prepared_statement_cache_size", "prepared_statement_name_func")


class PgPrepared(Prepared):
    """One statement compiled for asyncpg with one set of parameter names."""

    def __init__(self, statement: sa.Executable, keys: tuple[str, ...], dialect: Dialect) -> None:
        self.statement = statement
        compiled: Any = cast(Any, statement).compile(dialect=dialect, column_keys=list(keys))
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a statement with parameters rendered at execution cannot be prepared")
        self.sql = compiled.string
        processors = compiled._bind_processors
        self.binds = tuple(
            (
                name,
                processors.get(name),
                REQUIRED_BIND if compiled.binds[name].required else compiled.binds[name].effective_value,
            )
            for name in compiled.positiontup or ()
        )
        columns = compiled._result_columns
        self.columns = tuple(c[0] for c in columns)
        self.processors = tuple(_result_processor(c[3], dialect) for c in columns)


def _result_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    try:
        return cast("Callable[[Any], Any] | None", type_._cached_result_processor(dialect, None))
    except (TypeError, sa.exc.InvalidRequestError):  # a numeric type: it asks the column's OID
        if not isinstance(type_, sa.Float):
            raise ValueError(f"no result processor for {type_!r} without its column's type") from None
        return cast("Callable[[Any], Any] | None", type_._cached_result_processor(dialect, _FLOAT_OID))


def _compiled(
    cache: dict[tuple[int, tuple[str, ...]], PgPrepared] | None,
    statement: sa.Executable,
    parameters: Mapping[str, Any] | None,
    dialect: Dialect,
) -> PgPrepared | None:
    """The compiled form for these parameter names: kept in `cache` (made once) for a marked
    statement; made for this call (`cache` None) for any other; None when it cannot be."""
    keys = tuple(parameters) if parameters else ()
    key = (id(statement), keys)
    found = cache.get(key) if cache is not None else None
    if found is None:
        try:
            found = PgPrepared(statement, keys, dialect)
        except (ValueError, sa.exc.CompileError):
            return None
        if cache is not None:
            cache[key] = found
    return found


class DirectPg:
    """A PostgreSQL database's flow statements on raw asyncpg connections (module doc)."""

    def __init__(self, url: URL, dialect: Dialect) -> None:
        self._dialect = dialect
        self._dbapi: Any = dialect.loaded_dbapi  # SQLAlchemy's asyncpg adapter: its error classes
        args, kwargs = dialect.create_connect_args(url)
        if str(kwargs.get("prepared_statement_cache_size", "")) == "0":  # as SQLAlchemy's (PgBouncer):
            kwargs.setdefault("statement_cache_size", 0)  # no named prepared statements here either
        for name in _CONNECT_ONLY:
            kwargs.pop(name, None)
        self._connect_args: tuple[list[Any], dict[str, Any]] = (list(args), dict(kwargs))
        self._cache: dict[tuple[int, tuple[str, ...]], PgPrepared] = {}
        self._idle: list[tuple[asyncpg.Connection, float]] = []  # with the time each came back
        self._slots = asyncio.Semaphore(MAX_OPEN)
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def compiled(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> PgPrepared | None:
        return _compiled(self._cache if is_prepared(statement) else None, statement, parameters, self._dialect)

    async def read(self, statement: sa.Executable, parameters: Mapping[str, Any] | None) -> DirectResult | None:
        """A marked statement run as its one statement (autocommit: its own snapshot), or None
        when it cannot be prepared (SQLAlchemy's path then runs it)."""
        prepared = self.compiled(statement, parameters)
        if prepared is None:
            return None
        values = prepared.values(parameters)  # a missing value fails before a connection is taken
        conn = await self._acquire(ping=False)
        clean = False
        try:
            result = await _run(conn, prepared, values, self._dbapi)
            clean = True
        except Exception as exc:
            self._failed(exc)
            raise
        finally:
            self._release(conn, clean=clean)
        return result

    @contextlib.asynccontextmanager
    async def transaction(self, *, begin: bool = True) -> AsyncIterator[PgTx]:
        """A READ COMMITTED transaction (SQLAlchemy's default), committed on exit, rolled back
        on an exception; the connection is kept only when the ROLLBACK or COMMIT completed.
        `begin=False`: no BEGIN and COMMIT (two round trips), each statement commits on its own
        (`database._tx(single=True)`: a body of one write, whose reads need not share its
        snapshot)."""
        conn = await self._acquire(ping=True)
        clean = False
        try:
            if not begin:
                try:
                    yield PgTx(conn, self)
                except Exception as exc:  # every statement ran to its end: the connection is as good
                    self._failed(exc)
                    clean = True
                    raise
                clean = True
                return
            tx = conn.transaction(isolation="read_committed")
            try:
                await tx.start()
            except Exception as exc:  # no statement ran: the connection's failure
                self._failed(exc)
                raise _connecting(_as_sqlalchemy(exc, "BEGIN", (), self._dbapi)) from exc
            try:
                yield PgTx(conn, self)
            except Exception as exc:
                self._failed(exc)
                with contextlib.suppress(Exception):
                    await tx.rollback()
                    clean = True
                raise
            try:
                await tx.commit()
            except Exception as exc:
                self._failed(exc)
                raise _as_sqlalchemy(exc, "COMMIT", (), self._dbapi) from exc
            clean = True
        finally:  # BaseException (a cancellation) leaves `clean` False: the connection is closed; a
            self._release(conn, clean=clean)  # lost or mid-transaction one is closed by _release

    async def _acquire(self, *, ping: bool) -> asyncpg.Connection:
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if self._slots.locked():  # every connection busy: wait, bounded (wait_for costs a task)
            try:
                await asyncio.wait_for(self._slots.acquire(), WAIT_SECONDS)
            except TimeoutError:
                raise StoreUnavailable(f"no database connection was free in {WAIT_SECONDS:.0f} s") from None
        else:
            await self._slots.acquire()
        try:
            while self._idle:
                conn, since = self._idle.pop()
                if conn.is_closed():
                    continue
                if ping and time.monotonic() - since >= engines.PG_PING_AFTER_IDLE_SECONDS:
                    try:
                        await conn.fetchrow(";")
                    except Exception:  # noqa: BLE001 - any failure of the ping: this and the older ones go
                        conn.terminate()
                        self._drop_idle()
                        continue
                return conn
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def _connect(self) -> asyncpg.Connection:
        import asyncpg

        args, kwargs = self._connect_args
        try:
            conn = await asyncpg.connect(*args, timeout=PG_CONNECT_TIMEOUT_SECONDS, **kwargs)
        except Exception as exc:
            raise _connecting(_as_sqlalchemy(exc, "connect", (), self._dbapi)) from exc
        try:  # SQLAlchemy's own codecs (PGDialect_asyncpg.setup_asyncpg_json_codec)
            deserialize = getattr(self._dialect, "_json_deserializer", None) or _json_loads()
            await conn.set_type_codec(
                "json",
                encoder=str.encode,
                decoder=lambda b: deserialize(b.decode()),
                schema="pg_catalog",
                format="binary",
            )
            await conn.set_type_codec(
                "jsonb",
                encoder=lambda s: b"\x01" + s.encode(),
                decoder=lambda b: deserialize(b[1:].decode()),
                schema="pg_catalog",
                format="binary",
            )
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, Exception):
                raise _connecting(_as_sqlalchemy(exc, "connect", (), self._dbapi)) from exc
            raise
        return conn

    def _release(self, conn: asyncpg.Connection, *, clean: bool) -> None:
        self._slots.release()
        if not clean or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()  # its state is unknown: never reused
        elif self._closed or len(self._idle) >= KEEP_IDLE:
            self._close_later(conn)
        else:
            self._idle.append((conn, time.monotonic()))

    def _failed(self, exc: BaseException) -> None:
        """A lost connection: the idle ones are as old, and go too (as SQLAlchemy's pool)."""
        failure = unavailable(exc)
        if failure is not None and failure.reconnect:
            self._drop_idle()

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.terminate()

    def _close_later(self, conn: asyncpg.Connection) -> None:
        task = asyncio.ensure_future(_close(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_close(conn) for conn, _ in idle), *self._closing, return_exceptions=True)


class PgTx:
    """What a transaction's body uses (`database.Connection`): `execute` and `scalar`."""

    __slots__ = ("_conn", "_direct")

    def __init__(self, conn: asyncpg.Connection, direct: DirectPg) -> None:
        self._conn = conn
        self._direct = direct

    async def execute(self, statement: sa.Executable, parameters: Any = None) -> sa.CursorResult[Any]:
        """A `DirectResult`: what the store reads of a result, typed as SQLAlchemy's (as
        `sqlite_direct.DirectTx` returns it)."""
        prepared = self._direct.compiled(statement, parameters)
        if prepared is None:  # the caller opted in (`_tx(prepared=True)`) for statements that compile
            raise sa.exc.ArgumentError(f"cannot run on asyncpg directly: {statement}")
        values = prepared.values(parameters)
        return cast("sa.CursorResult[Any]", await _run(self._conn, prepared, values, self._direct._dbapi))

    async def scalar(self, statement: sa.Executable, parameters: Any = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()


async def _run(conn: asyncpg.Connection, prepared: PgPrepared, values: tuple[Any, ...], dbapi: Any) -> DirectResult:
    try:
        if prepared.columns:  # a SELECT, or RETURNING
            rows = await conn.fetch(prepared.sql, *values)
            return DirectResult(prepared, rows, len(rows))
        status = await conn.execute(prepared.sql, *values)  # "UPDATE 1", "INSERT 0 1", "DELETE 3"
    except Exception as exc:
        raise _as_sqlalchemy(exc, prepared.sql, values, dbapi) from exc
    count = status.rpartition(" ")[2]
    return DirectResult(prepared, [], int(count) if count.isdigit() else -1)


def _as_sqlalchemy(exc: Exception, sql: str, values: tuple[Any, ...], dbapi: Any) -> Exception:
    """asyncpg's error as SQLAlchemy raises it (its adapter's translation, then
    `DBAPIError.instance`); any other exception (OSError, TimeoutError) unchanged."""
    if not type(exc).__module__.startswith("asyncpg"):
        return exc
    for kind in type(exc).__mro__:
        translate = dbapi._asyncpg_error_translate.get(kind)
        if translate is not None:
            translated = translate(f"{type(exc)}: {exc}")
            translated.pgcode = translated.sqlstate = getattr(exc, "sqlstate", None)
            translated.__cause__ = exc
            wrapped: Exception = sa.exc.DBAPIError.instance(sql, values, translated, dbapi.Error)
            return wrapped
    return exc


def _connecting(exc: Exception) -> Exception:
    """A failure to get a connection at all: the database's unavailability (as `_tx` says with
    `connecting=True`); anything else (a bug) unchanged."""
    failure = unavailable(exc, connecting=True)
    if failure is None:
        return exc
    failure.__cause__ = exc
    return failure


def _json_loads() -> Callable[[str], Any]:
    import json

    return json.loads


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=2)
    except Exception:  # noqa: BLE001 - closing a connection that failed: drop it
        conn.terminate()
