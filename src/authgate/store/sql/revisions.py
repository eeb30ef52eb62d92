"""Is the database's schema current? Answered without Alembic, so that a start on a current
schema (every start but the first after an upgrade) never imports it (Alembic with Mako and
Pygments: ~10 MB and ~80 ms; docs/benchmarks.md).

The head revision is read from the migration files themselves (`revision = "…"` and
`down_revision = "…"`, the form `alembic revision` writes), the current one from Alembic's
own table (`alembic_version`). When they differ — an empty database, a schema to upgrade, or
one a newer authgate migrated — `migrate.py` (Alembic) takes over and decides.
tests/contract/test_migrations_contract.py checks that this head is Alembic's.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from authgate.store.sql.engine import sqlite_file

if TYPE_CHECKING:  # the asyncio layer (and the ORM it imports) is loaded by whoever makes an engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["current_revision", "head_revision", "revision_of", "schema_is_current", "sqlite_at_head"]

VERSIONS_DIR = Path(__file__).resolve().with_name("migrations") / "versions"

_ASSIGNED = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(?:\"([^\"]*)\"|'([^']*)'|None)", re.MULTILINE)


@functools.cache
def head_revision() -> str | None:
    """The revision no other migration file names as its `down_revision`; None when the files
    do not show exactly one (then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS_DIR.glob("*.py"):
        found = {m.group(1): m.group(2) or m.group(3) for m in _ASSIGNED.finditer(path.read_text(encoding="utf-8"))}
        if found.get("revision"):
            revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def revision_of(conn: sa.Connection) -> str | None:
    """What `alembic_version` holds, read on a synchronous connection; None for a database
    without one (empty)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


async def current_revision(engine: AsyncEngine) -> str | None:
    """What `alembic_version` holds; None for a database without one (empty)."""
    async with engine.connect() as conn:
        return await conn.run_sync(revision_of)


async def schema_is_current(engine: AsyncEngine) -> bool:
    head = head_revision()
    return head is not None and await current_revision(engine) == head


def sqlite_at_head(url: URL) -> bool:
    """Whether `url` names an SQLite file that exists with its schema at head, read with the
    sqlite3 module (no asyncio layer, no Alembic: one row, once at start); False when it is
    not, or when the read fails (then the asyncio engine's path migrates or names the problem)."""
    path = sqlite_file(url)
    if path is None or not path.is_file() or head_revision() is None:
        return False
    probe = sa.create_engine(url.set(drivername="sqlite+pysqlite"), poolclass=NullPool)
    try:
        with probe.connect() as conn:
            return revision_of(conn) == head_revision()
    except (sa.exc.SQLAlchemyError, OSError):
        return False
    finally:
        probe.dispose()
