"""The stdio bridge in process (no authgate, no sockets): limits, reaping, expiry, the GET
stream, client cancellation, stderr logging, lifespan and readiness. The identity is the one
the guard would have put in the scope."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from authgate.gateway.stdio.bridge import StdioBridge
from support import requirements as req

from .conftest import DEMO, Asgi, identity, open_session, rpc

ALICE, BOB, CAROL = identity("alice"), identity("bob"), identity("carol")
FAR_FUTURE = 10**9


def call(tool: str, args: dict[str, Any], request_id: int = 2, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool, "arguments": args}
    if meta:
        params["_meta"] = meta
    return rpc("tools/call", params, request_id)


async def pid_in(asgi: Asgi, session: str, who: Any = ALICE) -> int:
    reply = await asgi.post(who, call("pid", {}), {"mcp-session-id": session})
    return int((await reply.answer())["result"]["structuredContent"]["pid"])


async def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_requests_the_bridge_cannot_take(asgi: Asgi) -> None:
    no_identity = await asgi.post(None, rpc("tools/list"))
    assert no_identity.status == 401
    wrong_type = await asgi.post(ALICE, rpc("tools/list"), {"content-type": "text/plain"})
    assert wrong_type.status == 415 and b"application/json" in await wrong_type.body()
    wrong_accept = await asgi.post(ALICE, rpc("tools/list"), {"accept": "text/html"})
    assert wrong_accept.status == 406
    batch = await asgi.post(ALICE, [rpc("tools/list")])
    assert batch.status == 400 and "batch" in (await batch.json())["error"]["message"]
    no_session = await asgi.post(ALICE, rpc("tools/list"))
    assert no_session.status == 400 and "Mcp-Session-Id" in (await no_session.json())["error"]["message"]
    unknown = await asgi.post(ALICE, rpc("tools/list"), {"mcp-session-id": "nope"})
    assert unknown.status == 404


async def test_limits_per_caller_and_overall(bridge: StdioBridge, asgi: Asgi) -> None:
    """max_children_per_identity=2, max_children=3 (conftest)."""
    first = await open_session(asgi, ALICE)
    await open_session(asgi, ALICE)
    await open_session(asgi, ALICE)  # at Alice's limit: her least recently used idle child makes room
    assert (await asgi.post(ALICE, call("echo", {"text": "x"}), {"mcp-session-id": first})).status == 404
    await open_session(asgi, BOB)
    refused = await asgi.post(
        CAROL,
        rpc(
            "initialize",
            {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}},
        ),
    )
    assert refused.status == 503
    error = (await refused.json())["error"]
    assert error["data"]["reason"] == "stdio_server_limit" and "limit" in error["message"]
    assert len(bridge.pool.entries) == 3


async def test_idle_children_are_reaped(bridge: StdioBridge, asgi: Asgi) -> None:
    session = await open_session(asgi, ALICE)
    pid = await pid_in(asgi, session)
    assert await bridge.pool.reap(now=time.monotonic()) == 0
    assert await bridge.pool.reap(now=time.monotonic() + FAR_FUTURE) == 1
    assert await gone(pid)
    assert (await asgi.post(ALICE, call("echo", {"text": "x"}), {"mcp-session-id": session})).status == 404


def modern(method: str, params: dict[str, Any], request_id: int = 1) -> tuple[dict[str, Any], dict[str, str]]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
    }
    body = rpc(method, {**params, "_meta": meta}, request_id)
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": method}
    if "name" in params:
        headers["mcp-name"] = params["name"]
    return body, headers


async def test_an_unanswered_input_request_expires(bridge: StdioBridge, asgi: Asgi) -> None:
    body, headers = modern("tools/call", {"name": "ask", "arguments": {"question": "?"}})
    first = (await (await asgi.post(ALICE, body, headers)).answer())["result"]
    assert first["resultType"] == "input_required"
    assert await bridge.stateless.expire(now=time.monotonic() + FAR_FUTURE) == 1
    (key,) = first["inputRequests"]
    retry, _ = modern(
        "tools/call",
        {
            "name": "ask",
            "arguments": {"question": "?"},
            "requestState": first["requestState"],
            "inputResponses": {key: {"action": "decline"}},
        },
        2,
    )
    late = await asgi.post(ALICE, retry, headers)
    assert late.status == 400 and (await late.json())["error"]["code"] == -32602
    echo, echo_headers = modern("tools/call", {"name": "echo", "arguments": {"text": "still here"}}, 3)
    answer = await (await asgi.post(ALICE, echo, echo_headers)).answer()
    assert answer["result"]["structuredContent"] == {"result": "still here"}
    assert len(bridge.pool.entries) == 1, "the child survives an expired request"


@pytest.mark.requirement(req.MCP_2025_03_26_GET_STREAM)
async def test_the_get_stream_carries_what_the_child_sends_outside_requests(asgi: Asgi) -> None:
    session = await open_session(asgi, ALICE)
    stream = await asgi.call(ALICE, "GET", headers={"mcp-session-id": session, "accept": "text/event-stream"})
    assert stream.status == 200 and stream.headers["content-type"] == "text/event-stream"
    second = await asgi.call(ALICE, "GET", headers={"mcp-session-id": session, "accept": "text/event-stream"})
    assert second.status == 409
    done = await (await asgi.post(ALICE, call("notify_later", {"delay": 0.2}), {"mcp-session-id": session})).answer()
    assert done["result"]["structuredContent"] == {"result": "scheduled"}
    event = await asyncio.wait_for(anext(stream.events()), 10)
    assert event["method"] == "notifications/tools/list_changed"
    await stream.close()


@pytest.mark.requirement(req.MCP_2025_11_25_CANCELLED_NOTIFICATION)
async def test_a_cancelled_notification_reaches_the_child_and_ends_the_stream(asgi: Asgi, tmp_path: Path) -> None:
    session = await open_session(asgi, ALICE)
    marker = tmp_path / "cancelled"
    pending = await asgi.post(
        ALICE,
        call("slow", {"seconds": 60, "marker": str(marker)}, 9, {"progressToken": 1}),
        {"mcp-session-id": session},
    )
    progress = await asyncio.wait_for(anext(pending.events()), 10)
    assert progress["params"]["progressToken"] == 1
    cancel = rpc("notifications/cancelled", {"requestId": 9, "reason": "user"}, None)
    assert (await asgi.post(ALICE, cancel, {"mcp-session-id": session})).status == 202
    assert await pending.body() == b"", "a cancelled request gets no answer"
    for _ in range(200):
        if marker.exists():
            break
        await asyncio.sleep(0.05)
    assert marker.read_text() == "cancelled"


async def test_child_stderr_goes_to_the_log(asgi: Asgi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="authgate.stdio")
    session = await open_session(asgi, ALICE)
    pid = await pid_in(asgi, session)
    for _ in range(100):
        if any(f"demo server: started pid {pid}" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    assert any(r.name == "authgate.stdio" and f"started pid {pid}" in r.getMessage() for r in caplog.records)


async def test_asgi_lifespan_starts_and_stops_every_child() -> None:
    app = StdioBridge([sys.executable, str(DEMO)])
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    events.put_nowait({"type": "lifespan.startup"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    lifespan = asyncio.create_task(app({"type": "lifespan"}, events.get, send))
    await asyncio.sleep(0.1)
    assert sent == [{"type": "lifespan.startup.complete"}] and (await app.check_ready())[0]
    asgi = Asgi(app)
    pid = await pid_in(asgi, await open_session(asgi, ALICE))
    events.put_nowait({"type": "lifespan.shutdown"})
    await asyncio.wait_for(lifespan, 15)
    assert sent[-1] == {"type": "lifespan.shutdown.complete"}
    assert await gone(pid, 1.0), "shutdown returned before the child was gone"
    assert (await asgi.post(ALICE, rpc("tools/list"))).status == 503


async def test_readiness() -> None:
    app = StdioBridge(["surely-no-such-command-xyz"])
    assert (await app.check_ready()) == (False, "stdio bridge not started")
    async with app:
        ready, why = await app.check_ready()
        assert not ready and "not found" in why
        refused = await Asgi(app).post(
            ALICE,
            rpc(
                "initialize",
                {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}},
            ),
        )
        assert refused.status == 502
        assert (await refused.json())["error"]["data"]["reason"] == "stdio_server_failed_to_start"
