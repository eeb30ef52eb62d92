"""`subscriptions/listen` through the stdio bridge, in process, against watch_server.py (which
advertises tools.listChanged and resources.subscribe, and nothing else).

What must not arrive is shown by order, not by waiting: each stream is read event by event,
and the event after an un-requested notification is the next requested one."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from authgate.gateway.stdio import subscriptions as stdio_subscriptions
from authgate.gateway.stdio.bridge import StdioBridge
from support import requirements as req

from .conftest import WATCH, Asgi, Reply, identity, modern

ALICE, BOB = identity("alice"), identity("bob")
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
EVENT_TIMEOUT = 10.0


async def listen(asgi: Asgi, who: Any, request_id: Any, **wanted: Any) -> tuple[Reply, AsyncIterator[dict[str, Any]]]:
    body, headers = modern("subscriptions/listen", {"notifications": wanted}, request_id)
    reply = await asgi.post(who, body, headers)
    assert reply.status == 200 and reply.headers["content-type"] == "text/event-stream"
    return reply, reply.events()


async def next_event(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(anext(events), EVENT_TIMEOUT)


async def tool(asgi: Asgi, who: Any, name: str, **arguments: Any) -> Any:
    body, headers = modern("tools/call", {"name": name, "arguments": arguments}, 50)
    return (await (await asgi.post(who, body, headers)).answer())["result"]["structuredContent"]["result"]


@pytest.mark.requirement(req.MCP_2026_07_28_SUBSCRIPTIONS_ACK)
async def test_the_acknowledgment_comes_first_with_what_the_child_supports(watch: Asgi) -> None:
    reply, events = await listen(
        watch,
        ALICE,
        "sub-1",
        toolsListChanged=True,
        promptsListChanged=True,
        resourcesListChanged=True,
        resourceSubscriptions=["memo://a"],
    )
    ack = await next_event(events)
    assert ack == {
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {
            "notifications": {"toolsListChanged": True, "resourceSubscriptions": ["memo://a"]},
            "_meta": {SUBSCRIPTION_ID: "sub-1"},
        },
    }, "prompts and resources/list_changed: not advertised, omitted"
    await reply.close()


@pytest.mark.requirement(req.MCP_2026_07_28_SUBSCRIPTION_ID)
@pytest.mark.requirement(req.MCP_2026_07_28_ONLY_REQUESTED_TYPES)
async def test_change_notifications_reach_the_streams_that_asked_for_them(watch: Asgi) -> None:
    tools_reply, tools_stream = await listen(watch, ALICE, 7, toolsListChanged=True)
    uri_reply, uri_stream = await listen(watch, ALICE, 8, resourceSubscriptions=["memo://a"])
    await next_event(tools_stream)
    await next_event(uri_stream)

    assert await tool(watch, ALICE, "announce") == "announced"  # prompts & resources list_changed: nobody's
    assert await tool(watch, ALICE, "add_tool") == "added"  # tools/list_changed during the call
    assert await next_event(tools_stream) == {
        "jsonrpc": "2.0",
        "method": "notifications/tools/list_changed",
        "params": {"_meta": {SUBSCRIPTION_ID: 7}},
    }
    assert await tool(watch, ALICE, "touch", uri="memo://a") is True
    assert await next_event(uri_stream) == {
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {"uri": "memo://a", "_meta": {SUBSCRIPTION_ID: 8}},
    }
    assert await tool(watch, ALICE, "later", delay=0.1) == "scheduled"  # after the call: outside any request
    assert (await next_event(tools_stream))["method"] == "notifications/tools/list_changed"
    assert await tool(watch, ALICE, "touch", uri="memo://a") is True
    assert (await next_event(uri_stream))["params"]["uri"] == "memo://a", "no tools/list_changed in between"
    await tools_reply.close()
    await uri_reply.close()


@pytest.mark.requirement(req.MCP_2026_07_28_SUBSCRIPTION_CANCEL)
async def test_closing_the_stream_unsubscribes_at_the_child(watch: Asgi) -> None:
    first, events = await listen(watch, ALICE, 1, resourceSubscriptions=["memo://a", "memo://b"])
    await next_event(events)
    second, more = await listen(watch, ALICE, 2, resourceSubscriptions=["memo://b"])
    await next_event(more)
    assert await tool(watch, ALICE, "subscribed") == ["memo://a", "memo://b"]
    await first.close()
    assert await tool(watch, ALICE, "subscribed") == ["memo://b"], "memo://b: the other stream still wants it"
    await second.close()
    assert await tool(watch, ALICE, "subscribed") == []


@pytest.mark.requirement(req.MCP_2025_11_25_SESSION_HIJACKING)
async def test_a_stream_never_carries_another_callers_notifications(watch: Asgi) -> None:
    alice_reply, alice = await listen(watch, ALICE, 1, toolsListChanged=True, resourceSubscriptions=["memo://a"])
    bob_reply, bob = await listen(watch, BOB, 1, toolsListChanged=True, resourceSubscriptions=["memo://a"])
    await next_event(alice)
    await next_event(bob)
    assert await tool(watch, ALICE, "add_tool") == "added"
    assert (await next_event(alice))["method"] == "notifications/tools/list_changed"
    assert await tool(watch, BOB, "touch", uri="memo://a") is True
    assert (await next_event(bob))["method"] == "notifications/resources/updated", "not Alice's list_changed"
    assert await tool(watch, ALICE, "touch", uri="memo://a") is True
    assert (await next_event(alice))["method"] == "notifications/resources/updated"
    await alice_reply.close()
    await bob_reply.close()


async def test_a_child_crash_ends_the_stream_with_an_error(watch: Asgi) -> None:
    reply, events = await listen(watch, ALICE, "s", toolsListChanged=True)
    await next_event(events)
    body, headers = modern("tools/call", {"name": "crash", "arguments": {}}, 3)
    crashed = await watch.post(ALICE, body, headers)
    assert crashed.status == 502
    end = await next_event(events)
    assert end["id"] == "s" and end["error"]["data"]["reason"] == "stdio_server_exited"
    assert "subscriptions/listen again" in end["error"]["message"]
    assert await reply.body() == b"" and reply.ended


async def test_a_listen_stream_keeps_its_child_from_being_reaped(watch_bridge: StdioBridge, watch: Asgi) -> None:
    reply, events = await listen(watch, ALICE, 1, toolsListChanged=True)
    await next_event(events)
    assert await watch_bridge.pool.reap(now=time.monotonic() + 10**9) == 0
    await reply.close()
    assert await watch_bridge.pool.reap(now=time.monotonic() + 10**9) == 1


async def test_an_idle_stream_sends_keepalive_comments(watch: Asgi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stdio_subscriptions, "PING_INTERVAL", 0.05)
    reply, events = await listen(watch, ALICE, 1, toolsListChanged=True)
    await next_event(events)
    assert await asyncio.wait_for(reply._chunk(), EVENT_TIMEOUT) == b": keepalive\n\n"
    await reply.close()


@pytest.mark.requirement(req.MCP_2026_07_28_LISTEN_IS_SSE)
async def test_listen_requests_the_bridge_refuses(watch: Asgi) -> None:
    body, headers = modern("subscriptions/listen", {"notifications": {"toolsListChanged": True}})
    json_only = await watch.post(ALICE, body, {**headers, "accept": "application/json"})
    assert json_only.status == 406
    body, headers = modern("subscriptions/listen", {"notifications": {"resourceSubscriptions": "memo://a"}}, 2)
    bad = await watch.post(ALICE, body, headers)
    assert bad.status == 400 and (await bad.json())["error"] == {
        "code": -32602,
        "message": "Invalid params: notifications.resourceSubscriptions must be a list of URIs",
    }


@pytest.mark.requirement(req.MCP_2026_07_28_LISTEN_RESULT)
async def test_stopping_the_bridge_closes_streams_with_the_listen_result() -> None:
    app = StdioBridge([sys.executable, str(WATCH)])
    async with app:
        reply, events = await listen(Asgi(app), ALICE, 4, toolsListChanged=True)
        await next_event(events)
    end = await next_event(events)
    assert end["id"] == 4 and end["result"]["resultType"] == "complete"
    assert end["result"]["_meta"][SUBSCRIPTION_ID] == 4
    assert end["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "watch"
