"""Resumable streams of 2025-11-25 sessions (gateway/stdio/resume.py), in process against
resume_server.py: the priming event, event ids, `GET` + `Last-Event-ID`, the child's ask to close
a connection, a closed connection that is not cancellation, and the bounds (resume_window)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from authgate.gateway.stdio.bridge import StdioBridge
from support import requirements as req

from .conftest import Asgi, Reply, identity, open_session, rpc

SERVER = Path(__file__).with_name("resume_server.py")
ALICE = identity("alice")
SSE = {"accept": "text/event-stream"}


@pytest.fixture
async def asgi() -> AsyncIterator[Asgi]:
    app = StdioBridge([sys.executable, str(SERVER)], resume_window=1.0, sse_retry_ms=1500)
    async with app:
        yield Asgi(app)


def call(tool: str, args: dict[str, Any], request_id: int) -> dict[str, Any]:
    return rpc(
        "tools/call", {"name": tool, "arguments": args, "_meta": {"progressToken": f"t{request_id}"}}, request_id
    )


async def events(reply: Reply, count: int | None = None) -> list[dict[str, str]]:
    """The stream's events (fields), all of them or the first `count`."""
    got: list[dict[str, str]] = []
    async for fields in reply.fields():
        got.append(fields)
        if len(got) == count:
            break
    return got


def data(event: dict[str, str]) -> Any:
    return json.loads(event["data"])


async def resume(asgi: Asgi, session: str, last: str) -> Reply:
    return await asgi.call(ALICE, "GET", headers={**SSE, "mcp-session-id": session, "last-event-id": last})


async def marked(marker: Path, seconds: float = 10.0) -> str:
    for _ in range(int(seconds / 0.05)):
        if marker.exists():
            return marker.read_text()
        await asyncio.sleep(0.05)
    return ""


@pytest.mark.requirement(req.MCP_2025_11_25_SSE_PRIMING_AND_RETRY)
@pytest.mark.requirement(req.MCP_2025_11_25_RESUME_WITH_LAST_EVENT_ID)
async def test_a_stream_the_child_closes_is_primed_and_resumed_with_last_event_id(asgi: Asgi) -> None:
    session = await open_session(asgi, ALICE)
    post = await asgi.post(ALICE, call("poll", {"retry": 50}, 7), {"mcp-session-id": session})
    assert post.headers["content-type"] == "text/event-stream"
    first = await events(post)
    # the priming event (an id, the bridge's retry, empty data), a progress notification, then the
    # child's ask to close: a retry event and the end of the connection, no answer
    assert first[0] == {"id": "1-0", "retry": "1500", "data": ""}
    assert first[1]["id"] == "1-1" and data(first[1])["params"] == {"progressToken": "t7", "progress": 1}
    assert first[2:] == [{"retry": "50"}]
    again = await events(await resume(asgi, session, "1-1"))
    assert [e["id"] for e in again] == ["1-2", "1-3"]
    assert data(again[0])["params"]["progress"] == 2
    assert data(again[1]) == {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "polled"}]}}
    # an answered stream is kept a while: a client that lost the answer too resumes from earlier
    replay = await events(await resume(asgi, session, "1-0"))
    assert [e["id"] for e in replay] == ["1-1", "1-2", "1-3"]


@pytest.mark.requirement(req.MCP_2025_11_25_DISCONNECT_IS_NOT_CANCELLATION)
async def test_a_closed_connection_is_not_cancellation(asgi: Asgi, tmp_path: Path) -> None:
    session = await open_session(asgi, ALICE)
    marker = tmp_path / "cancelled"
    post = await asgi.post(ALICE, call("wait", {"seconds": 0.5, "marker": str(marker)}, 3), {"mcp-session-id": session})
    assert [e["id"] for e in await events(post, 2)] == ["1-0", "1-1"]  # priming, progress
    await post.close()  # the client is gone; the call goes on
    later = await events(await resume(asgi, session, "1-1"))
    assert [data(e)["result"]["content"][0]["text"] for e in later] == ["waited"]
    assert not marker.exists()


@pytest.mark.requirement(req.ISSUE14_STDIO_RESUME_BOUNDS)
async def test_a_call_nobody_resumes_is_cancelled_after_the_resume_window(asgi: Asgi, tmp_path: Path) -> None:
    session = await open_session(asgi, ALICE)
    marker = tmp_path / "cancelled"
    post = await asgi.post(ALICE, call("wait", {"seconds": 60, "marker": str(marker)}, 4), {"mcp-session-id": session})
    await events(post, 1)
    await post.close()
    assert await marked(marker) == "cancelled", "resume_window (1 s) passed: the child is told notifications/cancelled"
    gone = await resume(asgi, session, "1-0")
    assert gone.status == 400 and "no stream of this session" in (await gone.json())["error"]["message"]


@pytest.mark.requirement(req.MCP_2025_11_25_CANCELLED_NOTIFICATION)
async def test_notifications_cancelled_still_cancels_a_call_whose_connection_closed(asgi: Asgi, tmp_path: Path) -> None:
    session = await open_session(asgi, ALICE)
    marker = tmp_path / "cancelled"
    post = await asgi.post(ALICE, call("wait", {"seconds": 60, "marker": str(marker)}, 5), {"mcp-session-id": session})
    await events(post, 1)
    await post.close()
    cancel = rpc("notifications/cancelled", {"requestId": 5, "reason": "user"}, None)
    assert (await asgi.post(ALICE, cancel, {"mcp-session-id": session})).status == 202
    assert await marked(marker) == "cancelled"
    assert (await resume(asgi, session, "1-0")).status == 400


@pytest.mark.requirement(req.MCP_2025_11_25_RESUME_WITH_LAST_EVENT_ID)
async def test_a_resume_takes_the_stream_over_from_a_connection_still_open(asgi: Asgi, tmp_path: Path) -> None:
    session = await open_session(asgi, ALICE)
    marker = tmp_path / "cancelled"
    post = await asgi.post(ALICE, call("wait", {"seconds": 0.5, "marker": str(marker)}, 6), {"mcp-session-id": session})
    assert len(await events(post, 1)) == 1
    taken = await resume(asgi, session, "1-0")
    # the first connection ends without the answer: what the child sent before the takeover
    # (its progress notification, on a loaded machine) may still reach it, and is replayed too
    before = await events(post)
    assert all("id" not in data(e) for e in before), "the first connection ends, unanswered"
    resumed = await events(taken)
    assert data(resumed[-1])["id"] == 6
    assert {e["id"] for e in before} <= {e["id"] for e in resumed}  # nothing after 1-0 is lost
    assert not marker.exists()


@pytest.mark.requirement(req.MCP_2025_11_25_EVENT_IDS_PER_STREAM)
async def test_event_ids_name_their_stream_and_a_resume_replays_only_that_stream(asgi: Asgi, tmp_path: Path) -> None:
    session = await open_session(asgi, ALICE)
    headers = {"mcp-session-id": session}
    one, two = [
        await asgi.post(ALICE, call("wait", {"seconds": 0.3, "marker": str(tmp_path / f"m{i}")}, i), headers)
        for i in (1, 2)
    ]
    first, second = await events(one), await events(two)
    assert [e["id"] for e in first] == ["1-0", "1-1", "1-2"] and [e["id"] for e in second] == ["2-0", "2-1", "2-2"]
    assert [data(e).get("id") for e in await events(await resume(asgi, session, "2-1"))] == [2]
    for bad in ("9-0", "1-7", "garbage", "1-1-1", "1-"):  # no such stream or event: 400, the session lives on
        assert (await resume(asgi, session, bad)).status == 400, bad
    json_only = await asgi.post(
        ALICE, call("wait", {"seconds": 0, "marker": "-"}, 3), {**headers, "accept": "application/json"}
    )
    assert (await json_only.json())["result"]["content"][0]["text"] == "waited"  # no SSE, nothing to prime


@pytest.mark.requirement(req.MCP_2026_07_28_CLOSED_STREAM_CANCELS)
async def test_an_older_client_gets_no_priming_and_a_closed_stream_cancels(asgi: Asgi, tmp_path: Path) -> None:
    init = rpc(
        "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    )
    reply = await asgi.post(ALICE, init)
    await reply.body()
    session = reply.headers["mcp-session-id"]
    marker = tmp_path / "cancelled"
    post = await asgi.post(ALICE, call("poll", {}, 8), {"mcp-session-id": session})
    first = await events(post, 1)
    assert "id" not in first[0] and data(first[0])["method"] == "notifications/progress"  # no ids, no priming
    assert data((await events(post))[-1])["id"] == 8, "the close ask is ignored: the answer comes on the POST"
    post = await asgi.post(ALICE, call("wait", {"seconds": 60, "marker": str(marker)}, 9), {"mcp-session-id": session})
    assert "id" not in (await events(post, 1))[0]  # the progress notification
    await post.close()
    assert await marked(marker) == "cancelled"
    assert (await resume(asgi, session, "1-0")).status == 200  # no resumable streams: a plain GET stream
