"""Which database failures are `StoreUnavailable`, what is retried, and that a broken connection
is never reused (issue 19; store/sql/engine.py `unavailable`, database.py `_tx`, `idempotent`).

Real failures on real databases: a PostgreSQL backend that terminates itself
(`pg_terminate_backend(pg_backend_pid())`, what an operator's or a failover's termination
looks like to the driver), a SQLite file whose write lock another connection holds, a port
nobody listens on. The driver exceptions the classifier reads are built as the drivers build them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa

from authgate.errors import StoreError, StoreUnavailable
from authgate.store.sql import SqlStore, engine
from authgate.store.sql.database import idempotent
from authgate.store.sql.grants import SqlGrants
from support import requirements as req
from support.pg import fresh_database

pytestmark = pytest.mark.requirement(req.ISSUE19_STORE_RETRY_IDEMPOTENT)

SUICIDE = sa.text("SELECT pg_terminate_backend(pg_backend_pid())")


@pytest.fixture
async def pg_store() -> AsyncIterator[SqlStore]:
    async with fresh_database("authgate_unavailable") as url:
        store = SqlStore(url.render_as_string(hide_password=False))
        await store.open()
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SqlStore]:
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 200)  # the lock outlasts it sooner
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


# -- classification -----------------------------------------------------------------------------


def test_driver_errors_of_a_connection_that_cannot_be_used_are_unavailable() -> None:
    lost = [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "Connection reset by peer"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.exceptions._base.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    ]
    for exc in lost:
        failure = engine.unavailable(exc)
        assert failure is not None and failure.reconnect, exc
    waited = [
        sqlite3.OperationalError("database is locked"),
        sa.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        TimeoutError(),
    ]
    for exc in waited:
        failure = engine.unavailable(exc)
        assert failure is not None and not failure.reconnect, exc  # the wait was made: no retry


def test_other_database_errors_are_not_unavailable() -> None:
    for exc in [
        asyncpg.exceptions.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.exceptions.PostgresSyntaxError("syntax error at or near"),
        asyncpg.exceptions.DataError("invalid input for query argument $1"),
        sqlite3.IntegrityError("UNIQUE constraint failed: clients.client_id"),
        sqlite3.OperationalError("no such table: clients"),
        ValueError("not a database failure"),
    ]:
        assert engine.unavailable(exc) is None, exc


def test_a_wrapped_driver_error_is_classified_by_its_cause() -> None:
    orig = asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    wrapped = sa.exc.DBAPIError("SELECT 1", None, orig, connection_invalidated=False)
    assert engine.unavailable(wrapped) is not None
    refused = sa.exc.DBAPIError("SELECT 1", None, asyncpg.exceptions.InvalidPasswordError("password"))
    assert engine.unavailable(refused) is None  # mid-transaction: a real error, not an outage
    assert engine.unavailable(refused, connecting=True) is not None  # at connect: the database refuses


@pytest.mark.postgres
async def test_a_terminated_connection_is_unavailable_and_discarded(pg_store: SqlStore) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        async with pg_store._tx(write=False) as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            await conn.execute(SUICIDE)
            await conn.execute(sa.text("SELECT 1"))
    assert raised.value.reconnect
    assert driver is not None and driver.is_closed()  # closed, not pooled again
    async with pg_store._tx(write=False) as conn:  # a fresh connection serves the next call
        assert (await conn.get_raw_connection()).driver_connection is not driver
        assert await conn.scalar(sa.text("SELECT 1")) == 1


@pytest.mark.postgres
async def test_integrity_and_sql_errors_stay_plain_store_errors(pg_store: SqlStore) -> None:
    with pytest.raises(StoreError) as raised:
        async with pg_store._tx() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            await conn.execute(sa.text("SELECT * FROM no_such_table"))
    assert not isinstance(raised.value, StoreUnavailable)
    assert driver is not None and not driver.is_closed()  # a healthy connection goes back to the pool


async def test_sqlite_locked_past_the_busy_timeout_is_unavailable(sqlite_store: SqlStore, tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "authgate.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await sqlite_store.touch_client("nobody", 1.0)  # a write: BEGIN IMMEDIATE waits, then gives up
        assert not raised.value.reconnect
        assert await sqlite_store.count_clients() == 0  # WAL: reads go on meanwhile
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await sqlite_store.touch_client("nobody", 1.0)


# -- retry ----------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_a_read_is_retried_once_on_a_fresh_connection(pg_store: SqlStore) -> None:
    attempts = 0

    @idempotent
    async def read() -> int:
        nonlocal attempts
        attempts += 1
        async with pg_store._tx(write=False) as conn:
            if attempts == 1:
                await conn.execute(SUICIDE)
            return int(await conn.scalar(sa.text("SELECT 42")) or 0)

    assert await read() == 42 and attempts == 2


@pytest.mark.postgres
async def test_an_idempotent_call_is_retried_once_only(pg_store: SqlStore) -> None:
    attempts = 0

    @idempotent
    async def inner() -> None:
        async with pg_store._tx(write=False) as conn:
            await conn.execute(SUICIDE)
            await conn.execute(sa.text("SELECT 1"))

    @idempotent
    async def outer() -> None:  # calls another idempotent method: still one retry in all
        nonlocal attempts
        attempts += 1
        await inner()

    with pytest.raises(StoreUnavailable):
        await outer()
    assert attempts == 2


@pytest.mark.postgres
async def test_a_write_that_is_not_idempotent_is_never_retried(pg_store: SqlStore) -> None:
    attempts = 0

    async def write() -> None:
        nonlocal attempts
        attempts += 1
        async with pg_store._tx() as conn:
            await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS marks (n integer)"))
            await conn.execute(sa.text("INSERT INTO marks VALUES (1)"))
            await conn.execute(SUICIDE)

    with pytest.raises(StoreUnavailable):
        await write()
    assert attempts == 1
    async with pg_store._tx(write=False) as conn:  # and it did not commit
        exists = await conn.scalar(sa.text("SELECT to_regclass('marks') IS NOT NULL"))
    assert exists is False


async def test_a_lock_held_past_the_busy_timeout_is_not_retried(sqlite_store: SqlStore, tmp_path: Path) -> None:
    attempts = 0

    @idempotent
    async def write() -> None:
        nonlocal attempts
        attempts += 1
        async with sqlite_store._tx() as conn:
            await conn.execute(sa.text("SELECT 1"))

    holder = sqlite3.connect(tmp_path / "authgate.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable):
            await write()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert attempts == 1  # the busy timeout already waited


def test_which_store_methods_retry() -> None:
    """Reads, and writes whose second run changes nothing more; never a redemption, a rotation
    or an insert whose second run would be a second row or a replay."""
    retried = ["_one", "_all", "_count", "touch_client", "revoke_family", "revoke_families", "save_consent"]
    once = ["consume_code", "rotate_refresh_token", "save_code", "create_family", "add_client", "add_user"]
    for name in retried:
        assert getattr(getattr(SqlStore, name), "idempotent", False), name
    for name in once:
        assert not getattr(getattr(SqlStore, name), "idempotent", False), name
    assert issubclass(SqlStore, SqlGrants)
