"""`SqlAttemptStore`: the `AttemptStore` Protocol (the connection timeline) on the SQL store's
database.

A companion of `SqlStore` (like `SqlAuditStore`): same engine, same transaction rules. One
`record_attempts` is one write transaction; for each note in it: find the attempt's row (by `flow_key`, the
client's registration row, `family_key`, or the client's newest row), then either update it
with expressions that cannot lose a concurrent step (`steps = steps | :bits`, the failure only
`WHERE failed_step IS NULL`) or insert a new row after deleting the oldest past the cap, so
the table never holds more than `max_rows` (the count and the insert under the PostgreSQL
advisory lock below; SQLite's `BEGIN IMMEDIATE` already serialises writers). Two replicas
recording the first step of one flow at the same instant may make two rows of it; nothing
else depends on there being one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from authgate.store import durability
from authgate.store.models import ATTEMPT_STEPS, Attempt, AttemptNote
from authgate.store.sql import tables as t
from authgate.store.sql.database import Connection, idempotent
from authgate.store.sql.sqlite_prepared import prepared
from authgate.store.sql.store import SqlStore

__all__ = ["SqlAttemptStore", "step_bits", "step_names"]

ATTEMPTS = t.attempts
C = ATTEMPTS.c

# pg_advisory_xact_lock key serialising the cap's count-then-insert ("authgatt")
ATTEMPT_CAP_LOCK_KEY = int.from_bytes(b"authgatt", "big")

_BIT = {name: 1 << i for i, name in enumerate(ATTEMPT_STEPS)}


def step_bits(steps: tuple[str, ...]) -> int:
    return sum(_BIT[s] for s in set(steps) if s in _BIT)


def step_names(bits: int) -> tuple[str, ...]:
    return tuple(name for name in ATTEMPT_STEPS if bits & _BIT[name])


class SqlAttemptStore:
    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def record_attempts(self, notes: Sequence[AttemptNote], *, max_rows: int, window: float) -> None:
        if not notes:
            return
        with durability.relaxed():  # diagnostics: a power loss may take the last notes back
            await self._record(notes, max_rows, window)

    async def _record(self, notes: Sequence[AttemptNote], max_rows: int, window: float) -> None:
        async with self._store._tx(prepared=True) as conn:  # same package: the store's transaction rules
            for note in notes:  # in order: a note may continue the row an earlier one made
                if not await _join(conn, note, window) and not note.join_only:
                    await self._insert(conn, note, max_rows)

    async def _insert(self, conn: Connection, note: AttemptNote, max_rows: int) -> None:
        if self._store.dialect == "postgresql":
            await conn.execute(_CAP_LOCK)
        count = int(await conn.scalar(_COUNT) or 0)
        if count >= max_rows:
            await conn.execute(_EVICT, {"n": count - max_rows + 1})
        await conn.execute(
            _INSERT,
            {
                "attempt_id": secrets.token_hex(16),
                "started_at": note.at,
                "updated_at": note.at,
                "steps": step_bits(note.steps),
                "client_id": note.client_id,
                "client_name": note.client_name,
                "client_kind": note.client_kind,
                "software": note.software,
                "flow_key": note.flow_key,
                "family_key": note.family_key,
                "failed_step": note.failed_step,
                "reason": note.reason,
                "fix": note.fix,
            },
        )

    @idempotent
    async def list_attempts(
        self, *, since: float, client_id: str | None = None, failed_only: bool = False, limit: int = 200
    ) -> list[Attempt]:
        query = sa.select(ATTEMPTS).where(C.started_at >= since)
        if client_id is not None:
            query = query.where(sa.or_(C.client_id == client_id, C.client_name == client_id))
        if failed_only:
            query = query.where(C.failed_step.is_not(None))
        query = query.order_by(C.started_at.desc(), C.attempt_id.desc()).limit(max(0, limit))
        return [_to_attempt(row) for row in await self._store._all(query)]

    @idempotent
    async def purge_attempts(self, before: float) -> int:
        async with self._store._tx() as conn:
            result = await conn.execute(sa.delete(ATTEMPTS).where(C.updated_at < before))
            return int(result.rowcount or 0)


async def _join(conn: Connection, note: AttemptNote, window: float) -> bool:
    """Add `note` to the row it belongs to, looked for in this order: by `flow_key`, else the
    client's registration (made before the flow), by `family_key`, the client's newest (with
    `follow_client`); each look-up and its UPDATE one statement (`_JOIN`). False: none (a new
    attempt)."""
    recent = note.at - window
    values = _update_values(note)
    tries: list[tuple[sa.Update, dict[str, Any]]] = []
    if note.flow_key is not None:
        tries.append((_JOIN_FLOW, {"l_flow_key": note.flow_key}))
        if note.client_id is not None:
            tries.append((_JOIN_REGISTRATION, {"l_client_id": note.client_id, "l_recent": recent}))
    if note.family_key is not None:
        tries.append((_JOIN_FAMILY, {"l_family_key": note.family_key}))
    if note.follow_client and note.client_id is not None:
        tries.append((_JOIN_NEWEST_OF_CLIENT, {"l_client_id": note.client_id, "l_recent": recent}))
    for statement, lookup in tries:
        if (await conn.execute(statement, {**values, **lookup})).first() is not None:
            return True
    return False


def _update_values(note: AttemptNote) -> dict[str, Any]:
    return {
        "b_at": note.at,
        "b_bits": step_bits(note.steps),
        "b_client_id": note.client_id,
        "b_client_name": note.client_name,
        "b_client_kind": note.client_kind,
        "b_software": note.software,
        "b_flow_key": note.flow_key,
        "b_family_key": note.family_key,
        "b_failed_step": note.failed_step,
        "b_reason": note.reason,
        "b_fix": note.fix,
    }


def _to_attempt(row: sa.RowMapping) -> Attempt:
    return Attempt(
        attempt_id=row["attempt_id"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        steps=step_names(int(row["steps"])),
        client_id=row["client_id"],
        client_name=row["client_name"],
        client_kind=row["client_kind"],
        software=row["software"],
        failed_step=row["failed_step"],
        reason=row["reason"],
        fix=row["fix"],
    )


def _kept(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """The row's value, or the note's where the row has none."""
    return sa.func.coalesce(column, sa.bindparam(f"b_{column.name}"))


def _first_failure(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """The note's failure text only when the row has no failure yet (the first one stays)."""
    return sa.case((C.failed_step.is_(None), sa.bindparam(f"b_{column.name}")), else_=column)


# Built once (docs/benchmarks.md, "OAuth flows": building a statement costs more than running it), and
# run from their SQL text on SQLite (sqlite_prepared.py), on asyncpg directly on PostgreSQL (pg_prepared.py).
_CAP_LOCK = prepared(sa.select(sa.func.pg_advisory_xact_lock(ATTEMPT_CAP_LOCK_KEY)))  # PostgreSQL only
_COUNT = prepared(sa.select(sa.func.count()).select_from(ATTEMPTS))
_EVICT = prepared(
    sa.delete(ATTEMPTS).where(
        C.attempt_id.in_(
            sa.select(C.attempt_id)
            .order_by(C.started_at, C.attempt_id)
            .limit(sa.bindparam("n", type_=sa.Integer))
            .correlate(None)
        )
    )
)
_INSERT = prepared(sa.insert(ATTEMPTS))


def _joining(lookup: sa.Select[Any]) -> sa.Update:
    """The row `lookup` finds (its first attempt_id), updated with a note (`_update_values`),
    returning its id: no row back, no such row. Parameters of the look-up are named `l_…`
    (never a column's name: those given are compiled as columns the UPDATE sets)."""
    return _UPDATE.where(C.attempt_id == lookup.scalar_subquery()).returning(C.attempt_id)


_UPDATE = sa.update(ATTEMPTS).values(
    updated_at=sa.bindparam("b_at"),
    steps=C.steps.op("|")(sa.bindparam("b_bits", type_=sa.Integer)),
    client_id=_kept(C.client_id),
    client_name=_kept(C.client_name),
    client_kind=_kept(C.client_kind),
    software=_kept(C.software),
    flow_key=_kept(C.flow_key),
    family_key=_kept(C.family_key),
    # (every right-hand side reads the row as it was: SQL evaluates SET against the old row)
    reason=_first_failure(C.reason),
    fix=_first_failure(C.fix),
    failed_step=_kept(C.failed_step),
)
_RECENT_OF_CLIENT = (
    sa.select(C.attempt_id)
    .where(C.client_id == sa.bindparam("l_client_id"), C.started_at >= sa.bindparam("l_recent"))
    .order_by(C.started_at.desc())
    .limit(1)
)
_JOIN_FLOW = prepared(_joining(sa.select(C.attempt_id).where(C.flow_key == sa.bindparam("l_flow_key")).limit(1)))
_JOIN_REGISTRATION = prepared(_joining(_RECENT_OF_CLIENT.where(C.flow_key.is_(None), C.family_key.is_(None))))
_JOIN_FAMILY = prepared(_joining(sa.select(C.attempt_id).where(C.family_key == sa.bindparam("l_family_key")).limit(1)))
_JOIN_NEWEST_OF_CLIENT = prepared(_joining(_RECENT_OF_CLIENT))
