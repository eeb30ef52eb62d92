"""A fresh PostgreSQL database for a test, created and dropped (the contract suite's backend
and the multi-replica gateway test share it).

PostgreSQL is found at $AUTHGATE_TEST_POSTGRES_URL (default below). When it is unreachable the
test is skipped, or failed when CI=true, so that CI never passes by skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import sqlalchemy as sa

from support.needs import unavailable

PG_ADMIN_URL = os.environ.get("AUTHGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
PG_START_HINT = "bash scripts/test.sh (it starts a throw-away PostgreSQL of its own)"

_unreachable: list[str] = []  # remembered so each test does not wait on the timeout again


def asyncpg_dsn(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def admin_connection() -> asyncpg.Connection:
    admin_url = sa.make_url(PG_ADMIN_URL)
    if not _unreachable:
        try:
            return await asyncpg.connect(asyncpg_dsn(admin_url), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            _unreachable.append(f"{type(exc).__name__}: {exc}")
    message = (
        f"PostgreSQL is not reachable at {admin_url.render_as_string()} "
        f"({_unreachable[0]}). Start it with: {PG_START_HINT} "
        "(or point AUTHGATE_TEST_POSTGRES_URL at a server)"
    )
    unavailable(message)


@asynccontextmanager
async def fresh_database(prefix: str = "authgate_test") -> AsyncIterator[sa.URL]:
    """The URL of a new, empty database, dropped on exit (FORCE: a test that failed half-way
    may have left connections open)."""
    admin = await admin_connection()
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield sa.make_url(PG_ADMIN_URL).set(database=name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
