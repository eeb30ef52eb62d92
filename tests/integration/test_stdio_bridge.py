"""`authgate serve -- CMD ARGS…`: a stdio MCP server behind the guard, through the stdio bridge
(issue 3, done-when 2), with a token from the embedded AS (client_credentials, for a machine
client made with `authgate clients add`).

The `mcp` 2.3.0 SDK client gets the same tools/list and tools/call results through authgate
as it gets from the stdio server started directly, including the server→client round trips
(elicitation, sampling) and progress notifications:
- legacy (`initialize`, sessions): the round trips travel over SSE and POSTed responses;
- 2026-07-28 (`server/discover`, stateless): the bridge turns them into InputRequiredResults
  and the client retries with `inputResponses` (docs/gateway-stdio.md).

Two stdio servers: tests/integration/stdio_servers/demo_server.py (SDK `MCPServer`) and
npm `@modelcontextprotocol/server-everything` (tests/node).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.needs import unavailable
from support.stdio_support import (
    CALL_TIMEOUT,
    DEMO_COMMAND,
    EVERYTHING,
    EVERYTHING_COMMAND,
    Callbacks,
    direct_client,
    http_client,
    machine_token,
    outcome,
    start_stdio_gate,
    tool_view,
)

MODES = {"legacy": ("legacy", "2025-11-25"), "2026-07-28": ("auto", "2026-07-28")}


@pytest.fixture(scope="module")
def demo_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    # the bridge's own InputRequiredResults: demo_server's tools ask with ctx.elicit (not at 2026-07-28)
    server = start_stdio_gate(
        tmp_path_factory.mktemp("stdio-demo"), DEMO_COMMAND, AUTHGATE_UPSTREAM_STDIO_PROTOCOL="2025-11-25"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def everything_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    if not EVERYTHING.is_file() or shutil.which("node") is None:
        unavailable("node or npm @modelcontextprotocol/server-everything is missing (run `npm ci` in tests/node)")
    server = start_stdio_gate(tmp_path_factory.mktemp("stdio-everything"), EVERYTHING_COMMAND)
    yield server
    server.stop()


async def _demo_session(client: Any, callbacks: Callbacks) -> dict[str, Any]:
    tools = await client.list_tools()
    return {
        "tools": tool_view(tools),
        "echo": outcome(await client.call_tool("echo", {"text": "héllo"})),
        "progress": outcome(await client.call_tool("progress", {"steps": 3}, progress_callback=callbacks.on_progress)),
        "ask": outcome(await client.call_tool("ask", {"question": "Your name?"})),
        "sample": outcome(await client.call_tool("sample", {"prompt": "say hi"})),
        "progress_seen": list(callbacks.progress),
        "elicitations": list(callbacks.elicitations),
    }


@pytest.mark.requirement(req.MCP_2025_11_25_SERVER_REQUESTS_OVER_SSE)
@pytest.mark.requirement(req.MCP_2026_07_28_MRTR)
@pytest.mark.parametrize("mode_id", list(MODES))
async def test_demo_server_through_the_bridge_matches_direct(demo_gate: AuthgateServer, mode_id: str) -> None:
    token, _ = machine_token(demo_gate)
    direct_cb, gate_cb = Callbacks(), Callbacks()
    wire: list[dict[str, Any]] = []
    with anyio.fail_after(CALL_TIMEOUT):
        async with direct_client(DEMO_COMMAND, direct_cb) as direct:
            expected = await _demo_session(direct, direct_cb)
        async with http_client(demo_gate, token, MODES[mode_id][0], gate_cb, wire) as client:
            assert client.protocol_version == MODES[mode_id][1]
            got = await _demo_session(client, gate_cb)

    assert got == expected
    assert got["ask"][1] == {"result": "answer: bob"}
    assert got["sample"][1] == {"result": "model said: a sampled reply"}
    assert [p[0] for p in got["progress_seen"]] == [1.0, 2.0, 3.0]
    calls = [m for m in wire if m.get("method") == "tools/call"]
    if mode_id == "legacy":
        assert any("result" in m and "method" not in m for m in wire), "no POSTed response to the child's request"
    else:
        assert "initialize" not in [m.get("method") for m in wire]
        retries = [m for m in calls if "inputResponses" in m["params"]]
        assert {m["params"]["name"] for m in retries} == {"ask", "sample"}
        assert all(isinstance(m["params"]["requestState"], str) for m in retries)


@pytest.mark.node
@pytest.mark.requirement(req.MCP_2025_11_25_SERVER_REQUESTS_OVER_SSE)
@pytest.mark.parametrize("mode_id", list(MODES))
async def test_server_everything_through_the_bridge_matches_direct(
    everything_gate: AuthgateServer, mode_id: str
) -> None:
    token, _ = machine_token(everything_gate)
    direct_cb, gate_cb = Callbacks(), Callbacks()

    async def session(client: Any, cb: Callbacks) -> dict[str, Any]:
        tools = tool_view(await client.list_tools())
        long_run = await client.call_tool(
            "trigger-long-running-operation", {"duration": 1, "steps": 2}, progress_callback=cb.on_progress
        )
        sampled = await client.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 10})
        return {
            "tools": tools,
            "echo": outcome(await client.call_tool("echo", {"message": "hi"})),
            "long": outcome(long_run),
            "sample": outcome(sampled),
            "progress": [p[0] for p in cb.progress],
        }

    with anyio.fail_after(CALL_TIMEOUT):
        async with direct_client(EVERYTHING_COMMAND, direct_cb) as direct:
            expected = await session(direct, direct_cb)
        async with http_client(everything_gate, token, MODES[mode_id][0], gate_cb) as client:
            got = await session(client, gate_cb)

    assert "trigger-sampling-request" in got["tools"]
    assert got == expected
    assert got["progress"] == [1.0, 2.0]
    assert len(gate_cb.samplings) == 1 and "a sampled reply" in str(got["sample"])
