"""Through the gateway with the official `mcp` SDK client (issue 3, Done-when 1 and 3).

An `mcp` SDK `MCPServer` runs stateful and stateless on loopback; authgate runs as a
subprocess with `--upstream` pointing at it. The SDK `Client` talks to both, in legacy mode
(`initialize`, sessions, GET stream, DELETE) and in 2026-07-28 mode (`server/discover`,
stateless, `Mcp-Method`/`Mcp-Name`/`Mcp-Param-*` headers), and must get the same answers
through the gateway as directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from mcp_types import CallToolResult

from support import requirements as req
from support.upstream_app import Upstream, build_upstream

from .conftest import serve_in_thread, service_token, start_gateway, user_token
from .mcp_wire import MODES, initialize_request, legacy_headers, mcp_client, modern_headers, modern_request

KINDS = {"stateful": False, "stateless": True}
WAIT = 15.0


@pytest.fixture(scope="module")
def upstreams(module_stack: Any) -> dict[str, tuple[Upstream, str]]:
    found = {}
    for kind, stateless in KINDS.items():
        upstream = build_upstream(stateless=stateless)
        found[kind] = (upstream, module_stack.enter_context(serve_in_thread(upstream.app)) + "/mcp")
    return found


@pytest.fixture(scope="module")
def gateways(
    upstreams: dict[str, tuple[Upstream, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    servers = {kind: start_gateway(tmp_path_factory.mktemp(f"gw-{kind}"), url) for kind, (_, url) in upstreams.items()}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def tokens(gateways: dict[str, Any]) -> dict[str, str]:
    return {kind: service_token(server) for kind, server in gateways.items()}


def _result(result: CallToolResult) -> dict[str, Any]:
    return result.model_dump(mode="json", exclude_none=True)


async def _session(url: str, token: str | None, mode: str) -> dict[str, Any]:
    """Everything a client sees of the upstream in one connection."""
    with anyio.fail_after(WAIT * 2):
        async with mcp_client(url, token, mode) as client:
            tools = await client.list_tools()
            return {
                "protocol_version": client.protocol_version,
                "tools": [t.model_dump(mode="json", exclude_none=True) for t in tools.tools],
                "echo": _result(await client.call_tool("echo", {"text": "héllo, gateway"})),
                # in 2026-07-28 mode the client mirrors `region` into Mcp-Param-Region
                "in_region": _result(await client.call_tool("in_region", {"region": "eu-west", "query": "q"})),
            }


@pytest.mark.requirement(req.ISSUE3_SAME_RESULTS)
@pytest.mark.parametrize("mode_id", list(MODES))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_tools_list_and_call_are_the_same_through_the_gateway(
    upstreams: dict[str, tuple[Upstream, str]],
    gateways: dict[str, Any],
    tokens: dict[str, str],
    kind: str,
    mode_id: str,
) -> None:
    mode, version = MODES[mode_id]
    direct = await _session(upstreams[kind][1], None, mode)
    through = await _session(gateways[kind].mcp_url, tokens[kind], mode)
    assert direct["protocol_version"] == version
    # authgate's policy layer marks each listed tool with the scopes it needs (per-tool
    # `securitySchemes`, for ChatGPT); everything else must be the upstream's, untouched.
    for tool in through["tools"]:
        meta = tool.pop("meta")
        assert meta.pop("securitySchemes") == [{"type": "oauth2", "scopes": ["mcp"]}]
        if meta:
            tool["meta"] = meta
    assert through == direct
    assert through["echo"]["content"][0]["text"] == "héllo, gateway"
    assert through["in_region"]["content"][0]["text"] == "eu-west:q"


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_FLOW)
@pytest.mark.parametrize("mode_id", list(MODES))
async def test_sdk_client_signs_in_and_reaches_the_upstream(gateways: dict[str, Any], mode_id: str) -> None:
    server = gateways["stateful"]
    token = user_token(server)
    async with mcp_client(server.mcp_url, token, MODES[mode_id][0]) as client:
        assert client.protocol_version == MODES[mode_id][1]
        result = await client.call_tool("echo", {"text": "signed in"})
    assert _result(result)["content"][0]["text"] == "signed in"
    async with httpx.AsyncClient() as http:  # and without a token: the guard's 401, not the upstream
        r = await http.post(
            server.mcp_url,
            json=modern_request(1, "tools/list"),
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert r.status_code == 401 and "resource_metadata=" in r.headers["www-authenticate"]


@pytest.mark.requirement(req.ISSUE3_SSE_INCREMENTAL)
@pytest.mark.parametrize("mode_id", list(MODES))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_progress_reaches_the_client_while_the_tool_is_still_blocked(
    upstreams: dict[str, tuple[Upstream, str]],
    gateways: dict[str, Any],
    tokens: dict[str, str],
    kind: str,
    mode_id: str,
) -> None:
    upstream = upstreams[kind][0]
    label = f"progress-{kind}-{mode_id}"
    progressed = anyio.Event()
    messages: list[str | None] = []
    results: list[CallToolResult] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message)
        progressed.set()

    async with mcp_client(gateways[kind].mcp_url, tokens[kind], MODES[mode_id][0]) as client:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                results.append(await client.call_tool("wait_for_gate", {"label": label}, progress_callback=on_progress))

            tg.start_soon(call)
            with anyio.fail_after(WAIT):
                await progressed.wait()
            # The notification arrived while the tool is still waiting on the gate.
            assert not upstream.gate(label).is_set() and results == []
            assert messages == [f"{label}: waiting"]
            upstream.gate(label).set()
    assert _result(results[0])["content"][0]["text"] == f"{label}: released"


@pytest.mark.requirement(req.MCP_2026_07_28_CLOSED_STREAM_CANCELS)
async def test_client_disconnect_cancels_the_upstream_request(
    upstreams: dict[str, tuple[Upstream, str]],
    gateways: dict[str, Any],
    tokens: dict[str, str],
) -> None:
    upstream = upstreams["stateless"][0]
    label = "disconnect"
    body = modern_request(7, "tools/call", {"name": "wait_for_gate", "arguments": {"label": label}})
    body["params"]["_meta"]["progressToken"] = "p-7"
    headers = modern_headers(tokens["stateless"], "tools/call", "wait_for_gate")
    async with httpx.AsyncClient(timeout=WAIT) as http:
        async with http.stream("POST", gateways["stateless"].mcp_url, json=body, headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["x-accel-buffering"] == "no"
            with anyio.fail_after(WAIT):
                async for line in r.aiter_lines():
                    if "notifications/progress" in line:
                        break
        # Leaving the block closes the connection mid-stream.
    with anyio.fail_after(WAIT):
        while label not in upstream.cancelled:
            await anyio.sleep(0.05)
    assert not upstream.gate(label).is_set()


@pytest.mark.requirement(req.ISSUE3_HEALTH_READY)
async def test_health_ready_names_the_upstream(gateways: dict[str, Any]) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.get(gateways["stateless"].url + "/health/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "store": "ok", "upstream": "ok"}


@pytest.mark.requirement(req.ISSUE19_GATEWAY_CANCEL_ON_DISCONNECT)
async def test_an_sdk_server_stops_the_tool_of_a_client_that_disconnected(
    upstreams: dict[str, tuple[Upstream, str]], gateways: dict[str, Any], tokens: dict[str, str]
) -> None:
    """The SDK's 2025-era server keeps running a tool whose client went away (a closed
    connection is not cancellation there); through authgate it stops it: authgate sends
    notifications/cancelled in the session (gateway/http/cancellation.py)."""
    upstream, _ = upstreams["stateful"]
    url, token = gateways["stateful"].mcp_url, tokens["stateful"]
    async with httpx.AsyncClient(timeout=WAIT) as http:
        r = await http.post(url, json=initialize_request(), headers=legacy_headers(token))
        headers = legacy_headers(token, r.headers["mcp-session-id"])
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(url, json=initialized, headers=headers)).status_code == 202
        params = {"name": "wait_for_gate", "arguments": {"label": "gone"}, "_meta": {"progressToken": "p"}}
        body = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}
        stream = await http.send(http.build_request("POST", url, json=body, headers=headers), stream=True)
        with anyio.fail_after(WAIT):
            async for line in stream.aiter_lines():
                if "notifications/progress" in line:
                    break
        await stream.aclose()  # the client goes away before the answer
    with anyio.fail_after(WAIT):
        while "gone" not in upstream.cancelled:
            await anyio.sleep(0.05)
