"""Contract: the `AuditStore` (SqlAuditStore) on each backend — appends, filters, order, and
durability across replicas and reopening."""

from __future__ import annotations

import asyncio
import threading

import pytest

from authgate.store.models import AuditEvent
from authgate.store.sql import SqlStore
from authgate.store.sql.audit import SqlAuditStore
from support import requirements as req

from .conftest import NOW, Build, StoreFactory


def _event(i: int, **kw: object) -> AuditEvent:
    values: dict[str, object] = {
        "at": NOW + i,
        "method": "tools/call",
        "decision": "allowed",
        "target": f"tool-{i % 2}",
        "subject": f"sub-{i % 3}",
        "username": f"user-{i % 3}",
        "client_id": "https://chatgpt.com/oauth/client.json",
        "status": 200,
        "latency_ms": 12.5,
        **kw,
    }
    return AuditEvent(**values)  # type: ignore[arg-type]


async def test_events_come_back_newest_limit_oldest_first_with_ids(store: SqlStore) -> None:
    audit = SqlAuditStore(store)
    await audit.add_audit_events([_event(i) for i in range(6)])
    events = await audit.list_audit_events(limit=4)
    assert [e.at for e in events] == [NOW + 2, NOW + 3, NOW + 4, NOW + 5]
    ids = [e.event_id for e in events]
    assert None not in ids and ids == sorted(ids)
    assert events[0] == _event(2, event_id=ids[0])


async def test_filters_by_time_subject_or_username_and_target(store: SqlStore) -> None:
    audit = SqlAuditStore(store)
    await audit.add_audit_events([_event(i) for i in range(6)])
    await audit.add_audit_events(
        [
            _event(
                9,
                decision="refused",
                reason="insufficient_scope: needs x",
                status=None,
                latency_ms=None,
                arguments='{"a":1}',
            )
        ]
    )
    assert {e.at for e in await audit.list_audit_events(since=NOW + 4)} == {NOW + 4, NOW + 5, NOW + 9}
    assert {e.subject for e in await audit.list_audit_events(subject="user-1")} == {"sub-1"}
    assert {e.subject for e in await audit.list_audit_events(subject="sub-2")} == {"sub-2"}
    refused = await audit.list_audit_events(target="tool-1", since=NOW + 9)
    assert [(e.decision, e.reason, e.arguments) for e in refused] == [
        ("refused", "insufficient_scope: needs x", '{"a":1}')
    ]


async def test_events_written_by_one_replica_are_read_by_another_after_reopening(
    store: SqlStore, open_store: StoreFactory
) -> None:
    await SqlAuditStore(store).add_audit_events([_event(1)])
    await store.close()
    other = await open_store(migrate=False)
    assert [e.at for e in await SqlAuditStore(other).list_audit_events()] == [NOW + 1]


async def test_the_batch_writer_commits_from_a_thread_of_its_own(store: SqlStore, replica: SqlStore) -> None:
    writer = SqlAuditStore(store).batch_writer()
    assert writer is not None  # a file or a server: a second connection sees the same database

    def write_and_close() -> None:  # one thread, as the audit writer's own (SQLite connections are per thread)
        writer.write([_event(i) for i in range(203)])  # several INSERTs and a rest
        writer.close()

    await asyncio.to_thread(write_and_close)
    events = await SqlAuditStore(replica).list_audit_events(limit=1000)
    assert [e.at for e in events] == [NOW + i for i in range(203)]
    assert events[7] == _event(7, event_id=events[7].event_id)


@pytest.mark.requirement(req.ISSUE18_AUDIT_WRITER_SHARES_SQLITE)
async def test_the_store_keeps_writing_while_the_audit_writer_writes(store: SqlStore) -> None:
    # SQLite has one writer at a time: the writer thread's connection and the store's take
    # turns for the lock (busy timeout), and neither sees "database is locked".
    writer = SqlAuditStore(store).batch_writer()
    assert writer is not None
    stop = threading.Event()

    def write_batches() -> int:
        batches = 0
        while not stop.is_set():
            writer.write([_event(i, target="from-thread") for i in range(500)])
            batches += 1
        writer.close()
        return batches

    thread = asyncio.ensure_future(asyncio.to_thread(write_batches))
    try:
        for i in range(100):
            await store.add_client(Build.client(f"client-{i}"))
    finally:
        stop.set()
        batches = await thread
    assert batches >= 1
    assert len(await store.list_clients()) == 100
    assert len(await SqlAuditStore(store).list_audit_events(target="from-thread", limit=10**6)) == 500 * batches
