"""Issue 3, done-when 2: the knowledge-base server in stdio mode as a stdio upstream —
`authgate serve -- authgate kb serve --stdio` answers like the built-in HTTP one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from support.authgate_server import AuthgateServer

HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}


def _rpc(server: AuthgateServer, headers: dict[str, str], body: dict[str, object]) -> httpx.Response:
    return httpx.post(server.mcp_url, headers=headers, json=body, timeout=60)


def _result(response: httpx.Response) -> dict[str, object]:
    """The JSON-RPC result of a JSON or single-event SSE answer."""
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        doc = json.loads(data[-1])
    else:
        doc = response.json()
    assert "result" in doc, doc
    return dict(doc["result"])


def test_knowledge_base_over_stdio_through_the_bridge(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb-data"  # the child gets no AUTHGATE_* variables: its data dir is an argument
    server = AuthgateServer(
        tmp_path / "gate",
        serve_args=("--", sys.executable, "-m", "authgate", "kb", "serve", "--stdio", "--data-dir", str(kb_dir)),
    )
    server.add_user()
    server.start()
    try:
        token, _ = server.machine_token()
        headers = {**HEADERS, "Authorization": f"Bearer {token}"}
        init = _rpc(
            server,
            headers,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"},
                },
            },
        )
        assert init.status_code == 200, init.text
        headers["Mcp-Session-Id"] = init.headers["mcp-session-id"]
        _rpc(server, headers, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        tools = _result(_rpc(server, headers, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        names = {t["name"] for t in tools["tools"]}  # type: ignore[attr-defined]
        assert {"list_knowledge_bases", "query_knowledge_base", "whoami"} <= names
        found = _result(
            _rpc(
                server,
                headers,
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {
                        "name": "query_knowledge_base",
                        "arguments": {"knowledge_base_id": "authgate-docs", "query": "connect Claude", "top_k": 2},
                    },
                },
            )
        )
        assert not found.get("isError"), found
        assert "claude" in json.dumps(found["structuredContent"]).lower()
    finally:
        server.stop()
