"""The connection timeline's recorder (oauth/attempts.py) on a real SQLite store: a flood of
failed attempts leaves the table at its cap, failures past the per-minute budget cost no
write, the reason and fix texts name the failure and hold no secret, and a grant's first MCP
call is queued once; the steps are written in the background, in order."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authgate.errors import InvalidGrant
from authgate.oauth import attempts
from authgate.oauth.attempts import (
    AttemptRecorder,
    ClientFacts,
    TokenSeen,
    basic_client_id,
    explain,
    family_key,
    flow_key,
)
from authgate.store.bundle import Stores
from authgate.store.models import RefreshFamily
from authgate.store.sql import sql_stores
from support import requirements as req


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    # on tmpfs when there is one: over a thousand committed transactions, each fsynced (synchronous=FULL)
    shm = Path("/dev/shm")
    base = shm / f"authgate-attempts-{tmp_path.name}" if shm.is_dir() else tmp_path
    opened = sql_stores(f"sqlite+aiosqlite:///{base / 'authgate.db'}")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
        if base != tmp_path:
            for f in base.glob("*"):
                f.unlink()
            base.rmdir()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.requirement(req.ISSUE13_ATTEMPTS_BOUNDED)
async def test_ten_thousand_failed_attempts_leave_the_table_at_its_cap(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood as the server meets it: 10 000 failures over two minutes, each from a client
    nobody registered. The per-minute budget writes 600 a minute, the cap keeps 500 rows."""
    clock = Clock()
    recorder = AttemptRecorder(stores.attempts, max_rows=500, failures_per_minute=600, clock=clock)
    for i in range(10_000):
        clock.now += 0.012
        unknown = ClientFacts(f"flood-{i}-" + "x" * 5000, "n" * 5000, "unknown")  # long texts are cut
        await recorder.failed("authorize", "unknown client_id: the client must register again", client=unknown)
    await recorder.flush()
    rows = await stores.attempts.list_attempts(since=0, limit=10_000)
    assert len(rows) == 500
    assert rows[0].started_at > rows[-1].started_at and all(r.client_kind == "unknown" for r in rows)
    assert all(len(r.client_id or "") <= 512 and len(r.client_name or "") <= 120 for r in rows)
    assert "connection attempt steps not recorded in the last minute (failures over 600 a minute" in caplog.text


async def test_failures_past_the_budget_are_counted_not_written(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    recorder = AttemptRecorder(stores.attempts, failures_per_minute=5, clock=clock)
    for i in range(20):
        await recorder.failed("token", "client authentication failed", client=ClientFacts(f"c{i}"))
    await recorder.flush()
    assert len(await stores.attempts.list_attempts(since=0)) == 5
    clock.now += 61  # a new minute: recorded again, and the dropped ones logged
    await recorder.failed("token", "client authentication failed", client=ClientFacts("later"))
    await recorder.flush()
    assert len(await stores.attempts.list_attempts(since=0)) == 6
    assert "15 connection attempt steps not recorded" in caplog.text


def test_reasons_name_the_failure_and_its_fix() -> None:
    reason, fix = explain(
        "authorize",
        "redirect_uri is not registered for this client",
        ["https://claude.ai/api/mcp/auth_callback"],
    )
    assert reason == (
        "authorization request refused: redirect_uri is not registered for this client — it registered "
        "https://claude.ai/api/mcp/auth_callback"
    )
    assert "redirect URI it registered" in fix
    reason, fix = explain("token", InvalidGrant("code_verifier does not match the code_challenge"))
    assert reason.startswith("token request refused: code_verifier does not match") and "PKCE" in fix
    reason, fix = explain("token", "\x1b[31m" + "z" * 1000)  # a client's own text: printable, bounded
    assert "\x1b" not in reason and len(reason) <= 300 and len(fix) <= 300


def test_a_basic_header_gives_its_client_id_only() -> None:
    header = "Basic " + base64.b64encode(b"client%3A1:very-secret").decode()
    assert basic_client_id(header) == "client:1"
    assert basic_client_id("Basic !!!") is None and basic_client_id("Bearer x") is None


async def test_a_grants_first_mcp_call_is_queued_once(stores: Stores) -> None:
    recorder = AttemptRecorder(stores.attempts)
    flow = flow_key("client-1", "challenge-1")
    await recorder.reached("authorize", client=ClientFacts("client-1"), flow=flow)
    await recorder.reached("token", client=ClientFacts("client-1"), flow=flow, family=family_key("grant-1"))
    for _ in range(1000):
        recorder.first_call("grant-1")  # the gate, on each fresh token check: a dict lookup
    recorder.first_call(None)  # a token without a grant (client_credentials)
    recorder.first_call("grant-without-a-story")  # joins nothing: no row made
    await recorder.aclose()
    [story] = await stores.attempts.list_attempts(since=0)
    assert story.steps == ("authorize", "token", "mcp")


async def test_the_grants_remembered_for_first_calls_and_refreshes_are_bounded(
    stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each grant's first MCP call and first refresh are noted once per process; the grants
    remembered for that are at most MAX_REMEMBERED (the least recent go), so a server's memory
    does not grow with every grant it ever refreshed (it did: ~250 bytes a flow, for good)."""
    monkeypatch.setattr(attempts, "MAX_REMEMBERED", 50)
    recorder = AttemptRecorder(stores.attempts)
    for i in range(300):
        family = RefreshFamily(f"grant-{i}", "client-1", "user-1", ("mcp",), (), 0.0)
        await recorder.token_done("refresh_token", TokenSeen(family=family))
        recorder.first_call(f"grant-{i}")
    await recorder.aclose()
    assert len(recorder._first_calls) == 50


def test_no_store_records_nothing() -> None:
    recorder = AttemptRecorder()
    recorder.metadata_fetched("127.0.0.1")
    recorder.first_call("grant")  # no loop needed: nothing is queued
