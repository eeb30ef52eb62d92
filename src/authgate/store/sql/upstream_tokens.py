"""`SqlUpstreamTokenStore`: the `UpstreamTokenStore` Protocol on the SQL store's database.

A companion of `SqlStore` (like `SqlAuditStore`): same engine, same transaction rules. Saving
a record also creates or updates the local user of that upstream identity, so codes, refresh
families and consents keep working unchanged (and survive a restart). A proxy-mode user has no
password: its hash is "!", which no argon2 check accepts.
"""

from __future__ import annotations

from dataclasses import asdict

import sqlalchemy as sa

from authgate.store.models import UpstreamTokens
from authgate.store.sql import tables as t
from authgate.store.sql.database import Connection, idempotent
from authgate.store.sql.store import SqlStore

UPSTREAM, USERS = t.upstream_tokens, t.users
NO_PASSWORD = "!"

__all__ = ["SqlUpstreamTokenStore"]


class SqlUpstreamTokenStore:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def save_upstream(self, record: UpstreamTokens) -> None:
        values = asdict(record)
        async with self._store._tx() as conn:  # same package: the store's transaction rules
            await _upsert_user(conn, record.user_id, record.username, record.updated_at)
            updated = await conn.execute(
                sa.update(UPSTREAM).where(UPSTREAM.c.user_id == record.user_id).values(**values)
            )
            if updated.rowcount == 0:
                await conn.execute(sa.insert(UPSTREAM).values(**values))

    async def swap_upstream(self, record: UpstreamTokens, expected: bytes) -> bool:
        async with self._store._tx() as conn:
            swapped = await conn.execute(
                sa.update(UPSTREAM)
                .where(UPSTREAM.c.user_id == record.user_id, UPSTREAM.c.sealed_tokens == expected)
                .values(sealed_tokens=record.sealed_tokens, updated_at=record.updated_at)
            )
        return bool(swapped.rowcount == 1)

    @idempotent
    async def get_upstream(self, user_id: str) -> UpstreamTokens | None:
        async with self._store._tx(write=False) as conn:
            row = (await conn.execute(sa.select(UPSTREAM).where(UPSTREAM.c.user_id == user_id))).mappings().first()
        return UpstreamTokens(**dict(row)) if row is not None else None


async def _upsert_user(conn: Connection, user_id: str, wanted: str, now: float) -> None:
    """The local user `user_id`, named `wanted` unless another user holds that name (a local
    account, or another IdP's user): then it is named by its subject, which is unique."""
    taken = (await conn.execute(sa.select(USERS.c.user_id).where(USERS.c.username == wanted))).scalar()
    username = wanted if taken in (None, user_id) else user_id
    current = (await conn.execute(sa.select(USERS.c.username).where(USERS.c.user_id == user_id))).scalar()
    if current is None:
        await conn.execute(
            sa.insert(USERS).values(user_id=user_id, username=username, password_hash=NO_PASSWORD, created_at=now)
        )
    elif current != username:
        await conn.execute(sa.update(USERS).where(USERS.c.user_id == user_id).values(username=username))
