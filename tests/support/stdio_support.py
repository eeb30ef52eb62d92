"""Helpers for the stdio-bridge tests: an authgate serving a stdio command, machine tokens,
the SDK client with elicitation/sampling callbacks, and raw JSON-RPC over HTTP."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
import mcp_types as types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from support.authgate_server import AuthgateServer

TESTS = Path(__file__).resolve().parents[1]
DEMO = TESTS / "integration" / "stdio_servers" / "demo_server.py"
EVERYTHING = TESTS / "node" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
DEMO_COMMAND = (sys.executable, str(DEMO))
EVERYTHING_COMMAND = ("node", str(EVERYTHING))
CALL_TIMEOUT = 60.0
LEGACY_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
MODERN = "2026-07-28"


def start_stdio_gate(workdir: Path, command: tuple[str, ...], **env: str) -> AuthgateServer:
    """`authgate serve -- COMMAND…` with identity env vars on, started and healthy."""
    server = AuthgateServer(
        workdir,
        serve_args=("--", *command),
        extra_env={"AUTHGATE_IDENTITY_HEADERS": "true", "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000", **env},
    )
    server.add_user()
    server.start()
    return server


def machine_token(server: AuthgateServer) -> tuple[str, str]:
    """(access token, client_id) of a new operator-made machine client: a caller of its own."""
    return server.machine_token("mcp", name="stdio-test")


@dataclass
class Callbacks:
    """The client side of server→client requests, recording what was asked."""

    elicitations: list[str] = field(default_factory=list)
    samplings: list[Any] = field(default_factory=list)
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)

    async def elicit(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.elicitations.append(params.message)
        if "answer" in json.dumps(getattr(params, "requested_schema", {}) or {}):
            return types.ElicitResult(action="accept", content={"answer": "bob"})
        return types.ElicitResult(action="decline")

    async def sample(self, context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        self.samplings.append(params.messages[0].content)
        return types.CreateMessageResult(
            role="assistant",
            model="test-model",
            stop_reason="endTurn",
            content=types.TextContent(type="text", text="a sampled reply"),
        )

    async def on_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.progress.append((progress, total, message))


@asynccontextmanager
async def http_client(
    server: AuthgateServer, token: str, mode: str, callbacks: Callbacks, wire: list[dict[str, Any]] | None = None
) -> AsyncIterator[Client]:
    """The SDK client on authgate's /mcp with a bearer token; `wire` collects the POSTed bodies."""

    async def record(request: httpx2.Request) -> None:
        if wire is not None and request.method == "POST":
            wire.append(json.loads(request.content))

    async with httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0), event_hooks={"request": [record]}
    ) as http:
        transport = streamable_http_client(server.mcp_url, http_client=http)
        async with Client(
            transport, mode=mode, elicitation_callback=callbacks.elicit, sampling_callback=callbacks.sample
        ) as client:
            yield client


@asynccontextmanager
async def direct_client(command: tuple[str, ...], callbacks: Callbacks) -> AsyncIterator[Client]:
    """The SDK client on the same stdio server, started directly (the reference)."""
    params = StdioServerParameters(command=command[0], args=list(command[1:]), env=dict(os.environ))
    async with Client(
        params, mode="legacy", elicitation_callback=callbacks.elicit, sampling_callback=callbacks.sample
    ) as client:
        yield client


def outcome(result: types.CallToolResult) -> tuple[Any, ...]:
    """What must be equal through the bridge and directly."""
    return (
        [c.model_dump(mode="json", exclude_none=True) for c in result.content],
        result.structured_content,
        result.is_error,
    )


def tool_view(tools: types.ListToolsResult) -> dict[str, Any]:
    return {t.name: (t.description, t.input_schema, t.output_schema) for t in tools.tools}


# -- raw JSON-RPC over HTTP --------------------------------------------------------------------


def modern_request(method: str, params: dict[str, Any] | None = None, request_id: int = 1) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}},
    }
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), "_meta": meta}}


def modern_headers(token: str, body: dict[str, Any]) -> dict[str, str]:
    headers = {
        **LEGACY_HEADERS,
        "Authorization": f"Bearer {token}",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": body["method"],
    }
    name = body["params"].get("name") or body["params"].get("uri")
    if name:
        headers["Mcp-Name"] = name
    return headers


def last_message(response: httpx.Response) -> Any:
    """The JSON-RPC answer of a POST, from a JSON body or the last SSE event."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    events = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    assert events, f"no SSE events in {response.text!r}"
    return json.loads(events[-1])


def legacy_session(server: AuthgateServer, token: str, version: str = "2025-11-25") -> str:
    """Open a stateful session by hand at `version`; returns its Mcp-Session-Id."""
    headers = {**LEGACY_HEADERS, "Authorization": f"Bearer {token}"}
    r = httpx.post(
        server.mcp_url,
        headers=headers,
        timeout=30,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": version,
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        },
    )
    assert r.status_code == 200, r.text
    session = r.headers["mcp-session-id"]
    r = httpx.post(
        server.mcp_url,
        headers={**headers, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"},
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        timeout=10,
    )
    assert r.status_code == 202, r.text
    return session


def legacy_call(
    server: AuthgateServer, token: str, session: str, tool: str, args: dict[str, Any], request_id: int = 2
) -> httpx.Response:
    headers = {
        **LEGACY_HEADERS,
        "Authorization": f"Bearer {token}",
        "Mcp-Session-Id": session,
        "MCP-Protocol-Version": "2025-11-25",
    }
    return httpx.post(
        server.mcp_url,
        headers=headers,
        timeout=CALL_TIMEOUT,
        json={"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": args}},
    )


def pid_of(answer: Any) -> int:
    return int(answer["result"]["structuredContent"]["pid"])


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once process `pid` no longer exists (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
