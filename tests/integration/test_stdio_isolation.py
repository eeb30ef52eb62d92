"""The stdio bridge's failure, isolation and lifecycle rules, on the wire (issue 3, done-when 4
"child crash" and 8 "a stdio child started for one user never serves another"), against
`authgate serve -- python demo_server.py`."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.stdio_support import (
    CALL_TIMEOUT,
    DEMO_COMMAND,
    LEGACY_HEADERS,
    Callbacks,
    http_client,
    last_message,
    legacy_call,
    legacy_session,
    machine_token,
    modern_headers,
    modern_request,
    pid_of,
    start_stdio_gate,
    wait_gone,
)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    # the bridge's own InputRequiredResults: demo_server's tools ask with ctx.elicit (not at 2026-07-28)
    server = start_stdio_gate(
        tmp_path_factory.mktemp("stdio-isolation"), DEMO_COMMAND, AUTHGATE_UPSTREAM_STDIO_PROTOCOL="2025-11-25"
    )
    yield server
    server.stop()


def _modern(server: AuthgateServer, token: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.mcp_url, headers=modern_headers(token, body), json=body, timeout=CALL_TIMEOUT)


def _delete(server: AuthgateServer, token: str, session: str) -> httpx.Response:
    return httpx.delete(
        server.mcp_url,
        timeout=10,
        headers={"Authorization": f"Bearer {token}", "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"},
    )


# -- crash -------------------------------------------------------------------------------------


@pytest.mark.requirement(req.MCP_2025_11_25_SESSION_404_NEW_SESSION)
def test_child_crash_is_a_clear_jsonrpc_error_and_the_next_session_works(gate: AuthgateServer) -> None:
    token, _ = machine_token(gate)
    session = legacy_session(gate, token)
    first_pid = pid_of(last_message(legacy_call(gate, token, session, "pid", {})))

    r = legacy_call(gate, token, session, "crash", {}, request_id=7)
    # a 2025-11-25 session's answer is a resumable SSE stream from its first byte: the error is its last event
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    body = last_message(r)
    assert body["id"] == 7 and body["error"]["code"] == -32603
    assert "exited with status 3" in body["error"]["message"]
    assert f"({os.path.basename(sys.executable)})" in body["error"]["message"]  # the program, not its path
    assert sys.executable not in body["error"]["message"]
    assert body["error"]["data"] == {"source": "authgate", "reason": "stdio_server_exited"}

    assert legacy_call(gate, token, session, "echo", {"text": "x"}).status_code == 404
    assert httpx.get(f"{gate.url}/health", timeout=5).status_code == 200

    fresh = legacy_session(gate, token)
    answer = last_message(legacy_call(gate, token, fresh, "echo", {"text": "back"}))
    assert answer["result"]["structuredContent"] == {"result": "back"}
    assert pid_of(last_message(legacy_call(gate, token, fresh, "pid", {}))) != first_pid
    assert _delete(gate, token, fresh).status_code == 200


async def test_sdk_client_sees_the_crash_as_an_error_and_reconnects(gate: AuthgateServer) -> None:
    token, _ = machine_token(gate)
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(gate, token, "legacy", Callbacks()) as client:
            with pytest.raises(MCPError, match="exited"):
                await client.call_tool("crash", {})
        async with http_client(gate, token, "legacy", Callbacks()) as client:
            result = await client.call_tool("echo", {"text": "again"})
    assert result.structured_content == {"result": "again"}


def test_stateless_crash_then_a_new_child(gate: AuthgateServer) -> None:
    token, _ = machine_token(gate)
    before = pid_of(last_message(_modern(gate, token, modern_request("tools/call", {"name": "pid", "arguments": {}}))))
    r = _modern(gate, token, modern_request("tools/call", {"name": "crash", "arguments": {}}))
    assert r.status_code == 502 and r.json()["error"]["data"]["reason"] == "stdio_server_exited"
    after = pid_of(last_message(_modern(gate, token, modern_request("tools/call", {"name": "pid", "arguments": {}}))))
    assert after != before


# -- isolation ---------------------------------------------------------------------------------


@pytest.mark.requirement(req.MCP_2025_11_25_SESSION_HIJACKING)
def test_a_legacy_child_serves_only_the_caller_that_started_it(gate: AuthgateServer) -> None:
    (alice, alice_client), (bob, bob_client) = machine_token(gate), machine_token(gate)
    a_session, b_session = legacy_session(gate, alice), legacy_session(gate, bob)
    a = last_message(legacy_call(gate, alice, a_session, "pid", {}))["result"]["structuredContent"]
    b = last_message(legacy_call(gate, bob, b_session, "pid", {}))["result"]["structuredContent"]
    assert a["pid"] != b["pid"]
    assert (a["client_id"], b["client_id"]) == (alice_client, bob_client)

    # Bob presenting Alice's session id gets what an unknown id gets: 404, on every method.
    assert legacy_call(gate, bob, a_session, "pid", {}).status_code == 404
    headers = {**LEGACY_HEADERS, "Authorization": f"Bearer {bob}", "Mcp-Session-Id": a_session}
    assert httpx.get(gate.mcp_url, headers=headers, timeout=10).status_code == 404
    assert _delete(gate, bob, a_session).status_code == 404
    assert pid_of(last_message(legacy_call(gate, alice, a_session, "pid", {}))) == a["pid"]
    assert _delete(gate, alice, a_session).status_code == 200
    assert _delete(gate, bob, b_session).status_code == 200


@pytest.mark.requirement(req.MCP_2026_07_28_MRTR_STATE_UNTRUSTED)
def test_stateless_children_and_request_states_are_per_caller(gate: AuthgateServer) -> None:
    (alice, alice_client), (bob, _) = machine_token(gate), machine_token(gate)
    pid_call = modern_request("tools/call", {"name": "pid", "arguments": {}})
    a1, a2 = (last_message(_modern(gate, alice, pid_call))["result"]["structuredContent"] for _ in range(2))
    b1 = last_message(_modern(gate, bob, pid_call))["result"]["structuredContent"]
    assert a1["pid"] == a2["pid"] != b1["pid"]
    assert a1["client_id"] == alice_client

    ask = modern_request("tools/call", {"name": "ask", "arguments": {"question": "Name?"}})
    first = _modern(gate, alice, ask).json()["result"]
    assert first["resultType"] == "input_required"
    ((key, request),) = first["inputRequests"].items()
    assert request["method"] == "elicitation/create" and request["params"]["message"] == "Name?"
    retry = modern_request(
        "tools/call",
        {
            "name": "ask",
            "arguments": {"question": "Name?"},
            "requestState": first["requestState"],
            "inputResponses": {key: {"action": "accept", "content": {"answer": "al"}}},
        },
        request_id=2,
    )
    stolen = _modern(gate, bob, retry)
    assert stolen.status_code == 400 and stolen.json()["error"]["code"] == -32602
    done = last_message(_modern(gate, alice, retry))
    assert done["id"] == 2 and done["result"]["structuredContent"] == {"result": "answer: al"}
    assert done["result"]["resultType"] == "complete"
    replay = _modern(gate, alice, retry)
    assert replay.status_code == 400, "a requestState is good for one retry"


# -- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.requirement(req.MCP_2025_11_25_SESSION_DELETE)
def test_delete_ends_the_session_and_its_child(gate: AuthgateServer) -> None:
    token, _ = machine_token(gate)
    session = legacy_session(gate, token)
    pid = pid_of(last_message(legacy_call(gate, token, session, "pid", {})))
    assert _delete(gate, token, session).status_code == 200
    assert wait_gone(pid), "the child outlived DELETE"
    assert legacy_call(gate, token, session, "pid", {}).status_code == 404


@pytest.mark.requirement(req.MCP_2026_07_28_CLOSED_STREAM_CANCELS)
@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
def test_closing_the_stream_cancels_the_request_at_the_child(gate: AuthgateServer, tmp_path: Path, era: str) -> None:
    token, _ = machine_token(gate)
    marker = tmp_path / "cancelled"
    params = {"name": "slow", "arguments": {"seconds": 60, "marker": str(marker)}, "_meta": {"progressToken": "p1"}}
    if era == "legacy":  # 2025-06-18: no resumable streams (at 2025-11-25 a closed one is not cancellation)
        session = legacy_session(gate, token, "2025-06-18")
        headers = {**LEGACY_HEADERS, "Authorization": f"Bearer {token}", "Mcp-Session-Id": session}
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params}
    else:
        body = modern_request("tools/call", params)
        body["params"]["_meta"]["progressToken"] = "p1"
        headers = modern_headers(token, body)
    with httpx.stream("POST", gate.mcp_url, headers=headers, json=body, timeout=CALL_TIMEOUT) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in r.iter_lines() if line.startswith("data:"))
        assert '"progressToken":"p1"' in first  # the client's own token, restored
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "cancelled"


@pytest.mark.requirement(req.MCP_2025_11_25_STDIO_SHUTDOWN)
def test_shutdown_stops_every_child(tmp_path: Path) -> None:
    server = start_stdio_gate(tmp_path, DEMO_COMMAND)
    try:
        token, _ = machine_token(server)
        legacy_pid = pid_of(last_message(legacy_call(server, token, legacy_session(server, token), "pid", {})))
        stateless_pid = pid_of(
            last_message(_modern(server, token, modern_request("tools/call", {"name": "pid", "arguments": {}})))
        )
    finally:
        server.kill(signal.SIGTERM)
    assert wait_gone(legacy_pid) and wait_gone(stateless_pid)


@pytest.mark.requirement(req.MCP_2025_11_25_STDIO_SHUTDOWN)
def test_an_open_stream_does_not_hold_a_stop_up(tmp_path: Path) -> None:
    """A legacy GET stream never ends by itself: SIGTERM ends it at once (the drain is for calls),
    stops every child and exits 0, instead of hanging until the process is killed."""
    import threading

    server = start_stdio_gate(tmp_path, DEMO_COMMAND, AUTHGATE_SHUTDOWN_TIMEOUT="2")
    opened, ended = threading.Event(), threading.Event()
    try:
        token, _ = machine_token(server)
        session = legacy_session(server, token)
        pid = pid_of(last_message(legacy_call(server, token, session, "pid", {})))
        headers = {
            "Authorization": f"Bearer {token}",
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": "2025-11-25",
            "Accept": "text/event-stream",
        }

        def listen() -> None:
            try:
                with httpx.stream("GET", server.mcp_url, headers=headers, timeout=httpx.Timeout(5, read=60)) as r:
                    assert r.status_code == 200
                    opened.set()
                    for _ in r.iter_bytes():
                        pass
            except httpx.HTTPError:
                pass
            finally:
                ended.set()

        threading.Thread(target=listen, daemon=True).start()
        assert opened.wait(10), "the GET stream did not open"
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(timeout=15)
        took = time.monotonic() - started
    finally:
        server.kill(signal.SIGKILL)
    assert code == 0 and took < 8, f"exit {code} after {took:.1f} s"  # a stop asked for is no failure
    assert ended.wait(5) and wait_gone(pid)


def test_stateless_wire_rules(gate: AuthgateServer) -> None:
    token, _ = machine_token(gate)
    discover = _modern(gate, token, modern_request("server/discover"))
    assert discover.status_code == 200
    result = discover.json()["result"]
    assert result["supportedVersions"] == ["2026-07-28"] and "tools" in result["capabilities"]
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "stdio-demo"
    assert result["instructions"].startswith("A stdio test server")

    body = modern_request("tools/list")
    listed = last_message(_modern(gate, token, body))["result"]
    assert (
        listed["resultType"] == "complete" and listed["ttlMs"] == 0 and "echo" in {t["name"] for t in listed["tools"]}
    )
    wrong = httpx.post(gate.mcp_url, json=body, timeout=10, headers={**modern_headers(token, body), "Mcp-Method": "x"})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == -32020
    headers = modern_headers(token, body)
    assert httpx.get(gate.mcp_url, headers=headers, timeout=10).status_code == 405
    assert httpx.delete(gate.mcp_url, headers=headers, timeout=10).status_code == 405
    listen = modern_request("subscriptions/listen", {"notifications": {"toolsListChanged": True}})
    with httpx.stream("POST", gate.mcp_url, headers=modern_headers(token, listen), json=listen, timeout=10) as r:
        first = json.loads(next(line for line in r.iter_lines() if line.startswith("data:"))[5:])
    assert first["method"] == "notifications/subscriptions/acknowledged"
    assert first["params"]["notifications"] == {}, "demo_server advertises no listChanged"
    ready = httpx.get(f"{gate.url}/health/ready", timeout=10)
    assert ready.status_code == 200 and "stdio bridge" in ready.json()["upstream"]


def test_cli_refuses_two_upstreams_and_a_command_without_double_dash(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)
    both = server.cli("serve", "--upstream", "http://127.0.0.1:9/mcp", "--", *DEMO_COMMAND)
    assert both.returncode == 2 and "upstream_command" in both.stderr
    stray = server.cli("serve", "python", "server.py")
    assert stray.returncode == 2 and "after `--`" in stray.stderr
