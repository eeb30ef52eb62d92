"""`SqlDatabase`: one SQL database (SQLite or PostgreSQL), opened and migrated, and the one
way to run a transaction on it. Database failures leave it as `StoreError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authgate.errors import StoreError
from authgate.store.sql.engine import (
    WRITE_OPTION,
    display_url,
    is_sqlite,
    make_engine,
    parse_url,
    sqlite_file,
)
from authgate.store.sql.migrate import check_engine, upgrade_engine


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

    @property
    def dialect(self) -> str:
        """The backend: "sqlite" or "postgresql"."""
        return self._url.get_backend_name()

    def upsert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT of this backend's dialect, which offers `on_conflict_do_nothing` and
        `on_conflict_do_update` (both backends spell ON CONFLICT the same way)."""
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    async def open(self) -> None:
        if self._engine is not None:
            return
        engine = make_engine(self._url)
        try:
            if self._migrate:
                await upgrade_engine(engine)
            else:
                await check_engine(engine)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StoreError(f"cannot open the database at {display_url(self._url)}: {exc}") from exc
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

    async def close(self) -> None:
        engine, self._engine, self._writer = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    @contextlib.asynccontextmanager
    async def _tx(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed on exit; database failures become StoreError."""
        engine = self._writer if write else self._engine
        if engine is None:
            raise StoreError("the store is not open: call `await store.open()` first")
        try:
            async with self._serial or contextlib.nullcontext():
                async with engine.begin() as conn:
                    yield conn
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"database error: {exc.orig or exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot reach the database: {exc}") from exc

    async def _one(self, query: sa.Select[Any]) -> sa.RowMapping | None:
        async with self._tx(write=False) as conn:
            row: sa.RowMapping | None = (await conn.execute(query)).mappings().first()
        return row

    async def _all(self, query: sa.Select[Any]) -> list[sa.RowMapping]:
        async with self._tx(write=False) as conn:
            return list((await conn.execute(query)).mappings().all())

    async def _count(self, table: sa.Table) -> int:
        async with self._tx(write=False) as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
