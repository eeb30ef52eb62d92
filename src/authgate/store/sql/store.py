"""`SqlStore`: every store Protocol of the core on one SQL database, SQLite or PostgreSQL.

Each state-changing method is one transaction that has committed when it returns. Races
between replicas are settled by the database, never by a read-then-write in Python:
conditional UPDATEs whose row count says who won (codes, refresh rotation, revocation: in
`grants.py`), and a lock before the client-count cap (PostgreSQL advisory lock; SQLite
`BEGIN IMMEDIATE`). The connection and transaction rules are `SqlDatabase`'s (`database.py`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from authgate.errors import StoreError
from authgate.store.models import Client, ClientSource, KeyState, SigningKey, User
from authgate.store.sql import rows
from authgate.store.sql import tables as t
from authgate.store.sql.database import idempotent
from authgate.store.sql.grants import SqlGrants, revoke_where
from authgate.store.sql.one_statement import CODES, CONSENTS, FAMILIES, TOKENS
from authgate.store.sql.sqlite_prepared import prepared

__all__ = ["SqlStore"]

KEYS = t.signing_keys
CLIENTS = t.clients
JTIS = t.used_jtis
# what an RFC 7592 update replaces (the id, its dates, source and pool membership stay)
_REPLACED = ("metadata", "client_secret_hash", "client_secret_expires_at", "registration_token_hash")
USERS = t.users

# pg_advisory_xact_lock key serialising capped client registration ("authgclt").
CLIENT_CAP_LOCK_KEY = int.from_bytes(b"authgclt", "big")


class SqlStore(SqlGrants):
    """The `authgate.store.protocols.Store` for `sqlite+aiosqlite://` and
    `postgresql+asyncpg://` URLs (plain `sqlite://` / `postgresql://` are accepted too)."""

    # -- clients ----------------------------------------------------------------------------

    async def add_client(
        self, client: Client, *, max_clients: int | None = None, unverified_pool: int | None = None
    ) -> bool:
        async with self._tx(prepared=True) as conn:
            if (max_clients is not None or unverified_pool is not None) and self.dialect == "postgresql":
                # Count-then-insert must not interleave between replicas; SQLite's
                # BEGIN IMMEDIATE already serialises writers.
                await conn.execute(_CLIENT_CAP_LOCK)
            if max_clients is not None or unverified_pool is not None:
                # all of them and the pool in one statement of two counts, each reading an index
                # only (SQLite counts a table without reading its rows)
                counts: Any = (await conn.execute(_COUNTS)).first()
                total, pool = (int(counts[0] or 0), int(counts[1] or 0)) if counts is not None else (0, 0)
                # all of them less the pool (bounded on its own)
                if max_clients is not None and total - (pool if unverified_pool is not None else 0) >= max_clients:
                    return False
                if unverified_pool is not None and pool >= unverified_pool:  # below it, nothing to evict
                    await conn.execute(_EVICT_FROM_POOL, {"keep": max(0, unverified_pool - 1)})
            try:
                await conn.execute(_INSERT_CLIENT, rows.client_values(client))
            except sa.exc.IntegrityError:
                raise StoreError(f"client {client.client_id!r} already exists") from None
        return True

    async def get_client(self, client_id: str) -> Client | None:
        row = await self._one(_GET_CLIENT, {"client_id": client_id})
        return rows.to_client(row) if row is not None else None

    @idempotent
    async def touch_client(self, client_id: str, now: float) -> None:
        async with self._tx(prepared=True) as conn:
            await conn.execute(_TOUCH_CLIENT, {"b_client_id": client_id, "last_used_at": now})

    async def delete_client(self, client_id: str) -> bool:
        async with self._tx() as conn:
            # Revoked rather than deleted: a replayed token must still find its family.
            # The protocol passes no `now` here, so the wall clock dates the revocation.
            condition = FAMILIES.c.client_id == client_id
            await conn.execute(revoke_where(condition, "client deleted", time.time()))
            result = await conn.execute(sa.delete(CLIENTS).where(CLIENTS.c.client_id == client_id))
            return result.rowcount == 1

    async def replace_client(self, client: Client, *, expected_token_hash: str) -> bool:
        # RFC 7592: the registration access token is checked and rotated in one conditional
        # UPDATE, so of two requests presenting one token only the first changes anything
        values = rows.client_values(client)
        kept = {k: values[k] for k in _REPLACED}
        matches = sa.and_(
            CLIENTS.c.client_id == client.client_id, CLIENTS.c.registration_token_hash == expected_token_hash
        )
        async with self._tx() as conn:
            result = await conn.execute(sa.update(CLIENTS).where(matches).values(kept))
            return result.rowcount == 1

    async def use_jti(self, kind: str, jti_hash: str, expires_at: float, now: float) -> bool:
        # RFC 7523 §3: first use wins on every replica (the primary key decides); a row already
        # past its expiry is a purge not yet run and does not count
        async with self._tx() as conn:
            stale = sa.and_(JTIS.c.kind == kind, JTIS.c.jti_hash == jti_hash, JTIS.c.expires_at < now)
            await conn.execute(sa.delete(JTIS).where(stale))
            insert = self.upsert(JTIS).on_conflict_do_nothing(index_elements=["kind", "jti_hash"])
            result = await conn.execute(insert.values(kind=kind, jti_hash=jti_hash, expires_at=expires_at))
            return result.rowcount == 1

    async def purge_used_jtis(self, before: float) -> int:
        async with self._tx() as conn:
            result = await conn.execute(sa.delete(JTIS).where(JTIS.c.expires_at < before))
            return int(result.rowcount)

    async def count_clients(self, *, source: ClientSource | None = None) -> int:
        if source is None:
            return await self._count(CLIENTS)
        # along ix_clients_pool, which starts with `source`
        counted = sa.select(sa.func.count().label("n")).select_from(CLIENTS).where(CLIENTS.c.source == source)
        row = await self._one(counted)
        return int(row["n"]) if row is not None else 0

    async def list_clients(
        self, *, limit: int | None = None, offset: int = 0, source: ClientSource | None = None
    ) -> list[Client]:
        # newest first along ix_clients_created: a page reads its rows and the `offset` index
        # entries before them, never the whole table
        query = _page(sa.select(CLIENTS), (CLIENTS.c.created_at, CLIENTS.c.client_id), limit, offset)
        if source is not None:
            query = query.where(CLIENTS.c.source == source)
        return [rows.to_client(row) for row in await self._all(query)]

    async def prune_clients(self, unused_since: float, now: float) -> int:
        async with self._tx() as conn:
            result = await conn.execute(sa.delete(CLIENTS).where(_idle_without_grant(unused_since, now)))
            return result.rowcount

    async def prune_unverified_clients(self, unused_since: float) -> int:
        async with self._tx() as conn:
            result = await conn.execute(sa.delete(CLIENTS).where(_unverified_idle(unused_since)))
            return result.rowcount

    async def prunable_clients(self, *, unverified_since: float, unused_since: float, now: float) -> list[Client]:
        # the very conditions of the two deletes above, so a dry run lists what a prune removes
        either = sa.or_(_unverified_idle(unverified_since), _idle_without_grant(unused_since, now))
        found = await self._all(sa.select(CLIENTS).where(either).order_by(CLIENTS.c.created_at, CLIENTS.c.client_id))
        return [rows.to_client(row) for row in found]

    # -- users ------------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        async with self._tx() as conn:
            try:
                await conn.execute(sa.insert(USERS).values(rows.user_values(user)))
            except sa.exc.IntegrityError:
                raise StoreError(f"user {user.username!r} already exists") from None

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one(_GET_USER, {"user_id": user_id})
        return rows.to_user(row) if row is not None else None

    async def get_user_by_name(self, username: str) -> User | None:
        row = await self._one(sa.select(USERS).where(USERS.c.username == username))
        return rows.to_user(row) if row is not None else None

    async def list_users(self, *, limit: int | None = None, offset: int = 0) -> list[User]:
        query = _page(sa.select(USERS), (USERS.c.created_at, USERS.c.user_id), limit, offset)
        return [rows.to_user(r) for r in await self._all(query)]

    async def count_users(self) -> int:
        return await self._count(USERS)

    async def set_password(self, user_id: str, password_hash: str, now: float) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                sa.update(USERS)
                .where(USERS.c.user_id == user_id)
                .values(password_hash=password_hash, session_version=USERS.c.session_version + 1)
            )
            if result.rowcount != 1:
                return False
            await conn.execute(revoke_where(FAMILIES.c.user_id == user_id, "password changed", now))
            await conn.execute(sa.delete(CODES).where(CODES.c.user_id == user_id, CODES.c.consumed_at.is_(None)))
            return True

    async def set_roles(self, user_id: str, roles: Sequence[str]) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                sa.update(USERS).where(USERS.c.user_id == user_id).values(roles=list(dict.fromkeys(roles)))
            )
            return result.rowcount == 1

    async def remove_user(self, user_id: str, now: float) -> bool:
        async with self._tx() as conn:
            await conn.execute(revoke_where(FAMILIES.c.user_id == user_id, "user removed", now))
            consented = sa.select(CONSENTS.c.client_id).where(CONSENTS.c.user_id == user_id)
            left = list((await conn.execute(consented)).scalars())
            await conn.execute(sa.delete(CONSENTS).where(CONSENTS.c.user_id == user_id))
            if left:  # a client no consent names any more is back in the unverified pool
                still = sa.exists().where(CONSENTS.c.client_id == CLIENTS.c.client_id)
                await conn.execute(
                    sa.update(CLIENTS).where(CLIENTS.c.client_id.in_(left), ~still).values(consented=False)
                )
            # their connections to providers (sealed tokens) and open connect links go with them
            await conn.execute(sa.delete(t.connections).where(t.connections.c.user_id == user_id))
            await conn.execute(sa.delete(t.connect_requests).where(t.connect_requests.c.user_id == user_id))
            result = await conn.execute(sa.delete(USERS).where(USERS.c.user_id == user_id))
            return result.rowcount == 1

    # -- signing keys -----------------------------------------------------------------------

    async def list_keys(self) -> list[SigningKey]:
        query = sa.select(KEYS).order_by(KEYS.c.created_at, KEYS.c.kid)
        return [rows.to_key(r) for r in await self._all(query)]

    async def add_key(self, key: SigningKey) -> None:
        async with self._tx() as conn:
            try:
                await conn.execute(sa.insert(KEYS).values(rows.key_values(key)))
            except sa.exc.IntegrityError:
                raise StoreError(f"signing key {key.kid!r} already exists") from None

    @idempotent
    async def set_key_state(self, kid: str, state: KeyState, now: float) -> None:
        values: dict[str, Any] = {"state": state}
        if state == "active":
            values["activated_at"] = now
        elif state == "retired":
            values["retired_at"] = now
        async with self._tx() as conn:
            await conn.execute(sa.update(KEYS).where(KEYS.c.kid == kid).values(**values))

    @idempotent
    async def delete_key(self, kid: str) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.delete(KEYS).where(KEYS.c.kid == kid))


def _page(
    query: sa.Select[Any], order: tuple[sa.ColumnElement[Any], ...], limit: int | None, offset: int
) -> sa.Select[Any]:
    """`query` newest first by `order` (its time, then its id: a stable order), one page of it."""
    query = query.order_by(*(column.desc() for column in order)).offset(max(0, offset) or None)
    return query if limit is None else query.limit(max(0, limit))


def _unverified() -> sa.ColumnElement[bool]:
    """A client that registered itself and no user has consented to (yet): the pool, which
    `ix_clients_pool` lists by age. `consented` is kept with the consents (`save_consent` sets
    it in the consent's own transaction, `remove_user` clears it for the clients it leaves
    without one)."""
    return sa.and_(CLIENTS.c.source == "dcr", CLIENTS.c.consented == sa.false())


def _unverified_idle(unused_since: float) -> sa.ColumnElement[bool]:
    return sa.and_(_unverified(), CLIENTS.c.last_used_at < unused_since)


def _idle_without_grant(unused_since: float, now: float) -> sa.ColumnElement[bool]:
    """A DCR client last used before `unused_since` holding no refresh family that can still
    refresh (not revoked, a token not expired)."""
    live_grant = (
        sa.select(sa.literal(1))
        .select_from(FAMILIES.join(TOKENS, TOKENS.c.family_id == FAMILIES.c.family_id))
        .where(
            FAMILIES.c.client_id == CLIENTS.c.client_id,
            FAMILIES.c.revoked_at.is_(None),
            TOKENS.c.expires_at > now,
        )
    )
    return sa.and_(CLIENTS.c.source == "dcr", CLIENTS.c.last_used_at < unused_since, ~live_grant.exists())


# The statements of the OAuth flow, built once: building one and its cache key costs SQLAlchemy
# more than running it (~45 µs a statement, measured: docs/benchmarks.md, "OAuth flows").
_CLIENT_CAP_LOCK = prepared(sa.select(sa.func.pg_advisory_xact_lock(CLIENT_CAP_LOCK_KEY)))  # PostgreSQL only
_GET_CLIENT = prepared(sa.select(CLIENTS).where(CLIENTS.c.client_id == sa.bindparam("client_id")))
_GET_USER = prepared(sa.select(USERS).where(USERS.c.user_id == sa.bindparam("user_id")))
_INSERT_CLIENT = prepared(sa.insert(CLIENTS))
_TOUCH_CLIENT = prepared(sa.update(CLIENTS).where(CLIENTS.c.client_id == sa.bindparam("b_client_id")))
_COUNT_CLIENTS = prepared(sa.select(sa.func.count()).select_from(CLIENTS))
_COUNT_POOL = prepared(sa.select(sa.func.count()).select_from(CLIENTS).where(_unverified()))
_COUNTS = prepared(sa.select(_COUNT_CLIENTS.scalar_subquery(), _COUNT_POOL.scalar_subquery()))  # one round trip
# the unverified clients older than the newest `keep` of them (they hold no grant: a grant
# needs a consent)
_EVICT_FROM_POOL = prepared(
    sa.delete(CLIENTS).where(
        CLIENTS.c.client_id.in_(
            sa.select(CLIENTS.c.client_id)
            .where(_unverified())
            .order_by(CLIENTS.c.created_at.desc(), CLIENTS.c.client_id.desc())
            .offset(sa.bindparam("keep", type_=sa.Integer))
            .correlate(None)
        )
    )
)
