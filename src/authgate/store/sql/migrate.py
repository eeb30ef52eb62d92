"""Alembic, driven from code: upgrade to head under a lock, or check the schema is current.

Several replicas may start at once on one database, so the upgrade runs under a lock that
every authgate process agrees on: a session advisory lock in PostgreSQL, an exclusive
`flock` on a file next to the database in SQLite.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from authgate.errors import StoreError
from authgate.masking import masked_urls
from authgate.store.files import private_file
from authgate.store.sql.engine import WRITE_OPTION, display_url, is_sqlite, make_engine, parse_url, sqlite_file

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")

# Alembic narrates every start at INFO ("Context impl SQLiteImpl."); only problems matter here.
logging.getLogger("alembic").setLevel(logging.WARNING)

# pg_advisory_lock key for schema migrations: "authgate" in ASCII, as a bigint.
MIGRATION_LOCK_KEY = int.from_bytes(b"authgate", "big")

_FLOCK_POLL_SECONDS = 0.05


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    # Config values are %-interpolated; a literal % in the install path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migrations found in {MIGRATIONS_DIR}: the install is broken")
    return head


def _is_known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _upgrade_to_head(conn: Connection) -> None:
    command.upgrade(alembic_config(conn), "head")


def _newer_schema_error(current: str) -> StoreError:
    return StoreError(
        f"database schema is at revision {current}, which this authgate does not know: "
        "it was migrated by a newer authgate; upgrade authgate"
    )


async def upgrade_engine(engine: AsyncEngine) -> str:
    """Upgrade to head under the migration lock; returns the head revision."""
    head = head_revision()
    async with migration_lock(engine):
        writer = engine.execution_options(**{WRITE_OPTION: True})
        async with writer.connect() as conn:
            current = await conn.run_sync(_current_revision)
        if current == head:
            return head
        if current is not None and not _is_known(current):
            raise _newer_schema_error(current)
        async with writer.begin() as conn:
            await conn.run_sync(_upgrade_to_head)
    return head


async def check_engine(engine: AsyncEngine) -> None:
    """Raise StoreError unless the schema is exactly at head (migrate=False)."""
    head = head_revision()
    async with engine.connect() as conn:
        current = await conn.run_sync(_current_revision)
    if current == head:
        return
    if current is not None and not _is_known(current):
        raise _newer_schema_error(current)
    raise StoreError(
        f"database schema is at revision {current or 'none (empty database)'}, "
        f"authgate needs {head}: run `authgate db upgrade`"
    )


@asynccontextmanager
async def migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    url = engine.url
    if not is_sqlite(url):
        async with _pg_advisory_lock(engine):
            yield
        return
    path = sqlite_file(url)
    if path is None:  # in-memory: one process, nobody to race
        yield
        return
    async with _file_lock(path.with_name(path.name + ".migrate.lock")):
        yield


@asynccontextmanager
async def _pg_advisory_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    # A dedicated autocommit connection: the session lock must outlive the upgrade's
    # transaction, which runs on another connection.
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.select(sa.func.pg_advisory_lock(MIGRATION_LOCK_KEY)))
        try:
            yield
        finally:
            try:
                await conn.execute(sa.select(sa.func.pg_advisory_unlock(MIGRATION_LOCK_KEY)))
            except BaseException:
                # Never return a connection that may still hold the lock to the pool.
                await conn.invalidate()
                raise


@asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    # flock, not lockf: flock locks belong to the open file, so two stores in one process
    # exclude each other too. Polling keeps the event loop free and cancellation clean.
    private_file(path)
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(_FLOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


async def upgrade(database_url: str) -> str:
    """Bring the database at `database_url` to head (`authgate db upgrade`); returns head."""
    engine = make_engine(parse_url(database_url))
    try:
        return await upgrade_engine(engine)
    except (sa.exc.SQLAlchemyError, OSError) as exc:  # OSError: nobody listens there
        where = display_url(engine.url)
        raise StoreError(f"database migration failed at {where}: {masked_urls(str(exc))}") from exc
    finally:
        await engine.dispose()
