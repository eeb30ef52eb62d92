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
        await log.record(event(i))
    await log.aclose()
    assert [e.at for e in store.events] == [NOW + i for i in range(25)]


async def test_a_full_queue_makes_the_next_event_wait_rather_than_drop() -> None:
    store = MemoryAuditStore()
    log = AuditLog(store, max_queued=2, batch_size=1)
    await asyncio.wait_for(asyncio.gather(*(log.record(event(i)) for i in range(20))), timeout=5)
    await log.aclose()
    assert len(store.events) == 20


async def test_closing_after_the_writer_was_cancelled_does_not_hang(caplog: pytest.LogCaptureFixture) -> None:
    # A server cancelled as a whole (not shut down in order) cancels the writer first.
    store = MemoryAuditStore()
    log = AuditLog(store, linger_seconds=10)
    for i in range(3):
        await log.record(event(i))
    await asyncio.sleep(0)  # the writer takes the first event and lingers
    assert log._writer is not None
    log._writer.cancel()
    await asyncio.wait_for(log.aclose(), timeout=5)
    assert "lost" in caplog.text


async def test_a_refusal_is_committed_before_record_now_returns() -> None:
    store = MemoryAuditStore(fail=1)  # a busy database: retried
    await AuditLog(store, retry_seconds=0.01).record_now(event(1, decision="refused", reason="insufficient_scope"))
    assert [e.decision for e in store.events] == ["refused"]


async def test_a_batch_the_store_keeps_refusing_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryAuditStore(fail=3)
    log = AuditLog(store, retry_seconds=0.01)
    await log.record(event(1))
    await log.record(event(2))
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
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t")[1:5] == ["refused", "tools/call", "t1", "user1"]
    assert lines[0].endswith("insufficient_scope: needs docs.write") and "200 2ms" in lines[1]
    assert main(["audit", "--data-dir", str(tmp_path), "--json", "--subject", "user0"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["decision"] == "allowed" and row["time"].endswith("Z") and row["target"] == "t2"
