"""`SqlConnectionStore`: the `ConnectionStore` Protocol (authgate.connections) on the SQL
store's database: per-user connections, authgate's registrations at remote ASes, connect links.

A companion of `SqlStore` (like `SqlUpstreamTokenStore`): same engine, same transaction rules.
Every compare-and-swap is one `UPDATE … WHERE version = ?`: the row's version decides, on
SQLite and PostgreSQL alike, which of several replicas' writes lands.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import sqlalchemy as sa

from authgate.store.models import ConnectRequest, RemoteClient, StoredConnection
from authgate.store.sql import tables as t
from authgate.store.sql.database import idempotent
from authgate.store.sql.store import SqlStore

CONNECTIONS, REMOTE, REQUESTS = t.connections, t.remote_clients, t.connect_requests

__all__ = ["SqlConnectionStore"]


def _connection(row: Any) -> StoredConnection:
    values = dict(row)
    values["scopes"] = tuple(values["scopes"] or ())
    return StoredConnection(**values)


def _request(row: Any) -> ConnectRequest:
    values = dict(row)
    values["scopes"] = tuple(values["scopes"] or ())
    return ConnectRequest(**values)


class SqlConnectionStore:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    # -- connections ---------------------------------------------------------------------------
    @idempotent
    async def get_connection(self, user_id: str, provider: str) -> StoredConnection | None:
        async with self._store._tx(write=False) as conn:  # same package: the store's transaction rules
            row = (await conn.execute(sa.select(CONNECTIONS).where(*_key(user_id, provider)))).mappings().first()
        return _connection(row) if row is not None else None

    async def put_connection(self, record: StoredConnection) -> StoredConnection:
        async with self._store._tx() as conn:
            current: Any = (
                await conn.execute(
                    sa.select(CONNECTIONS.c.version, CONNECTIONS.c.created_at).where(
                        *_key(record.user_id, record.provider)
                    )
                )
            ).first()
            if current is None:
                stored = replace(record, version=1, renewing_until=0.0)
                values = asdict(stored)
                values["scopes"] = list(stored.scopes)
                await conn.execute(sa.insert(CONNECTIONS).values(**values))
                return stored
            stored = replace(record, version=int(current[0]) + 1, renewing_until=0.0, created_at=float(current[1]))
            await conn.execute(
                sa.update(CONNECTIONS).where(*_key(record.user_id, record.provider)).values(**_changes(stored))
            )
            return stored

    async def swap_connection(self, record: StoredConnection, expected_version: int) -> StoredConnection | None:
        stored = replace(record, version=expected_version + 1)
        async with self._store._tx() as conn:
            swapped = await conn.execute(
                sa.update(CONNECTIONS)
                .where(*_key(record.user_id, record.provider), CONNECTIONS.c.version == expected_version)
                .values(**_changes(stored))
            )
        return stored if swapped.rowcount == 1 else None

    async def delete_connection(self, user_id: str, provider: str, *, version: int | None = None) -> bool:
        where = [*_key(user_id, provider)]
        if version is not None:
            where.append(CONNECTIONS.c.version == version)
        async with self._store._tx() as conn:
            deleted = await conn.execute(sa.delete(CONNECTIONS).where(*where))
        return bool(deleted.rowcount)

    @idempotent
    async def list_connections(self, user_id: str | None = None, *, limit: int = 1000) -> list[StoredConnection]:
        query = sa.select(CONNECTIONS).order_by(CONNECTIONS.c.user_id, CONNECTIONS.c.provider).limit(limit)
        if user_id is not None:
            query = query.where(CONNECTIONS.c.user_id == user_id)
        async with self._store._tx(write=False) as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_connection(row) for row in rows]

    # -- registrations ---------------------------------------------------------------------------
    @idempotent
    async def get_remote_client(self, issuer: str) -> RemoteClient | None:
        async with self._store._tx(write=False) as conn:
            row = (await conn.execute(sa.select(REMOTE).where(REMOTE.c.issuer == issuer))).mappings().first()
        return RemoteClient(**dict(row)) if row is not None else None

    async def add_remote_client(self, record: RemoteClient, *, replace: bool = False) -> RemoteClient:
        values = asdict(record)
        async with self._store._tx() as conn:
            if replace:
                await conn.execute(sa.delete(REMOTE).where(REMOTE.c.issuer == record.issuer))
            insert = self._store.upsert(REMOTE).values(**values).on_conflict_do_nothing(index_elements=["issuer"])
            await conn.execute(insert)
            row = (await conn.execute(sa.select(REMOTE).where(REMOTE.c.issuer == record.issuer))).mappings().one()
        return RemoteClient(**dict(row))

    # -- connect links ---------------------------------------------------------------------------
    async def add_connect_request(self, request: ConnectRequest) -> None:
        values = asdict(request)
        values["scopes"] = list(request.scopes)
        async with self._store._tx() as conn:
            await conn.execute(sa.insert(REQUESTS).values(**values))

    @idempotent
    async def get_connect_request(self, elicitation_id: str) -> ConnectRequest | None:
        async with self._store._tx(write=False) as conn:
            row = (
                (await conn.execute(sa.select(REQUESTS).where(REQUESTS.c.elicitation_id == elicitation_id)))
                .mappings()
                .first()
            )
        return _request(row) if row is not None else None

    async def open_connect_request(
        self, elicitation_id: str, state_hash: str, session_hash: str, sealed_pending: bytes
    ) -> bool:
        async with self._store._tx() as conn:
            opened = await conn.execute(
                sa.update(REQUESTS)
                .where(REQUESTS.c.elicitation_id == elicitation_id, REQUESTS.c.completed_at.is_(None))
                .values(state_hash=state_hash, session_hash=session_hash, sealed_pending=sealed_pending)
            )
        return bool(opened.rowcount == 1)

    async def take_connect_request(self, state_hash: str, now: float) -> ConnectRequest | None:
        async with self._store._tx() as conn:
            row = (
                (await conn.execute(sa.select(REQUESTS).where(REQUESTS.c.state_hash == state_hash))).mappings().first()
            )
            if row is None or row["completed_at"] is not None or row["expires_at"] <= now:
                return None
            taken = await conn.execute(
                sa.update(REQUESTS)
                .where(REQUESTS.c.elicitation_id == row["elicitation_id"], REQUESTS.c.state_hash == state_hash)
                .values(state_hash=None, sealed_pending=None, completed_at=now)
            )
            if taken.rowcount != 1:  # another replica took it between the read and the write
                return None
        return _request(row)

    async def purge_connect_requests(self, before: float) -> int:
        async with self._store._tx() as conn:
            deleted = await conn.execute(sa.delete(REQUESTS).where(REQUESTS.c.expires_at < before))
        return int(deleted.rowcount or 0)


def _key(user_id: str, provider: str) -> list[sa.ColumnElement[bool]]:
    return [CONNECTIONS.c.user_id == user_id, CONNECTIONS.c.provider == provider]


def _changes(record: StoredConnection) -> dict[str, Any]:
    return {
        "issuer": record.issuer,
        "sealed_tokens": record.sealed_tokens,
        "scopes": list(record.scopes),
        "expires_at": record.expires_at,
        "renewing_until": record.renewing_until,
        "version": record.version,
        "updated_at": record.updated_at,
    }
