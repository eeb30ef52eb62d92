"""The audit trail: the writer's batching and bounds, the SQL store, and `authgate audit`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import MemoryAuditStore

from authgate.audit.log import AuditLog
from authgate.cli.audit_cmd import parse_since
from authgate.cli.main import main
from authgate.errors import ConfigError
from authgate.store.models import AuditEvent
from authgate.store.sql import SqlStore
from authgate.store.sql.audit import SqlAuditStore
from support import requirements as req

NOW = 1_800_000_000.0


def event(i: int, **kw: object) -> AuditEvent:
    values: dict[str, object] = {
        "at": NOW + i,
        "method": "tools/call",
        "decision": "allowed",
        "target": f"t{i % 3}",
        "subject": f"s{i % 2}",
        "username": f"user{i % 2}",
        "status": 200,
        "latency_ms": 1.5,
        **kw,
    }
    return AuditEvent(**values)  # type: ignore[arg-type]


async def test_queued_events_are_written_in_batches_and_flushed_on_close() -> None:
    store = MemoryAuditStore()
    log = AuditLog(store, batch_size=10)
    for i in range(25):
        log.record(event(i))
    await log.aclose()
    assert [e.at for e in store.events] == [NOW + i for i in range(25)]
    assert max(store.batch_sizes) <= 10


@pytest.mark.requirement(req.ISSUE18_AUDIT_NEVER_BLOCKS)
async def test_a_full_queue_drops_counts_and_logs_the_event_and_never_waits(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryAuditStore(hold=asyncio.Event())  # a database that does not answer yet
    log = AuditLog(store, max_queued=5, batch_size=1, linger_seconds=0)
    for i in range(20):
        log.record(event(i))  # synchronous: there is nothing to wait for
    assert log.dropped >= 20 - 5 - 1  # the queue, and the one batch the writer holds
    assert "queue of 5 events is full" in caplog.text
    store.hold.set()
    await asyncio.wait_for(log.aclose(), timeout=10)
    assert len(store.events) == 20 - log.dropped


@pytest.mark.requirement(req.ISSUE18_AUDIT_FLUSHED_ON_STOP)
async def test_a_clean_stop_writes_every_queued_event_even_while_lingering() -> None:
    store = MemoryAuditStore()
    log = AuditLog(store, linger_seconds=30)  # the writer would wait 30 s for more
    for i in range(3):
        log.record(event(i))
    await asyncio.wait_for(log.aclose(), timeout=10)
    assert len(store.events) == 3


async def test_closing_while_the_store_hangs_gives_up_and_says_what_was_lost(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryAuditStore(hold=asyncio.Event())
    log = AuditLog(store, linger_seconds=0, close_seconds=0.5)
    for i in range(3):
        log.record(event(i))
    await asyncio.wait_for(log.aclose(), timeout=10)
    assert "lost" in caplog.text
    store.hold.set()


async def test_a_refusal_is_committed_before_record_now_returns() -> None:
    store = MemoryAuditStore(fail=1)  # a busy database: retried
    log = AuditLog(store, retry_seconds=0.01, linger_seconds=30)  # a refusal does not linger
    await asyncio.wait_for(log.record_now(event(1, decision="refused", reason="insufficient_scope")), timeout=10)
    assert [e.decision for e in store.events] == ["refused"]
    await log.aclose()


async def test_a_batch_the_store_keeps_refusing_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryAuditStore(fail=3)
    log = AuditLog(store, retry_seconds=0.01)
    log.record(event(1))
    log.record(event(2))
    await log.aclose()
    assert "event(s) lost" in caplog.text
    assert len(store.events) <= 1


@pytest.fixture
async def sql(tmp_path: Path) -> SqlAuditStore:
    store = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}")
    await store.open()
    yield SqlAuditStore(store)  # type: ignore[misc]
    await store.close()


async def test_the_sql_store_filters_and_returns_the_newest_oldest_first(sql: SqlAuditStore) -> None:
    await sql.add_audit_events([event(i) for i in range(10)])
    newest = await sql.list_audit_events(limit=3)
    assert [e.at for e in newest] == [NOW + 7, NOW + 8, NOW + 9]
    assert all(e.event_id is not None for e in newest)
    assert {e.subject for e in await sql.list_audit_events(subject="user1")} == {"s1"}
    assert {e.target for e in await sql.list_audit_events(target="t0")} == {"t0"}
    assert len(await sql.list_audit_events(since=NOW + 5)) == 5


def test_since_takes_durations_and_dates() -> None:
    assert parse_since("15m", now=NOW) == NOW - 900
    assert parse_since("2d", now=NOW) == NOW - 2 * 86400
    assert parse_since("2027-01-15T08:00:00Z") == parse_since("2027-01-15T08:00:00+00:00")
    assert parse_since("2027-01-15") == datetime(2027, 1, 15, tzinfo=UTC).timestamp()  # UTC by default
    with pytest.raises(ConfigError):
        parse_since("yesterday")


async def _seed(path: Path) -> None:
    store = SqlStore(f"sqlite+aiosqlite:///{path}")
    await store.open()
    await SqlAuditStore(store).add_audit_events(
        [
            event(1, decision="refused", reason="insufficient_scope: needs docs.write", status=None, latency_ms=None),
            event(2),
        ]
    )
    await store.close()


def test_authgate_audit_prints_lines_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_seed(tmp_path / "authgate.db"))
    assert main(["audit", "--data-dir", str(tmp_path)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["TIME", "DECISION", "METHOD", "TARGET"]
    assert lines[0].split()[1:5] == ["refused", "tools/call", "t1", "user1"]
    assert lines[0].endswith("insufficient_scope: needs docs.write") and "200 2ms" in lines[1]
    assert main(["audit", "--data-dir", str(tmp_path), "--json", "--subject", "user0"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["decision"] == "allowed" and row["time"].endswith("Z") and row["target"] == "t2"
