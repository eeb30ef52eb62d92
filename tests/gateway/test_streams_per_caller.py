"""Open streams per caller (gateway/streams.py, issue 19): past `max_streams_per_caller` a
caller's new stream is 429 with a JSON-RPC error and `Retry-After`, while another caller's
stream opens; a closed stream frees its seat. The same layer in front of an HTTP upstream
(standalone GET streams) and the stdio bridge (`subscriptions/listen`), over real sockets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from support import requirements as req
from support.stdio_support import DEMO, start_stdio_gate

from .conftest import serve_in_thread, start_gateway

CAP = 3
WATCH = DEMO.with_name("watch_server.py")
FREED_WITHIN = 10.0  # seconds for a closed stream's seat to come back


def endless_upstream() -> Starlette:
    """GET /mcp: an SSE stream of keep-alive comments that never ends by itself."""

    async def mcp(request: Request) -> Response:
        if request.method == "POST":
            return JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {}})

        async def comments() -> AsyncIterator[bytes]:
            while True:
                yield b": keepalive\n\n"
                await asyncio.sleep(0.5)

        return StreamingResponse(comments(), media_type="text/event-stream")

    return Starlette(routes=[Route("/mcp", mcp, methods=["GET", "POST"])])


async def _open(stack: AsyncExitStack, http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    response = await http.send(request, stream=True)
    stack.push_async_callback(response.aclose)
    return response


def _get(http: httpx.AsyncClient, url: str, token: str) -> httpx.Request:
    return http.build_request("GET", url, headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})


async def _refused(response: httpx.Response, request_id: Any) -> None:
    assert response.status_code == 429, response.status_code
    assert response.headers["retry-after"] == "5"
    body = json.loads(await response.aread())
    assert body["id"] == request_id and body["error"]["code"] == -32603
    assert body["error"]["data"] == {"source": "authgate", "reason": "too_many_streams"}
    assert "max_streams_per_caller" in body["error"]["message"]


async def _reopened(stack: AsyncExitStack, http: httpx.AsyncClient, make: Any) -> httpx.Response:
    """The stream `make()` builds, retried until its seat is free (bounded)."""
    deadline = time.monotonic() + FREED_WITHIN
    while True:
        response = await http.send(make(), stream=True)
        if response.status_code != 429 or time.monotonic() > deadline:
            stack.push_async_callback(response.aclose)
            return response
        await response.aclose()
        await asyncio.sleep(0.1)


@pytest.mark.requirement(req.ISSUE19_STREAMS_PER_CALLER)
async def test_get_streams_past_the_cap_are_429_per_caller_http_upstream(tmp_path: Path) -> None:
    with serve_in_thread(endless_upstream()) as base:
        gateway = start_gateway(tmp_path, base + "/mcp", AUTHGATE_MAX_STREAMS_PER_CALLER=str(CAP))
        try:
            alice, _ = gateway.machine_token("mcp", name="streams-alice", scope="mcp")
            bob, _ = gateway.machine_token("mcp", name="streams-bob", scope="mcp")
            async with httpx.AsyncClient(timeout=10) as http, AsyncExitStack() as stack:
                held = [await _open(stack, http, _get(http, gateway.mcp_url, alice)) for _ in range(CAP)]
                assert all(r.status_code == 200 for r in held)
                over = await _open(stack, http, _get(http, gateway.mcp_url, alice))
                await _refused(over, None)
                other = await _open(stack, http, _get(http, gateway.mcp_url, bob))  # bob's seats are his own
                assert other.status_code == 200 and other.headers["content-type"].startswith("text/event-stream")

                await held.pop().aclose()  # one of alice's streams ends: its seat comes back
                again = await _reopened(stack, http, lambda: _get(http, gateway.mcp_url, alice))
                assert again.status_code == 200
            assert "Traceback" not in gateway.logs()
        finally:
            gateway.stop()


def _listen(http: httpx.AsyncClient, url: str, token: str, request_id: str) -> httpx.Request:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "streams-test", "version": "1"},
    }
    body = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": True}, "_meta": meta},
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "subscriptions/listen",
    }
    return http.build_request("POST", url, json=body, headers=headers)


@pytest.mark.requirement(req.ISSUE19_STREAMS_PER_CALLER)
async def test_listen_streams_past_the_cap_are_429_per_caller_stdio(tmp_path: Path) -> None:
    import sys

    gateway = start_stdio_gate(tmp_path, (sys.executable, str(WATCH)), AUTHGATE_MAX_STREAMS_PER_CALLER=str(CAP))
    try:
        alice, _ = gateway.machine_token("mcp", name="listen-alice", scope="mcp")
        bob, _ = gateway.machine_token("mcp", name="listen-bob", scope="mcp")
        async with httpx.AsyncClient(timeout=30) as http, AsyncExitStack() as stack:
            held = [await _open(stack, http, _listen(http, gateway.mcp_url, alice, f"listen-{i}")) for i in range(CAP)]
            assert all(r.status_code == 200 for r in held), [r.status_code for r in held]
            assert all(r.headers["content-type"].startswith("text/event-stream") for r in held)
            await _refused(
                await _open(stack, http, _listen(http, gateway.mcp_url, alice, "one-too-many")), "one-too-many"
            )
            other = await _open(stack, http, _listen(http, gateway.mcp_url, bob, "bob-1"))
            assert other.status_code == 200

            await held.pop().aclose()
            again = await _reopened(stack, http, lambda: _listen(http, gateway.mcp_url, alice, "listen-again"))
            assert again.status_code == 200
        assert "Traceback" not in gateway.logs()
    finally:
        gateway.stop()
