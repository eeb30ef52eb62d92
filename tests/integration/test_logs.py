"""Structured request logs: a request id in and out, who called which MCP method, and never a
token or secret."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from support.authgate_server import AuthgateServer
from support.stdio_support import machine_token

HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}


def test_json_request_log_names_the_caller_and_never_the_secrets(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path, extra_env={"AUTHGATE_LOG_FORMAT": "json"})
    server.add_user()
    server.start()
    try:
        client_id, client_secret = server.add_machine_client("log-test", "mcp")
        token = httpx.post(
            server.endpoint("token"),
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        ).json()["access_token"]
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        r = httpx.post(
            server.mcp_url, json=init, headers={**HEADERS, "Authorization": f"Bearer {token}", "X-Request-Id": "req-42"}
        )
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
        minted = httpx.get(server.endpoint("health")).headers["x-request-id"]
        assert len(minted) == 32
        bad = httpx.get(server.endpoint("health"), headers={"X-Request-Id": "evil id; with=spaces"}).headers[
            "x-request-id"
        ]
        assert bad != "evil id; with=spaces" and len(bad) == 32  # not an id we repeat
    finally:
        server.stop()
    logs = server.logs()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    mcp = [d for d in lines if d.get("request_id") == "req-42"]
    assert mcp, logs
    assert mcp[0]["subject"] == client_id and mcp[0]["client_id"] == client_id
    assert mcp[0]["mcp_method"] == "initialize" and mcp[0]["status"] == 200 and mcp[0]["path"] == "/mcp"
    assert "session_id" in mcp[0]
    for secret in (token, client_secret, server.password):
        assert secret not in logs


FORGED = "2026-12-04 10:32:00,000 INFO authgate.request: GET /admin 200 subject=root"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_newline_from_a_request_never_starts_a_log_line(tmp_path: Path, log_format: str) -> None:
    """Issue 11, done-when 8: a path, tool name or method carrying CR/LF (or another control
    character) cannot forge a log record."""
    server = AuthgateServer(tmp_path, extra_env={"AUTHGATE_LOG_FORMAT": log_format})
    server.add_user()
    server.start()
    try:
        with httpx.Client(timeout=10) as http:
            assert http.get(f"{server.url}/x%0A{FORGED}%0D%0A").status_code in (401, 404)
            token, _ = machine_token(server)
            auth = {**HEADERS, "Authorization": f"Bearer {token}"}
            for body in (
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": f"whoami\n{FORGED}", "arguments": {}},
                },
                {"jsonrpc": "2.0", "id": 2, "method": f"tools/list\r\n{FORGED}\u2028x"},
            ):
                assert http.post(server.mcp_url, json=body, headers=auth).status_code < 500
    finally:
        server.stop()
    stderr = "".join(p.read_text() for p in sorted(server.logs_dir.glob("serve-*.stderr")))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert sum("x\\x0a2026-12-04" in line or "x\\n2026-12-04" in line for line in lines) >= 1, stderr
    for line in lines:
        assert not line.startswith("2026-12-04 10:32"), f"forged record in the log:\n{stderr}"
        if "subject=root" in line:  # the forged text stays inside the record that carried it
            assert line.index("subject=root") > line.index("2026-12-04 10:32") > 0, line
            assert not line.startswith(("2026-12-04 10:32", "|")), line
        if log_format == "json" and line.startswith("{"):
            json.loads(line)  # one whole record per line
