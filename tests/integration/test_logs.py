"""Structured request logs: a request id in and out, who called which MCP method, and never a
token or secret."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from authgate_server import AuthgateServer

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": "2025-06-18"}


def test_json_request_log_names_the_caller_and_never_the_secrets(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path, extra_env={"AUTHGATE_LOG_FORMAT": "json"})
    server.add_user()
    server.start()
    try:
        reg = httpx.post(server.endpoint("register"), json={"grant_types": ["client_credentials"],
                                                           "token_endpoint_auth_method": "client_secret_post"}).json()
        token = httpx.post(server.endpoint("token"), data={
            "grant_type": "client_credentials", "client_id": reg["client_id"],
            "client_secret": reg["client_secret"]}).json()["access_token"]
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        r = httpx.post(server.mcp_url, json=init,
                       headers={**HEADERS, "Authorization": f"Bearer {token}", "X-Request-Id": "req-42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
        minted = httpx.get(server.endpoint("health")).headers["x-request-id"]
        assert len(minted) == 32
        bad = httpx.get(server.endpoint("health"), headers={"X-Request-Id": "evil id; with=spaces"}).headers["x-request-id"]
        assert bad != "evil id; with=spaces" and len(bad) == 32  # not an id we repeat
    finally:
        server.stop()
    logs = server.logs()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    mcp = [d for d in lines if d.get("request_id") == "req-42"]
    assert mcp, logs
    assert mcp[0]["subject"] == reg["client_id"] and mcp[0]["client_id"] == reg["client_id"]
    assert mcp[0]["mcp_method"] == "initialize" and mcp[0]["status"] == 200 and mcp[0]["path"] == "/mcp"
    assert "session_id" in mcp[0]
    for secret in (token, reg["client_secret"], server.password):
        assert secret not in logs
