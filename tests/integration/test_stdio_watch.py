"""2026-07-28 `Mcp-Param-*` checks and `subscriptions/listen` on the wire, against
`authgate serve -- python watch_server.py` with real tokens: the SDK client (its own header
mirroring, `Client.listen()`) and raw HTTP for what a conforming client never sends.
watch_server.py advertises tools.listChanged and resources.subscribe only, and its `route`
tool mirrors `region` / `priority` into `Mcp-Param-Region` / `Mcp-Param-Priority`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.subscriptions import ResourceUpdated, SubscriptionLost, ToolsListChanged
from mcp.shared.exceptions import MCPError

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.stdio_support import (
    CALL_TIMEOUT,
    Callbacks,
    http_client,
    last_message,
    machine_token,
    modern_headers,
    modern_request,
    start_stdio_gate,
)

WATCH_COMMAND = (sys.executable, str(Path(__file__).resolve().parent / "stdio_servers" / "watch_server.py"))


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = start_stdio_gate(tmp_path_factory.mktemp("stdio-watch"), WATCH_COMMAND)
    yield server
    server.stop()


def _call(
    gate: AuthgateServer, token: str, tool: str, arguments: dict[str, Any], request_id: int = 1, **params: str
) -> httpx.Response:
    body = modern_request("tools/call", {"name": tool, "arguments": arguments}, request_id)
    headers = {**modern_headers(token, body), **{f"Mcp-Param-{k}": v for k, v in params.items()}}
    return httpx.post(gate.mcp_url, headers=headers, json=body, timeout=CALL_TIMEOUT)


def _result(response: httpx.Response) -> Any:
    return last_message(response)["result"]["structuredContent"]["result"]


@pytest.mark.requirement(req.MCP_2026_07_28_PARAM_HEADERS_MATCH)
def test_mismatched_param_headers_never_reach_the_server(gate: AuthgateServer) -> None:
    """A caller that never listed the tools: the bridge listed them when it started the child."""
    token, _ = machine_token(gate)
    arguments = {"region": "us-west1", "priority": 3, "query": "q"}
    for params, says in [
        ({"Priority": "3"}, "Mcp-Param-Region header is missing"),
        ({"Region": "eu-west1", "Priority": "3"}, "does not match"),
        ({"Region": "=?base64?%%%?=", "Priority": "3"}, "malformed"),
    ]:
        refused = _call(gate, token, "route", arguments, 7, **params)
        assert refused.status_code == 400, refused.text
        error = refused.json()
        assert error["id"] == 7 and error["error"]["code"] == -32020 and says in error["error"]["message"]
    assert _result(_call(gate, token, "calls", {})) == 0, "no refused call reached the server"
    accepted = _call(gate, token, "route", arguments, Region="us-west1", Priority="3")
    assert _result(accepted)["calls"] == 1


@pytest.mark.requirement(req.MCP_2026_07_28_PARAM_HEADERS_MATCH)
async def test_the_sdk_clients_mirrored_headers_pass(gate: AuthgateServer) -> None:
    token, _ = machine_token(gate)
    wire: list[dict[str, Any]] = []
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(gate, token, "auto", Callbacks(), wire) as client:
            names, cursor = set(), None
            while True:  # watch_server pages its tools; the SDK learns x-mcp-header from each page
                page = await client.list_tools(cursor=cursor)
                names |= {t.name for t in page.tools}
                if not (cursor := page.next_cursor):
                    break
            assert "route" in names
            result = await client.call_tool("route", {"region": "Zürich", "priority": 5, "query": "q"})
    assert result.structured_content is not None
    assert result.structured_content["result"]["arguments"]["region"] == "Zürich"
    assert wire[0]["method"] == "server/discover", "a 2026-07-28 client"
    # the bridge refuses a call without the headers (test above): this one carried them, base64 for "Zürich"


@pytest.mark.requirement(req.MCP_2026_07_28_SUBSCRIPTIONS_ACK)
@pytest.mark.requirement(req.MCP_2026_07_28_ONLY_REQUESTED_TYPES)
async def test_sdk_listen_gets_the_honored_subset_and_the_changes(gate: AuthgateServer) -> None:
    token, _ = machine_token(gate)
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(gate, token, "auto", Callbacks()) as client:
            async with client.listen(
                tools_list_changed=True, prompts_list_changed=True, resource_subscriptions=["memo://a"]
            ) as sub:
                assert sub.honored.tools_list_changed is True and sub.honored.prompts_list_changed is None
                assert sub.honored.resource_subscriptions == ["memo://a"]
                await client.call_tool("announce", {})  # prompts/list_changed: requested, not supported
                await client.call_tool("add_tool", {})
                assert await anext(sub) == ToolsListChanged()
                await client.call_tool("touch", {"uri": "memo://a"})
                assert await anext(sub) == ResourceUpdated(uri="memo://a")
            assert await _subscribed_soon(client, []), "closing the stream unsubscribed at the child"


async def _subscribed_soon(client: Any, expected: list[str]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (await client.call_tool("subscribed", {})).structured_content == {"result": expected}:
            return True
        await anyio.sleep(0.05)
    return False


async def test_a_crash_ends_the_sdk_subscription(gate: AuthgateServer) -> None:
    token, _ = machine_token(gate)
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(gate, token, "auto", Callbacks()) as client:
            async with client.listen(tools_list_changed=True) as sub:
                with pytest.raises(MCPError):
                    await client.call_tool("crash", {})
                with pytest.raises(SubscriptionLost):
                    await anext(sub)


@pytest.mark.requirement(req.MCP_2026_07_28_SUBSCRIPTION_ID)
def test_raw_listen_stream_is_tagged_and_per_caller(gate: AuthgateServer) -> None:
    (alice, _), (bob, _) = machine_token(gate), machine_token(gate)
    body = modern_request("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, 41)
    json_only = httpx.post(
        gate.mcp_url, json=body, timeout=10, headers={**modern_headers(alice, body), "Accept": "application/json"}
    )
    assert json_only.status_code == 406
    with (
        httpx.stream(
            "POST", gate.mcp_url, headers=modern_headers(alice, body), json=body, timeout=CALL_TIMEOUT
        ) as alices,
        httpx.stream("POST", gate.mcp_url, headers=modern_headers(bob, body), json=body, timeout=CALL_TIMEOUT) as bobs,
    ):
        alice_events, bob_events = _events(alices), _events(bobs)
        assert next(alice_events)["method"] == "notifications/subscriptions/acknowledged"
        assert next(bob_events)["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 41
        assert _result(_call(gate, bob, "later", {"delay": 0.1})) == "scheduled"
        assert next(bob_events) == {
            "jsonrpc": "2.0",
            "method": "notifications/tools/list_changed",
            "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": 41}},
        }
        assert _result(_call(gate, alice, "add_tool", {})) == "added"
        assert next(alice_events)["method"] == "notifications/tools/list_changed"
        assert _result(_call(gate, bob, "later", {"delay": 0.1})) == "scheduled"
        assert next(bob_events)["method"] == "notifications/tools/list_changed"


def _events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data:"):
            yield json.loads(line[5:])
