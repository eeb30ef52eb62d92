"""The flow's statements run on asyncpg directly (`store/sql/pg_prepared.py`, issue 18) give what
SQLAlchemy's own execution gives on PostgreSQL: the same rows, values of the same types (JSON,
booleans, floats, bytes), the same row counts, the same exceptions; and its small pool never
hands out a connection in an unknown state. Each statement is run both ways on one database
(the contract tests run every store method, which now takes this path on PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from authgate.errors import StoreError, StoreUnavailable
from authgate.store.sql import engine as engines
from authgate.store.sql import grants, one_statement, pg_prepared, ratelimits, store
from authgate.store.sql import tables as t
from authgate.store.sql.pg_prepared import DirectPg
from authgate.store.sql.sqlite_prepared import prepared
from support import requirements as req
from support.pg import fresh_database

from .test_sqlite_prepared import CLIENT, CODE, CONSENT, FAMILY, NOW, SELECTS, TOKEN, USER

pytestmark = pytest.mark.postgres

READS = [*SELECTS, ("refresh-grant", one_statement.REFRESH_GRANT, {"token_hash": "t1"})]
SUICIDE = prepared(sa.select(sa.func.pg_terminate_backend(sa.func.pg_backend_pid())))


@pytest.fixture
async def db() -> AsyncIterator[store.SqlStore]:
    """A database at head with one row of each kind, opened as `authgate serve` opens it."""
    async with fresh_database("authgate_pg_prepared") as url:
        opened = store.SqlStore(url.render_as_string(hide_password=False))
        await opened.open()
        try:
            async with opened._tx() as conn:  # SQLAlchemy's path: not `prepared`
                await conn.execute(sa.insert(t.clients), CLIENT)
                await conn.execute(sa.insert(t.users), USER)
                await conn.execute(sa.insert(t.refresh_families), FAMILY)
                await conn.execute(sa.insert(t.authorization_codes), CODE)
                await conn.execute(sa.insert(t.refresh_tokens), {**TOKEN, "successor": b"\x00\xff sealed"})
                await conn.execute(sa.insert(t.consents), CONSENT)
                limits = {"limiter": "l", "key_hash": "h", "window_start": 60, "hits": 3}
                await conn.execute(sa.insert(t.rate_limits), limits)
            yield opened
        finally:
            await opened.close()


def _direct(db: store.SqlStore) -> DirectPg:
    assert db._pg is not None
    return db._pg


async def _through_sqlalchemy(db: store.SqlStore, statement: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with db._tx(write=False) as conn:
        return [dict(r) for r in (await conn.execute(statement, params)).mappings().all()]


@pytest.mark.parametrize(("name", "statement", "params"), READS, ids=[s[0] for s in READS])
async def test_a_direct_read_gives_what_sqlalchemy_gives(
    db: store.SqlStore, name: str, statement: Any, params: dict[str, Any]
) -> None:
    expected = await _through_sqlalchemy(db, statement, params)
    result = await _direct(db).read(statement, params)
    assert result is not None
    got = result.mappings().all()
    assert got == expected
    assert [[type(v) for v in r.values()] for r in got] == [[type(v) for v in r.values()] for r in expected]
    async with db._tx(prepared=True) as direct:  # and inside a transaction
        assert (await direct.execute(statement, params)).mappings().all() == expected


async def test_direct_writes_store_what_sqlalchemy_stores_and_count_the_same_rows(db: store.SqlStore) -> None:
    client2 = {**CLIENT, "client_id": "c2", "metadata": {"a": [1, 2.5, None, True], "é": "✓"}}
    async with db._tx(prepared=True) as conn:
        assert (await conn.execute(store._INSERT_CLIENT, client2)).rowcount == 1
        marked = {"b_client_id": "c2"}
        assert (await conn.execute(grants._CONSENTED, marked)).rowcount == 1
        assert (await conn.execute(grants._CONSENTED, marked)).rowcount == 0  # already consented
    row = (await _through_sqlalchemy(db, store._GET_CLIENT, {"client_id": "c2"}))[0]
    assert row["metadata"] == {"a": [1, 2.5, None, True], "é": "✓"} and row["consented"] is True
    rotate = {"b_token_hash": "t1", "rotated_at": NOW + 1, "successor": b"\x01\x02"}
    async with db._tx(prepared=True) as conn:
        assert (await conn.execute(grants._ROTATE, rotate)).rowcount == 1
        assert (await conn.execute(grants._ROTATE, rotate)).rowcount == 0  # the conditional UPDATE lost
    token = (await _through_sqlalchemy(db, grants._GET_TOKEN, {"token_hash": "t1"}))[0]
    assert token["successor"] == b"\x01\x02" and token["rotated_at"] == NOW + 1
    consume = {"b_code_hash": "k1", "consumed_at": NOW + 2}
    async with db._tx(prepared=True, single=True) as conn:  # RETURNING the row it consumed, once
        assert (await conn.execute(grants._CONSUME_CODE, consume)).mappings().first() == {
            **CODE,
            "consumed_at": NOW + 2,
        }
        assert (await conn.execute(grants._CONSUME_CODE, consume)).first() is None
    async with db._tx(prepared=True) as conn:
        assert (await conn.execute(store._EVICT_FROM_POOL, {"keep": 0})).rowcount == 1  # c1: not consented
        assert await conn.scalar(store._COUNT_CLIENTS) == 1


async def test_a_direct_upsert_returns_its_row_like_sqlalchemy(db: store.SqlStore) -> None:
    limits = ratelimits.SqlRateLimits(db, "l", 10)
    hit = {"limiter": "l", "key_hash": "h", "window_start": 60, "hits": 1, "cap": 10}
    async with db._tx(prepared=True) as conn:
        assert (await conn.execute(limits._count, hit)).first() == (4,)
        assert (await conn.execute(limits._count, {**hit, "cap": 4})).first() is None  # no row back: refused
    assert (await _through_sqlalchemy(db, ratelimits._HITS, hit))[0]["hits"] == 4


async def test_a_direct_statement_fails_as_sqlalchemy_would(db: store.SqlStore) -> None:
    import asyncpg

    with pytest.raises(StoreError) as raised:
        async with db._tx(prepared=True) as conn:
            await conn.execute(store._INSERT_CLIENT, CLIENT)  # the primary key is taken
    assert not isinstance(raised.value, StoreUnavailable)
    assert isinstance(raised.value.__cause__, sa.exc.IntegrityError)
    assert isinstance(raised.value.__cause__.orig.__cause__, asyncpg.UniqueViolationError)  # type: ignore[union-attr]
    with pytest.raises(sa.exc.ArgumentError, match="client_id"):
        await _direct(db).read(store._GET_CLIENT, {})
    assert len(_direct(db)._idle) >= 1  # the connections went back: ROLLBACK and the failed read completed
    with pytest.raises(StoreError, match="already exists"):  # the store's own mapping of it
        await db.add_client(_client())


def _client() -> Any:
    from authgate.store.models import Client

    return Client(client_id="c1", metadata={"redirect_uris": ["http://127.0.0.1/cb"]}, created_at=NOW, last_used_at=NOW)


@pytest.mark.requirement(req.ISSUE19_STORE_RETRY_IDEMPOTENT)
async def test_a_lost_connection_is_unavailable_never_pooled_and_a_read_retries(
    db: store.SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = _direct(db)
    assert await db.get_client("c1") is not None
    with pytest.raises(StoreUnavailable) as raised:
        async with db._tx(prepared=True) as conn:
            await conn.execute(SUICIDE)
            await conn.execute(store._COUNT_CLIENTS)
    assert raised.value.reconnect
    assert all(not c.is_closed() for c, _ in direct._idle)  # the lost one was not pooled again
    # a read on a connection the database ended is retried once, on a fresh one (@idempotent)
    await _end_idle_backends(db)
    assert await db.get_client("c1") is not None
    # a write that is not idempotent: the ping after an idle spell finds the dead one
    monkeypatch.setattr(engines, "PG_PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection has idled
    await _end_idle_backends(db)
    assert await db.add_client(_with_id("c3"))


async def test_a_cancelled_transaction_closes_its_connection(db: store.SqlStore) -> None:
    direct = _direct(db)
    entered = asyncio.Event()
    used: list[Any] = []

    async def slow() -> None:
        async with db._tx(prepared=True) as conn:
            used.append((conn, conn._conn))  # type: ignore[attr-defined]
            entered.set()
            await conn.execute(prepared(sa.select(sa.func.pg_sleep(5))))

    task = asyncio.create_task(slow())
    await asyncio.wait_for(entered.wait(), 5)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    raw = used[0][1]
    assert raw.is_closed() and all(c is not raw for c, _ in direct._idle)
    assert await db.get_client("c1") is not None  # the pool serves on


async def test_the_pool_is_bounded_and_waits_for_a_free_connection(
    db: store.SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = _direct(db)
    monkeypatch.setattr(pg_prepared, "WAIT_SECONDS", 0.2)
    held = [direct._slots.acquire() for _ in range(pg_prepared.MAX_OPEN)]
    await asyncio.gather(*held)
    try:
        with pytest.raises(StoreUnavailable, match="free"):
            await db.get_client("c1")
    finally:
        for _ in range(pg_prepared.MAX_OPEN):
            direct._slots.release()
    assert await db.get_client("c1") is not None


def _with_id(client_id: str) -> Any:
    from dataclasses import replace

    return replace(_client(), client_id=client_id)


async def _end_idle_backends(db: store.SqlStore) -> None:
    from support.pg import admin_connection

    admin = await admin_connection()
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            db._url.database,
        )
    finally:
        await admin.close()


async def test_a_url_that_turns_prepared_statements_off_turns_them_off_here_too(db: store.SqlStore) -> None:
    # `?prepared_statement_cache_size=0` (SQLAlchemy's setting for PgBouncer's transaction mode):
    # asyncpg's own statement cache is off too, so no named prepared statement is left behind
    url = db._url.update_query_dict({"prepared_statement_cache_size": "0"})
    direct = DirectPg(url, _direct(db)._dialect)
    assert direct._connect_args[1]["statement_cache_size"] == 0
    assert "prepared_statement_cache_size" not in direct._connect_args[1]
    result = await direct.read(store._GET_CLIENT, {"client_id": "c1"})
    assert result is not None and result.mappings().first() is not None
    await direct.close()
