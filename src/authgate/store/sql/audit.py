"""`SqlAuditStore`: the `AuditStore` Protocol on the SQL store's database.

A companion of `SqlStore` rather than more methods on it: it shares the store's engine and
transaction rules (SQLite `BEGIN IMMEDIATE` for writes, one connection at a time in memory,
database failures as `StoreError`) through the store's own transaction helper. The batches of
allowed operations are written by the audit writer thread on a connection of its own
(`batch_writer`, audit_writer.py), never on the serving event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import sqlalchemy as sa

from authgate.store.models import AuditEvent
from authgate.store.protocols import AuditBatchWriter
from authgate.store.sql import tables as t
from authgate.store.sql.audit_writer import PostgresBatchWriter, SqliteBatchWriter
from authgate.store.sql.database import idempotent
from authgate.store.sql.engine import is_sqlite, sqlite_file
from authgate.store.sql.store import SqlStore

AUDIT = t.audit_events

__all__ = ["SqlAuditStore"]

_COLUMNS = tuple(f.name for f in fields(AuditEvent) if f.name != "event_id")


class SqlAuditStore:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def add_audit_events(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        # a shallow copy per event: dataclasses.asdict deep-copies and cost ~40 µs an event
        rows = [{name: getattr(e, name) for name in _COLUMNS} for e in events]
        async with self._store._tx() as conn:  # same package: the store's transaction rules
            await conn.execute(sa.insert(AUDIT), rows)

    def batch_writer(self) -> AuditBatchWriter | None:
        """A connection of its own for the audit writer thread (store/sql/audit_writer.py);
        None for an in-memory SQLite database, which no second connection can see."""
        url = self._store._url  # same package
        if not is_sqlite(url):
            return PostgresBatchWriter(url)
        path = sqlite_file(url)
        return SqliteBatchWriter(path) if path is not None else None

    @idempotent
    async def list_audit_events(
        self, *, since: float | None = None, subject: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        query = sa.select(AUDIT).order_by(AUDIT.c.at.desc(), AUDIT.c.event_id.desc()).limit(limit)
        if since is not None:
            query = query.where(AUDIT.c.at >= since)
        if subject is not None:
            query = query.where(sa.or_(AUDIT.c.subject == subject, AUDIT.c.username == subject))
        if target is not None:
            query = query.where(AUDIT.c.target == target)
        async with self._store._tx(write=False) as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [AuditEvent(**dict(row)) for row in reversed(rows)]
