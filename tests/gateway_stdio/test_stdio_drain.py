"""The stdio bridge behind `DrainGuard` (gateway/drain.py), in process: what a stop does to each
kind of request, and the per-stream limit. `authgate serve` under SIGTERM is
tests/integration/test_shutdown_drain.py; here each ending is looked at on its own."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authgate.gateway.drain import DrainGuard
from authgate.gateway.stdio.bridge import StdioBridge
from support import requirements as req

from .conftest import DEMO, WATCH, Asgi, identity, modern, open_session, rpc

ALICE = identity("alice")
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[StdioBridge, Asgi]]:
    app = StdioBridge([sys.executable, str(DEMO)], stream_timeout=1.5)
    async with app:
        yield app, Asgi(DrainGuard(app, app.drain))  # type: ignore[arg-type]


async def _wait_for(path: Path, text: str) -> bool:
    for _ in range(200):
        if path.exists() and path.read_text() == text:
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
async def test_a_call_still_running_when_the_drain_ends_gets_a_503_json_rpc_error(
    guarded: tuple[StdioBridge, Asgi], tmp_path: Path
) -> None:
    bridge, asgi = guarded
    session = await open_session(asgi, ALICE)
    marker = tmp_path / "cancelled"
    slow = rpc("tools/call", {"name": "slow", "arguments": {"seconds": 60, "marker": str(marker)}}, 41)
    # a JSON-only client: one that takes SSE is answered on a (resumable) stream from the first byte,
    # which the guard ends with an error event instead (error_ending, tests/gateway/test_drain_*.py)
    json_only = {"mcp-session-id": session, "accept": "application/json"}
    task = asyncio.create_task(asgi.post(ALICE, slow, json_only))
    quick = rpc("tools/call", {"name": "echo", "arguments": {"text": "in time"}}, 42)
    bridge.drain.begin()  # stopping: a call already in flight, or on a connection still open, runs on
    answered = await (await asgi.post(ALICE, quick, {"mcp-session-id": session})).answer()
    assert answered["result"]["content"][0]["text"] == "in time"
    for _ in range(100):  # the slow call has reached the child
        if bridge.drain.in_flight == 1 and any(bridge.pool.entries) and next(iter(bridge.pool.entries)).exchanges:
            break
        await asyncio.sleep(0.05)
    assert bridge.drain.expire(2.5) == 1
    reply = await task
    assert reply.status == 503 and reply.headers["retry-after"] == "1"
    answer = await reply.json()
    assert answer["id"] == 41 and answer["error"]["code"] == -32603
    assert "after the 2.5 s drain time" in answer["error"]["message"]
    assert answer["error"]["data"] == {"source": "authgate", "reason": "shutting_down", "retryable": True}
    assert await _wait_for(marker, "cancelled"), "the child was not told notifications/cancelled"
    assert bridge.drain.in_flight == 0


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
async def test_a_resumable_stream_cut_by_the_drain_ends_with_an_error_event(
    guarded: tuple[StdioBridge, Asgi], tmp_path: Path
) -> None:
    bridge, asgi = guarded
    session = await open_session(asgi, ALICE)  # 2025-11-25: the answer is a resumable stream
    marker = tmp_path / "cancelled"
    slow = rpc("tools/call", {"name": "slow", "arguments": {"seconds": 60, "marker": str(marker)}}, 43)
    reply = await asgi.post(ALICE, slow, {"mcp-session-id": session})
    assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream"
    bridge.drain.begin()
    for _ in range(100):  # the call has reached the child
        if any(bridge.pool.entries) and next(iter(bridge.pool.entries)).exchanges:
            break
        await asyncio.sleep(0.05)
    assert bridge.drain.expire(2.5) == 1
    last = [event async for event in reply.events()][-1]
    assert last["id"] == 43 and last["error"]["data"]["reason"] == "shutting_down"
    assert await _wait_for(marker, "cancelled"), "the child was not told notifications/cancelled"
    entry = next(iter(bridge.pool.entries.values()))
    assert entry.session is not None and entry.session.streams is not None
    assert not entry.session.streams.streams, "a cut stream is not kept for a resume"


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
async def test_a_stop_ends_the_get_stream_cleanly(guarded: tuple[StdioBridge, Asgi]) -> None:
    bridge, asgi = guarded
    session = await open_session(asgi, ALICE)
    stream = await asgi.call(ALICE, "GET", headers={"mcp-session-id": session, "accept": "text/event-stream"})
    assert stream.status == 200
    bridge.drain.begin()
    assert await stream.body() == b"", "a GET stream ends without an error: there is no request to answer"
    again = await asgi.call(ALICE, "GET", headers={"mcp-session-id": session, "accept": "text/event-stream"})
    assert again.status == 503  # a new stream while stopping: go elsewhere
    assert (await again.json())["error"]["data"]["reason"] == "shutting_down"


async def test_the_get_stream_ends_after_the_stream_timeout(guarded: tuple[StdioBridge, Asgi]) -> None:
    _, asgi = guarded
    session = await open_session(asgi, ALICE)
    stream = await asgi.call(ALICE, "GET", headers={"mcp-session-id": session, "accept": "text/event-stream"})
    assert stream.status == 200
    assert await asyncio.wait_for(stream.body(), 10) == b""  # ended cleanly: the client opens another


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
async def test_a_stop_ends_listen_streams_with_their_graceful_close() -> None:
    app = StdioBridge([sys.executable, str(WATCH)], init_timeout=20)
    async with app:
        asgi = Asgi(DrainGuard(app, app.drain))  # type: ignore[arg-type]
        body, headers = modern("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, "sub-1")
        reply = await asgi.post(ALICE, body, headers)
        events = reply.events()
        ack = await asyncio.wait_for(anext(events), 10)
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        app.drain.begin()
        end = await asyncio.wait_for(anext(events), 10)
        assert end["id"] == "sub-1" and end["result"]["resultType"] == "complete"
        assert end["result"]["_meta"][SUBSCRIPTION_ID] == "sub-1"
        assert end["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
async def test_a_stop_ends_the_listen_stream_of_a_2026_child_with_its_graceful_close() -> None:
    """demo_server (the mcp SDK) speaks 2026-07-28 itself: its own listen stream, relayed, ends the same way."""
    app = StdioBridge([sys.executable, str(DEMO)], init_timeout=20)
    async with app:
        asgi = Asgi(DrainGuard(app, app.drain))  # type: ignore[arg-type]
        body, headers = modern("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, "sub-2")
        reply = await asgi.post(ALICE, body, headers)
        events = reply.events()
        ack = await asyncio.wait_for(anext(events), 10)
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["_meta"][SUBSCRIPTION_ID] == "sub-2", "the child's id for it, mapped back"
        assert app.stateless.children.modern is True
        app.drain.begin()
        end = await asyncio.wait_for(anext(events), 10)
        assert end["id"] == "sub-2" and end["result"]["resultType"] == "complete"
        assert end["result"]["_meta"][SUBSCRIPTION_ID] == "sub-2"


async def test_a_2025_era_child_is_spoken_to_at_2025_11_25_after_one_server_discover() -> None:
    """watch_server.py knows no server/discover: its first child is stopped, the next initialized."""
    app = StdioBridge([sys.executable, str(WATCH)], init_timeout=20)
    async with app:
        asgi = Asgi(app)
        body, headers = modern("tools/list")
        answer = await (await asgi.post(ALICE, body, headers)).answer()
        assert answer["result"]["resultType"] == "complete" and app.stateless.children.modern is False
        (child,) = app.pool.entries
        assert child.modern_meta is None and child.init_result is not None
