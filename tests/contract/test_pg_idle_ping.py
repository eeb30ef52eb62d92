"""The PostgreSQL writes' pool pings a connection before use only when it idled (issue 18:
`store/sql/engine.py` `_ping_when_idle`, instead of `pool_pre_ping`'s two round trips before
every write transaction): a connection the database ended while it sat idle in the pool is
found by that ping and replaced, so the write after a quiet spell still succeeds (issue 19's
promise that a replica outlives a database restart). Real PostgreSQL, real terminations of the
test database's own backends only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import sqlalchemy as sa

from authgate.store.models import Client
from authgate.store.sql import SqlStore
from authgate.store.sql import engine as engines
from support import requirements as req
from support.pg import admin_connection, fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.requirement(req.ISSUE19_STORE_RETRY_IDEMPOTENT)]

NOW = 1_700_000_000.0


@pytest.fixture
async def pg_store() -> AsyncIterator[tuple[SqlStore, str]]:
    async with fresh_database("authgate_idle_ping") as url:
        store = SqlStore(url.render_as_string(hide_password=False))
        await store.open()
        try:
            yield store, str(url.database)
        finally:
            await store.close()


async def _end_backends(database: str) -> None:
    admin = await admin_connection()
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()


async def test_a_write_after_the_database_ended_an_idle_connection_succeeds(
    pg_store: tuple[SqlStore, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, database = pg_store
    client = Client(
        client_id="c1", metadata={"redirect_uris": ["http://127.0.0.1/cb"]}, created_at=NOW, last_used_at=NOW
    )
    await store.add_client(client)  # the pool now holds a write connection, checked in
    monkeypatch.setattr(engines, "PG_PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection has idled
    await _end_backends(database)
    # a write that is never retried (not @idempotent): it succeeds because the ping found the
    # ended connection first (with PG_PING_AFTER_IDLE_SECONDS left long, it is a StoreUnavailable)
    await store.add_client(replace(client, client_id="c2"))
    async with store._tx(write=False) as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM clients")) == 2
