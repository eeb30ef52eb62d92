"""Upstream down or silent (issue 3, Done-when 4): the client gets a clear JSON-RPC error
with 502 / 504, the gateway stays up (`/health` answers meanwhile), `/health/ready` says
why, and everything works again once the upstream is back."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from support import requirements as req
from support.ports import free_port
from support.upstream_app import build_upstream

from .conftest import serve_in_thread, service_token, start_gateway
from .mcp_wire import mcp_client, modern_headers, modern_request


@contextmanager
def silent_upstream() -> Iterator[int]:
    """A TCP server that accepts connections and reads, but never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        listener.close()


def _call(token: str, request_id: int = 3) -> tuple[dict[str, object], dict[str, str]]:
    body = modern_request(request_id, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
    return body, modern_headers(token, "tools/call", "echo")


@pytest.mark.requirement(req.ISSUE3_UPSTREAM_DOWN_502)
async def test_connection_refused_is_502_and_the_gateway_recovers(tmp_path: Path) -> None:
    port = free_port()
    gateway = start_gateway(tmp_path, f"http://127.0.0.1:{port}/mcp")
    try:
        token = service_token(gateway)
        body, headers = _call(token)
        async with httpx.AsyncClient(timeout=15) as http:
            r = await http.post(gateway.mcp_url, json=body, headers=headers)
            assert r.status_code == 502, r.text
            answer = r.json()
            assert answer["id"] == 3 and answer["error"]["code"] == -32603
            assert "unreachable" in answer["error"]["message"] and str(port) in answer["error"]["message"]
            assert answer["error"]["data"] == {"source": "authgate", "reason": "upstream_unavailable"}
            assert (await http.get(gateway.url + "/health")).status_code == 200
            ready = await http.get(gateway.url + "/health/ready")
            assert ready.status_code == 503 and "unreachable" in ready.json()["upstream"]

            upstream = build_upstream(stateless=True)
            with serve_in_thread(upstream.app, port):
                async with mcp_client(gateway.mcp_url, token, "auto") as client:
                    result = await client.call_tool("echo", {"text": "back"})
                assert result.content[0].text == "back"  # type: ignore[union-attr]
                assert (await http.get(gateway.url + "/health/ready")).status_code == 200
    finally:
        gateway.stop()


@pytest.mark.requirement(req.ISSUE3_SILENT_UPSTREAM_504)
async def test_a_silent_upstream_is_504_after_the_first_byte_timeout(tmp_path: Path) -> None:
    with silent_upstream() as port:
        gateway = start_gateway(tmp_path, f"http://127.0.0.1:{port}/mcp", AUTHGATE_UPSTREAM_FIRST_BYTE_TIMEOUT="1")
        try:
            token = service_token(gateway)
            body, headers = _call(token, 8)
            async with httpx.AsyncClient(timeout=15) as http:
                answers: list[httpx.Response] = []
                health: list[float] = []
                started = time.monotonic()
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        answers.append(await http.post(gateway.mcp_url, json=body, headers=headers))

                    tg.start_soon(call)
                    await anyio.sleep(0.3)
                    t = time.monotonic()
                    assert (await http.get(gateway.url + "/health")).status_code == 200
                    health.append(time.monotonic() - t)
                    assert not answers, "answered before the timeout"
                elapsed = time.monotonic() - started
            r = answers[0]
            assert r.status_code == 504, r.text
            assert r.json()["id"] == 8 and r.json()["error"]["code"] == -32603
            assert "did not start answering within 1 s" in r.json()["error"]["message"]
            assert 0.9 <= elapsed < 5.0, elapsed
            assert health[0] < 0.5, "the gateway stalled while the upstream was silent"
        finally:
            gateway.stop()


async def _open_tool_stream(http: httpx.AsyncClient, url: str, token: str, label: str) -> httpx.Response:
    body = modern_request(9, "tools/call", {"name": "wait_for_gate", "arguments": {"label": label}})
    body["params"]["_meta"]["progressToken"] = label
    request = http.build_request("POST", url, json=body, headers=modern_headers(token, "tools/call", "wait_for_gate"))
    response = await http.send(request, stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return response


@pytest.mark.requirement(req.ISSUE3_SEPARATE_TIMEOUTS)
async def test_a_streaming_tool_outlives_the_first_byte_timeout_but_not_silence(tmp_path: Path) -> None:
    upstream = build_upstream(stateless=True)
    with serve_in_thread(upstream.app) as base:
        gateway = start_gateway(
            tmp_path, base + "/mcp", AUTHGATE_UPSTREAM_FIRST_BYTE_TIMEOUT="1", AUTHGATE_UPSTREAM_IDLE_TIMEOUT="2"
        )
        try:
            token = service_token(gateway)
            async with httpx.AsyncClient(timeout=15) as http:
                # Talks within the idle limit: lives past the first-byte timeout.
                r = await _open_tool_stream(http, gateway.mcp_url, token, "long")
                lines = r.aiter_lines()
                with anyio.fail_after(10):
                    async for line in lines:
                        if "notifications/progress" in line:
                            break
                await anyio.sleep(1.5)
                upstream.gate("long").set()
                with anyio.fail_after(10):
                    rest = [line async for line in lines]
                await r.aclose()
                assert any("long: released" in line for line in rest), rest

                # Silent for longer than the idle limit: the gateway ends the stream and the call.
                r = await _open_tool_stream(http, gateway.mcp_url, token, "silent")
                started = time.monotonic()
                with anyio.fail_after(10):
                    seen = [line async for line in r.aiter_lines()]
                await r.aclose()
                assert 1.5 <= time.monotonic() - started < 8
                assert any("notifications/progress" in line for line in seen)
                assert not any("released" in line for line in seen)
            with anyio.fail_after(10):
                while "silent" not in upstream.cancelled:
                    await anyio.sleep(0.05)
        finally:
            gateway.stop()
