"""A stdio server that misbehaves (issue 19, Done when 5), on the wire, against
`authgate serve -- python demo_server.py`: a call that never answers ends after
`upstream_call_timeout` with a JSON-RPC error naming the program (and the child is told
`notifications/cancelled`); a child that floods stderr reaches the log bounded and its calls
still answer. Meanwhile another caller's calls succeed."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.inflight import InFlight
from support.stdio_support import (
    CALL_TIMEOUT,
    DEMO,
    DEMO_COMMAND,
    last_message,
    legacy_call,
    legacy_session,
    machine_token,
    modern_headers,
    modern_request,
    start_stdio_gate,
)


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    """A stdio gate whose calls may take 2 s."""
    server = start_stdio_gate(
        tmp_path_factory.mktemp("stdio-timeout"), DEMO_COMMAND, AUTHGATE_UPSTREAM_CALL_TIMEOUT="2"
    )
    yield server
    server.stop()


def _wait_for(path: Path, text: str, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text() == text:
            return True
        time.sleep(0.05)
    return False


def _assert_timed_out(answer: dict[str, Any], request_id: int) -> None:
    error = answer["error"]
    assert answer["id"] == request_id and error["code"] == -32603, answer
    assert error["data"] == {"source": "authgate", "reason": "upstream_call_timeout"}
    program = os.path.basename(sys.executable)
    assert f"({program})" in error["message"] and "within 2 s" in error["message"], error
    assert str(DEMO) not in error["message"] and sys.executable not in error["message"]  # no path, no arguments


def _echo(server: AuthgateServer, token: str, text: str) -> Any:
    body = modern_request("tools/call", {"name": "echo", "arguments": {"text": text}}, request_id=9)
    r = httpx.post(server.mcp_url, headers=modern_headers(token, body), json=body, timeout=CALL_TIMEOUT)
    return last_message(r)["result"]["content"][0]["text"]


@pytest.mark.requirement(req.ISSUE19_STDIO_CALL_TIMEOUT)
def test_a_call_that_never_answers_ends_with_a_json_rpc_error(impatient: AuthgateServer, tmp_path: Path) -> None:
    token, _ = machine_token(impatient)
    other, _ = impatient.machine_token("mcp", name="stdio-timeout-other")
    session = legacy_session(impatient, token)
    marker = tmp_path / "legacy-cancelled"
    hung = InFlight(
        impatient.mcp_url,
        {
            "Accept": "application/json",  # a client that takes SSE gets the error as the stream's last event
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "Mcp-Session-Id": session,
            "MCP-Protocol-Version": "2025-11-25",
        },
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "slow", "arguments": {"seconds": 120, "marker": str(marker)}},
        },
    )
    hung.start()
    assert _echo(impatient, other, "meanwhile") == "meanwhile"  # another caller, while the call hangs
    answer = hung.answer()
    assert hung.status == 504 and hung.content_type.startswith("application/json"), hung.messages
    _assert_timed_out(answer, 7)
    assert _wait_for(marker, "cancelled"), "the child was not told notifications/cancelled"
    # the child lives on: the session still answers
    echoed = last_message(legacy_call(impatient, token, session, "echo", {"text": "still here"}))
    assert echoed["result"]["content"][0]["text"] == "still here"


@pytest.mark.requirement(req.ISSUE19_STDIO_CALL_TIMEOUT)
def test_a_streamed_call_that_never_answers_ends_with_a_last_event(impatient: AuthgateServer, tmp_path: Path) -> None:
    token, _ = machine_token(impatient)
    marker = tmp_path / "modern-cancelled"
    body = modern_request("tools/call", {"name": "slow", "arguments": {"seconds": 120, "marker": str(marker)}}, 8)
    body["params"]["_meta"]["progressToken"] = "t1"  # the progress opens the SSE stream before the timeout
    hung = InFlight(impatient.mcp_url, modern_headers(token, body), body)
    hung.start()
    answer = hung.answer()
    assert hung.status == 200 and hung.content_type.startswith("text/event-stream")
    assert hung.messages[0]["method"] == "notifications/progress"
    _assert_timed_out(answer, 8)
    assert _wait_for(marker, "cancelled"), "the child was not told notifications/cancelled"
    assert _echo(impatient, token, "next") == "next"


@pytest.mark.requirement(req.ISSUE19_STDERR_BOUNDED)
def test_a_stderr_flood_reaches_the_log_bounded(tmp_path: Path) -> None:
    server = start_stdio_gate(tmp_path, DEMO_COMMAND)
    try:
        token, _ = machine_token(server)
        other, _ = server.machine_token("mcp", name="stdio-flood-other")
        session = legacy_session(server, token)
        flood = InFlight(
            server.mcp_url,
            {
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                "Mcp-Session-Id": session,
                "MCP-Protocol-Version": "2025-11-25",
            },
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "stderr_flood", "arguments": {"megabytes": 50}},
            },
        )
        flood.start()
        assert _echo(server, other, "meanwhile") == "meanwhile"
        answer = flood.answer()  # the child was never blocked on a full pipe
        assert answer["result"]["content"][0]["text"].startswith("wrote 5"), answer
        assert last_message(legacy_call(server, token, session, "echo", {"text": "after"}))["result"]
    finally:
        server.stop()  # the child's stderr closes: what was dropped is summed up
    log = b"".join(p.read_bytes() for p in server.logs_dir.glob("*.stderr"))
    assert len(log) < 1_000_000, f"{len(log)} bytes of log for 50 MB of stderr"
    text = log.decode(errors="replace")
    assert "more bytes of this line not logged" in text  # the 1 MiB line, cut to 2 KiB
    assert "bytes dropped" in text and "line(s)" in text
