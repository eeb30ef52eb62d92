"""A stop drains (issue 19, Done when 7): SIGTERM to `authgate serve` with 8 calls in flight,
in front of a stdio server and of a Streamable HTTP upstream. The calls shorter than the
drain time end with their results, the others with a JSON-RPC error for their id ("shutting
down", retryable), no traceback reaches the log, no child is left behind and the process
exits with status 0."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.inflight import InFlight
from support.stdio_support import (
    DEMO_COMMAND,
    LEGACY_HEADERS,
    legacy_session,
    machine_token,
    modern_headers,
    modern_request,
    start_stdio_gate,
    wait_gone,
)
from support.upstream_app import build_upstream

DRAIN = {"AUTHGATE_SHUTDOWN_DRAIN_SECONDS": "3", "AUTHGATE_SHUTDOWN_TIMEOUT": "3"}
EXIT_WAIT = 30.0


def _stop(server: AuthgateServer) -> int:
    """SIGTERM, and the exit status (bounded)."""
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=EXIT_WAIT)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError(f"authgate did not exit within {EXIT_WAIT} s of SIGTERM") from None


def _assert_shutting_down(answer: dict[str, Any], request_id: Any) -> None:
    assert answer["id"] == request_id, answer
    error = answer["error"]
    assert error["code"] == -32603 and "shutting down" in error["message"], error
    assert error["data"] == {"source": "authgate", "reason": "shutting_down", "retryable": True}


def _assert_clean_log(server: AuthgateServer) -> None:
    logs = server.logs()
    assert "Traceback" not in logs and "CancelledError" not in logs, logs
    assert "Exception in ASGI application" not in logs, logs
    assert "still running after the 3 s drain time answered 'shutting down'" in logs, logs


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
def test_sigterm_drains_stdio_calls(tmp_path: Path) -> None:
    server = start_stdio_gate(tmp_path, DEMO_COMMAND, **DRAIN)
    try:
        legacy_token, _ = machine_token(server)
        modern_token, _ = server.machine_token("mcp", name="stdio-drain-modern")
        session = legacy_session(server, legacy_token)
        marker = str(tmp_path / "unused-marker")
        warm = []  # four children of the stateless caller, started before the calls that count
        for i in range(4):
            body = modern_request("tools/call", {"name": "slow", "arguments": {"seconds": 0.5, "marker": marker}}, i)
            warm.append(InFlight(server.mcp_url, modern_headers(modern_token, body), body))
        for call in warm:
            call.start()
        assert all(call.answer()["result"]["content"][0]["text"] == "slept" for call in warm)
        calls: list[tuple[InFlight, int, bool]] = []  # (call, its id, shorter than the drain)
        for i in range(8):
            short = i % 2 == 0
            args = {"name": "slow", "arguments": {"seconds": 2 if short else 60, "marker": marker}}
            request_id = 100 + i
            if i < 4:  # a stateful session's calls: one child answers them all
                headers = {
                    **LEGACY_HEADERS,
                    "Authorization": f"Bearer {legacy_token}",
                    "Mcp-Session-Id": session,
                    "MCP-Protocol-Version": "2025-11-25",
                }
                args["_meta"] = {"progressToken": f"p{i}"}  # the progress opens the SSE stream at once
                body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": args}
            else:  # 2026-07-28 calls: a child each
                body = modern_request("tools/call", args, request_id=request_id)
                body["params"]["_meta"]["progressToken"] = f"p{i}"
                headers = modern_headers(modern_token, body)
            calls.append((InFlight(server.mcp_url, headers, body), request_id, short))
        for call, _, _ in calls:
            call.start()
        for call, _, _ in calls:
            call.wait_started()
            assert call.status == 200 and call.content_type.startswith("text/event-stream"), call.messages
        code = _stop(server)
    finally:
        server.kill(signal.SIGKILL)
    assert code == 0, server.logs()
    for call, request_id, short in calls:
        answer = call.answer()
        if short:
            assert answer["id"] == request_id and answer["result"]["content"][0]["text"] == "slept", answer
        else:
            _assert_shutting_down(answer, request_id)
    _assert_clean_log(server)
    started = [line for line in server.logs().splitlines() if ": started " in line and "(pid " in line]
    children = [int(line.split("(pid ")[1].split(")")[0]) for line in started]
    assert len(children) >= 3, started  # the session's child, and the stateless caller's
    assert all(wait_gone(pid) for pid in children), "a stdio child outlived authgate"


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
def test_sigterm_drains_http_upstream_calls(tmp_path: Path) -> None:
    upstream = build_upstream(stateless=True)
    try:
        with serve_asgi_in_thread(upstream.app, lifespan="on") as base:
            server = AuthgateServer(
                tmp_path,
                extra_env={"AUTHGATE_UPSTREAM": f"{base}/mcp", "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000", **DRAIN},
            )
            server.add_user()
            server.start()
            try:
                token, _ = server.machine_token("mcp", name="http-drain", scope="mcp")
                calls = []
                for i in range(8):
                    label = f"{'short' if i % 2 == 0 else 'long'}-{i}"
                    body = {
                        "jsonrpc": "2.0",
                        "id": 200 + i,
                        "method": "tools/call",
                        "params": {
                            "name": "wait_for_gate",
                            "arguments": {"label": label},
                            "_meta": {
                                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                "io.modelcontextprotocol/clientCapabilities": {},
                                "progressToken": label,
                            },
                        },
                    }
                    headers = {
                        "Authorization": f"Bearer {token}",
                        "Accept": "application/json, text/event-stream",
                        "Content-Type": "application/json",
                        "MCP-Protocol-Version": "2026-07-28",
                        "Mcp-Method": "tools/call",
                        "Mcp-Name": "wait_for_gate",
                    }
                    calls.append((InFlight(server.mcp_url, headers, body), 200 + i, label))
                for call, _, _ in calls:
                    call.start()
                deadline = time.monotonic() + 30
                while len(upstream.entered) < 8 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert len(upstream.entered) == 8, upstream.entered
                assert server.proc is not None
                server.proc.send_signal(signal.SIGTERM)
                time.sleep(0.5)  # draining: the short calls end now, well inside the 3 s
                for _, _, label in calls:
                    if label.startswith("short"):
                        upstream.gate(label).set()
                code = server.proc.wait(timeout=EXIT_WAIT)
            finally:
                server.kill(signal.SIGKILL)
    finally:
        for gate in upstream.gates.values():
            gate.set()
    assert code == 0, server.logs()
    for call, request_id, label in calls:
        answer = call.answer()
        if label.startswith("short"):
            assert answer["id"] == request_id and "released" in answer["result"]["content"][0]["text"], answer
        else:
            _assert_shutting_down(answer, request_id)
    _assert_clean_log(server)


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
def test_sigterm_ends_an_http_upstream_get_stream_cleanly_at_once(tmp_path: Path) -> None:
    """A GET stream never ends by itself: a stop ends it at once, without an error event (there is
    no request to answer; the client reconnects elsewhere), instead of holding the drain up."""
    upstream = build_upstream(stateless=False)
    with serve_asgi_in_thread(upstream.app, lifespan="on") as base:
        server = AuthgateServer(tmp_path, extra_env={"AUTHGATE_UPSTREAM": f"{base}/mcp", **DRAIN})
        server.add_user()
        server.start()
        try:
            token, _ = server.machine_token("mcp", name="http-drain-get", scope="mcp")
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            }
            init = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            }
            opened = httpx.post(server.mcp_url, headers=headers, json=init, timeout=10)
            headers |= {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert httpx.post(server.mcp_url, headers=headers, json=note, timeout=10).status_code == 202
            got: list[Any] = []
            with httpx.stream(
                "GET", server.mcp_url, headers={**headers, "Accept": "text/event-stream"}, timeout=httpx.Timeout(10)
            ) as stream:
                assert stream.status_code == 200
                code = _stop(server)
                got.extend(stream.iter_bytes())  # ends: the read would time out (httpx error) if it did not
        finally:
            server.kill(signal.SIGKILL)
    assert code == 0, server.logs()
    assert b"error" not in b"".join(got)
    logs = server.logs()
    assert "Traceback" not in logs and "drain time answered" not in logs, logs
