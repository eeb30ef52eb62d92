"""Contract: schema migrations, the schema check, and durability across reopening."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from authgate.errors import StoreError
from authgate.store.sql import SqlStore, revisions, upgrade
from authgate.store.sql.engine import make_engine, parse_url
from authgate.store.sql.migrate import alembic_config, head_revision
from authgate.store.sql.tables import metadata

from .conftest import NOW, Build, StoreFactory


async def _revision(database_url: str) -> str | None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    finally:
        await engine.dispose()


async def test_replicas_opening_a_fresh_database_together_both_succeed(database_url: str, build: type[Build]) -> None:
    stores = [SqlStore(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        await stores[0].add_user(build.user("alice"))
        assert await stores[2].get_user_by_name("alice") is not None
    finally:
        for s in stores:
            await s.close()
    assert await _revision(database_url) == head_revision()


async def test_without_migrate_an_empty_database_is_refused(open_store: StoreFactory) -> None:
    with pytest.raises(StoreError, match=r"authgate needs .*: run `authgate db upgrade`"):
        await open_store(migrate=False)


async def test_upgrade_then_open_without_migrate(database_url: str, open_store: StoreFactory) -> None:
    assert await upgrade(database_url) == head_revision()
    assert await upgrade(database_url) == head_revision()  # idempotent
    store = await open_store(migrate=False)
    assert await store.count_users() == 0


async def test_a_schema_from_a_newer_authgate_is_refused(database_url: str, open_store: StoreFactory) -> None:
    await upgrade(database_url)
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dface'"))
    await engine.dispose()
    for migrate in (True, False):
        with pytest.raises(StoreError, match="f00dface.*newer authgate"):
            await open_store(migrate=migrate)


async def test_migrations_build_exactly_the_declared_tables(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
    finally:
        await engine.dispose()
    assert diff == []


async def test_data_survives_close_and_reopen(database_url: str, build: type[Build]) -> None:
    first = SqlStore(database_url)
    await first.open()
    await first.add_user(build.user("alice"))
    await first.save_code(build.code("h1"))
    await first.create_family(build.family("f"), build.token("t", family_id="f"))
    await first.close()

    second = SqlStore(database_url, migrate=False)
    await second.open()
    try:
        assert await second.get_user_by_name("alice") == build.user("alice")
        assert (await second.consume_code("h1", NOW)).code is not None
        assert await second.get_refresh_token("t") == build.token("t", family_id="f")
    finally:
        await second.close()


async def test_a_closed_store_says_so(store: SqlStore) -> None:
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.count_users()


async def test_an_unreachable_database_is_a_store_error() -> None:
    store = SqlStore("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    with pytest.raises(StoreError, match="cannot open the database"):
        await store.open()


def test_an_unsupported_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        SqlStore("mysql://localhost/authgate")


async def test_sqlite_creates_its_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "authgate.db"
    store = SqlStore(f"sqlite:///{path}")  # the plain scheme gets the async driver
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_in_memory_sqlite_works_for_quick_tests(build: type[Build]) -> None:
    store = SqlStore("sqlite+aiosqlite:///:memory:")
    await store.open()
    try:
        await asyncio.gather(*(store.add_user(build.user(f"u{i}")) for i in range(5)))
        assert await store.count_users() == 5
    finally:
        await store.close()


async def test_every_migration_downgrades_and_upgrades_again(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), "base"))
        async with engine.connect() as conn:
            left = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    assert left == {"alembic_version"}
    assert await _revision(database_url) is None
    assert await upgrade(database_url) == head_revision()


async def test_upgrading_existing_users_makes_the_earliest_admin_and_no_one_else(database_url: str) -> None:
    """0006: a deployment keeps one person who may grant every scope (the first user, whom
    `serve` or the operator created first); the others get no role; no session is ended."""
    engine = make_engine(parse_url(database_url))  # creates SQLite's directory
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0005"))
            await conn.execute(
                sa.text(
                    "INSERT INTO users (user_id, username, password_hash, created_at) VALUES "
                    "('u-late', 'bob', 'h', 200.0), ('u-first', 'admin', 'h', 100.0), ('u-mid', 'carol', 'h', 150.0)"
                )
            )
    finally:
        await engine.dispose()
    store = SqlStore(database_url)
    await store.open()  # migrates to head
    try:
        users = {u.username: u for u in await store.list_users()}
    finally:
        await store.close()
    assert {name: u.roles for name, u in users.items()} == {"admin": ("admin",), "bob": (), "carol": ()}
    assert {u.session_version for u in users.values()} == {0}


async def test_upgrading_existing_clients_keeps_the_consented_ones_out_of_the_pool(database_url: str) -> None:
    """0007: `consented` is set from the consents there are, so upgrading moves no client into
    or out of the unverified pool."""
    engine = make_engine(parse_url(database_url))  # creates SQLite's directory
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0006"))
            await conn.execute(
                sa.text(
                    "INSERT INTO clients (client_id, metadata, created_at, last_used_at, source) VALUES "
                    "('consented', '{}', 1.0, 1.0, 'dcr'), ('pending', '{}', 2.0, 2.0, 'dcr'), "
                    "('op', '{}', 3.0, 3.0, 'operator')"
                )
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO consents (user_id, client_id, scopes, resources, granted_at) "
                    "VALUES ('u', 'consented', '[]', '[]', 1.0)"
                )
            )
    finally:
        await engine.dispose()
    store = SqlStore(database_url)
    await store.open()  # migrates to head
    try:
        assert await store.prune_unverified_clients(unused_since=NOW) == 1  # "pending" alone
        assert {c.client_id for c in await store.list_clients()} == {"consented", "op"}
    finally:
        await store.close()


def test_the_head_read_from_the_files_without_alembic_is_alembics() -> None:
    assert revisions.head_revision() == head_revision()


async def test_only_a_database_at_head_is_current_without_alembic(database_url: str) -> None:
    engine = make_engine(parse_url(database_url))
    try:
        assert not await revisions.schema_is_current(engine)  # empty: Alembic has work to do
        await upgrade(database_url)
        assert await revisions.schema_is_current(engine)
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
        assert not await revisions.schema_is_current(engine)
    finally:
        await engine.dispose()
