"""`SqlStore`: every store Protocol on one SQL database, SQLite or PostgreSQL.

Each state-changing method is one transaction that has committed when it returns. Races
between replicas are settled by the database, never by a read-then-write in Python:
conditional UPDATEs whose row count says who won (codes, refresh rotation, revocation), and
a lock before the client-count cap (PostgreSQL advisory lock; SQLite `BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authgate.errors import StoreError
from authgate.store.models import (
    AuthorizationCode,
    Client,
    CodeRedemption,
    Consent,
    KeyState,
    RefreshFamily,
    RefreshToken,
    SigningKey,
    User,
)
from authgate.store.sql import rows
from authgate.store.sql import tables as t
from authgate.store.sql.engine import (
    WRITE_OPTION,
    display_url,
    is_sqlite,
    make_engine,
    parse_url,
    sqlite_file,
)
from authgate.store.sql.migrate import check_engine, upgrade, upgrade_engine

__all__ = ["SqlStore", "upgrade"]

CODES = t.authorization_codes
FAMILIES = t.refresh_families
TOKENS = t.refresh_tokens
KEYS = t.signing_keys
CLIENTS = t.clients
USERS = t.users
CONSENTS = t.consents

# pg_advisory_xact_lock key serialising capped client registration ("authgclt").
CLIENT_CAP_LOCK_KEY = int.from_bytes(b"authgclt", "big")

# CIMD clients (client_id is the metadata document's URL) are fetched, not stored.
_CIMD_PREFIXES = ("https://", "http://")


class SqlStore:
    """The `authgate.store.protocols.Store` for `sqlite+aiosqlite://` and
    `postgresql+asyncpg://` URLs (plain `sqlite://` / `postgresql://` are accepted too)."""

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
            raise StoreError(
                f"cannot open the database at {display_url(self._url)}: {exc}"
            ) from exc
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

    # -- clients ----------------------------------------------------------------------------

    async def add_client(self, client: Client, *, max_clients: int | None = None,
                         unverified_pool: int | None = None) -> bool:
        async with self._tx() as conn:
            if (max_clients is not None or unverified_pool is not None) and self.dialect == "postgresql":
                # Count-then-insert must not interleave between replicas; SQLite's
                # BEGIN IMMEDIATE already serialises writers.
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CLIENT_CAP_LOCK_KEY)))
            if max_clients is not None:
                counted = sa.select(sa.func.count()).select_from(CLIENTS)
                if unverified_pool is not None:  # the pool is bounded on its own
                    counted = counted.where(~_unverified())
                if (await conn.scalar(counted) or 0) >= max_clients:
                    return False
            if unverified_pool is not None:
                await conn.execute(_evict_unverified(keep=max(0, unverified_pool - 1)))
            try:
                await conn.execute(sa.insert(CLIENTS).values(rows.client_values(client)))
            except sa.exc.IntegrityError:
                raise StoreError(f"client {client.client_id!r} already exists") from None
        return True

    async def get_client(self, client_id: str) -> Client | None:
        row = await self._one(sa.select(CLIENTS).where(CLIENTS.c.client_id == client_id))
        return rows.to_client(row) if row is not None else None

    async def touch_client(self, client_id: str, now: float) -> None:
        async with self._tx() as conn:
            await conn.execute(
                sa.update(CLIENTS)
                .where(CLIENTS.c.client_id == client_id)
                .values(last_used_at=now)
            )

    async def delete_client(self, client_id: str) -> bool:
        async with self._tx() as conn:
            # Revoked rather than deleted: a replayed token must still find its family.
            # The protocol passes no `now` here, so the wall clock dates the revocation.
            condition = FAMILIES.c.client_id == client_id
            await conn.execute(_revoke(condition, "client deleted", time.time()))
            result = await conn.execute(
                sa.delete(CLIENTS).where(CLIENTS.c.client_id == client_id)
            )
            return result.rowcount == 1

    async def count_clients(self) -> int:
        return await self._count(CLIENTS)

    async def list_clients(self) -> list[Client]:
        found = await self._all(sa.select(CLIENTS).order_by(CLIENTS.c.created_at, CLIENTS.c.client_id))
        return [rows.to_client(row) for row in found]

    async def prune_clients(self, unused_since: float, now: float) -> int:
        live_grant = (
            sa.select(sa.literal(1))
            .select_from(FAMILIES.join(TOKENS, TOKENS.c.family_id == FAMILIES.c.family_id))
            .where(
                FAMILIES.c.client_id == CLIENTS.c.client_id,
                FAMILIES.c.revoked_at.is_(None),
                TOKENS.c.expires_at > now,
            )
        )
        async with self._tx() as conn:
            result = await conn.execute(
                sa.delete(CLIENTS).where(
                    CLIENTS.c.source == "dcr",
                    CLIENTS.c.last_used_at < unused_since,
                    ~live_grant.exists(),
                )
            )
            return result.rowcount

    async def prune_unverified_clients(self, unused_since: float) -> int:
        async with self._tx() as conn:
            result = await conn.execute(
                sa.delete(CLIENTS).where(_unverified(), CLIENTS.c.last_used_at < unused_since))
            return result.rowcount

    # -- users ------------------------------------------------------------------------------

    async def add_user(self, user: User) -> None:
        async with self._tx() as conn:
            try:
                await conn.execute(sa.insert(USERS).values(rows.user_values(user)))
            except sa.exc.IntegrityError:
                raise StoreError(f"user {user.username!r} already exists") from None

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one(sa.select(USERS).where(USERS.c.user_id == user_id))
        return rows.to_user(row) if row is not None else None

    async def get_user_by_name(self, username: str) -> User | None:
        row = await self._one(sa.select(USERS).where(USERS.c.username == username))
        return rows.to_user(row) if row is not None else None

    async def list_users(self) -> list[User]:
        query = sa.select(USERS).order_by(USERS.c.username)
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
            await conn.execute(_revoke(FAMILIES.c.user_id == user_id, "password changed", now))
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
            await conn.execute(_revoke(FAMILIES.c.user_id == user_id, "user removed", now))
            await conn.execute(sa.delete(CONSENTS).where(CONSENTS.c.user_id == user_id))
            result = await conn.execute(sa.delete(USERS).where(USERS.c.user_id == user_id))
            return result.rowcount == 1

    # -- authorization codes ----------------------------------------------------------------

    async def save_code(self, code: AuthorizationCode) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.insert(CODES).values(rows.code_values(code)))

    async def consume_code(self, code_hash: str, now: float) -> CodeRedemption:
        # RFC 6749 §4.1.2: single use. The conditional UPDATE is the arbiter: in PostgreSQL
        # the loser waits on the row lock and then matches nothing; SQLite has one writer.
        async with self._tx() as conn:
            won = await conn.execute(
                sa.update(CODES)
                .where(CODES.c.code_hash == code_hash, CODES.c.consumed_at.is_(None))
                .values(consumed_at=now)
            )
            row = (
                await conn.execute(sa.select(CODES).where(CODES.c.code_hash == code_hash))
            ).mappings().first()
        if row is None:
            return CodeRedemption(code=None)
        code = rows.to_code(row)
        if won.rowcount == 1:
            return CodeRedemption(code=code)
        return CodeRedemption(code=None, replayed=code)

    # -- refresh tokens ---------------------------------------------------------------------

    async def create_family(self, family: RefreshFamily, first: RefreshToken) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.insert(FAMILIES).values(rows.family_values(family)))
            await conn.execute(sa.insert(TOKENS).values(rows.token_values(first)))

    async def get_family(self, family_id: str) -> RefreshFamily | None:
        row = await self._one(sa.select(FAMILIES).where(FAMILIES.c.family_id == family_id))
        return rows.to_family(row) if row is not None else None

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._one(sa.select(TOKENS).where(TOKENS.c.token_hash == token_hash))
        return rows.to_token(row) if row is not None else None

    async def rotate_refresh_token(
        self, old_hash: str, new: RefreshToken, successor: bytes, now: float
    ) -> bool:
        async with self._tx() as conn:
            won = await conn.execute(
                sa.update(TOKENS)
                .where(TOKENS.c.token_hash == old_hash, TOKENS.c.rotated_at.is_(None))
                .values(rotated_at=now, successor=successor)
            )
            if won.rowcount != 1:
                # Nothing was written; leaving the block commits an empty transaction.
                return False
            await conn.execute(sa.insert(TOKENS).values(rows.token_values(new)))
        return True

    async def revoke_family(self, family_id: str, reason: str, now: float) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(_revoke(FAMILIES.c.family_id == family_id, reason, now))
            return result.rowcount == 1

    async def revoke_families(self, *, client_id: str | None = None, user_id: str | None = None,
                              reason: str, now: float) -> int:
        conditions = []
        if client_id is not None:
            conditions.append(FAMILIES.c.client_id == client_id)
        if user_id is not None:
            conditions.append(FAMILIES.c.user_id == user_id)
        if not conditions:
            # Refuse rather than revoke every grant on the server by omission.
            raise ValueError("revoke_families needs client_id or user_id")
        async with self._tx() as conn:
            result = await conn.execute(_revoke(sa.and_(*conditions), reason, now))
            return result.rowcount

    async def family_is_live(self, family_id: str) -> bool:
        client_exists = sa.exists().where(CLIENTS.c.client_id == FAMILIES.c.client_id)
        is_cimd = sa.or_(*(FAMILIES.c.client_id.startswith(p) for p in _CIMD_PREFIXES))
        query = (
            sa.select(sa.literal(1))
            .select_from(FAMILIES.join(USERS, USERS.c.user_id == FAMILIES.c.user_id))
            .where(
                FAMILIES.c.family_id == family_id,
                FAMILIES.c.revoked_at.is_(None),
                sa.or_(client_exists, is_cimd),
            )
        )
        return await self._one(query) is not None

    async def purge_expired(self, before: float) -> int:
        # Rotated tokens stay until they expire: presenting one is how reuse is detected
        # (OAuth 2.1 §4.3.1), and that needs the row. A family goes with its last token and
        # code, created before `before` so that a family just made is never caught between
        # its insert and its first token.
        has_token = sa.exists().where(TOKENS.c.family_id == FAMILIES.c.family_id)
        has_code = sa.exists().where(CODES.c.family_id == FAMILIES.c.family_id)
        async with self._tx() as conn:
            codes = await conn.execute(sa.delete(CODES).where(CODES.c.expires_at < before))
            tokens = await conn.execute(sa.delete(TOKENS).where(TOKENS.c.expires_at < before))
            families = await conn.execute(sa.delete(FAMILIES).where(
                FAMILIES.c.created_at < before, ~has_token, ~has_code))
        return int(codes.rowcount + tokens.rowcount + families.rowcount)

    # -- consents ---------------------------------------------------------------------------

    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        row = await self._one(
            sa.select(CONSENTS).where(
                CONSENTS.c.user_id == user_id, CONSENTS.c.client_id == client_id
            )
        )
        return rows.to_consent(row) if row is not None else None

    async def save_consent(self, consent: Consent) -> None:
        # Two first consents may race to INSERT in PostgreSQL; the loser retries as an update.
        for attempt in range(3):
            try:
                await self._merge_consent(consent)
                return
            except StoreError as exc:
                if not isinstance(exc.__cause__, sa.exc.IntegrityError) or attempt == 2:
                    raise

    async def _merge_consent(self, consent: Consent) -> None:
        key = (CONSENTS.c.user_id == consent.user_id, CONSENTS.c.client_id == consent.client_id)
        async with self._tx() as conn:
            old = (
                await conn.execute(sa.select(CONSENTS).where(*key).with_for_update())
            ).mappings().first()
            scopes = set(consent.scopes) | set(old["scopes"] if old else ())
            resources = set(consent.resources) | set(old["resources"] if old else ())
            values = {
                "scopes": sorted(scopes),
                "resources": sorted(resources),
                "granted_at": consent.granted_at,
            }
            if old is None:
                await conn.execute(
                    sa.insert(CONSENTS).values(
                        user_id=consent.user_id, client_id=consent.client_id, **values
                    )
                )
            else:
                await conn.execute(sa.update(CONSENTS).where(*key).values(**values))

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

    async def set_key_state(self, kid: str, state: KeyState, now: float) -> None:
        values: dict[str, Any] = {"state": state}
        if state == "active":
            values["activated_at"] = now
        elif state == "retired":
            values["retired_at"] = now
        async with self._tx() as conn:
            await conn.execute(sa.update(KEYS).where(KEYS.c.kid == kid).values(**values))

    async def delete_key(self, kid: str) -> None:
        async with self._tx() as conn:
            await conn.execute(sa.delete(KEYS).where(KEYS.c.kid == kid))


def _unverified() -> sa.ColumnElement[bool]:
    """A client that registered itself and no user has consented to (yet). Derived from the
    consents, so the consent that verifies a client needs no write of its own. NOT IN, not a
    correlated NOT EXISTS: consents has no index on client_id alone, and both backends run an
    uncorrelated subquery once (a hashed or ephemeral set; client_id is never NULL there)."""
    return sa.and_(CLIENTS.c.source == "dcr", CLIENTS.c.client_id.not_in(sa.select(CONSENTS.c.client_id)))


def _evict_unverified(keep: int) -> sa.Delete:
    """Delete the unverified clients older than the newest `keep` of them (they hold no grant:
    a grant needs a consent)."""
    newest_first = CLIENTS.c.created_at.desc(), CLIENTS.c.client_id.desc()
    older = sa.select(CLIENTS.c.client_id).where(_unverified()).order_by(*newest_first).offset(keep)
    return sa.delete(CLIENTS).where(CLIENTS.c.client_id.in_(older.correlate(None)))


def _revoke(condition: sa.ColumnElement[bool], reason: str, now: float) -> sa.Update:
    """Revoke the matching families that are still live (revocation is never overwritten)."""
    return (
        sa.update(FAMILIES)
        .where(condition, FAMILIES.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
