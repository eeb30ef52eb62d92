"""`upgrade_apart`: a database's schema brought to head by a child process, for `authgate
serve`. Alembic (with Mako and Pygments) and SQLAlchemy's asyncio layer with the ORM it
imports are ~20 MB of a process that imports them, and a server would keep them for its
whole life after one upgrade (docs/benchmarks.md §4); the child exits and takes them along.

The child runs `migrate.upgrade` (the code of `authgate db upgrade`, under the same lock, so
replicas starting at once still migrate once); the URL reaches it on stdin, never in its
argv (a PostgreSQL URL may carry a password). Its failure is the parent's `StoreError`, with
the child's own one-line message.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from authgate.errors import StoreError
from authgate.masking import masked_urls
from authgate.store.sql.engine import parse_url, sqlite_file
from authgate.store.sql.revisions import sqlite_at_head

__all__ = ["upgrade_apart", "upgrade_sqlite_apart"]


def upgrade_sqlite_apart(database_url: str) -> bool:
    """An SQLite file whose schema is not at head (or not there yet) brought to head by a
    child process; True if one ran. In memory: False (that database lives in this process
    only). PostgreSQL: False too, the server upgrades it in place (telling whether it is at
    head takes the asyncio engine the server makes anyway; Alembic then stays in)."""
    url = parse_url(database_url)
    if sqlite_file(url) is None or sqlite_at_head(url):
        return False
    upgrade_apart(database_url)
    return True


def upgrade_apart(database_url: str) -> None:
    """Bring `database_url` to head in a child process (a file or server database; an
    in-memory SQLite database exists only in its own process, so it is never given here)."""
    done = subprocess.run(
        [sys.executable, "-m", "authgate.store.sql.upgrade_child"],
        input=database_url,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()  # its own line, else a crash's last line
        said = [line.removeprefix("authgate: ") for line in lines if line.startswith("authgate: ")]
        reason = (said or lines or [f"the schema upgrade exited with status {done.returncode}"])[-1]
        raise StoreError(masked_urls(reason))


def _child() -> int:
    from authgate.store.sql.migrate import upgrade

    try:
        asyncio.run(upgrade(sys.stdin.read().strip()))
    except StoreError as exc:
        print(f"authgate: {masked_urls(str(exc))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_child())
