"""The stdio bridge at MCP 2026-07-28: the methods that revision removes are 404 -32601 from the
bridge, as its child, initialized at 2025-11-25, would still serve them (issue 14; the
conformance suite's `server-stateless` scenario checks the same through
tests/gateway/test_conformance.py, which needs Node)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.stdio_support import DEMO_COMMAND, MODERN, machine_token, start_stdio_gate

META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


def post(url: str, token: str, method: str, params: dict[str, Any], rid: int = 7) -> httpx.Response:
    return httpx.post(
        url,
        json={"jsonrpc": "2.0", "id": rid, "method": method, "params": {**params, "_meta": META}},
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN,
            "Mcp-Method": method,
        },
        timeout=30,
    )


@pytest.mark.requirement(req.ISSUE14_GATEWAY_LEAVES_UPSTREAM_ANSWERS_TO_IT)
def test_removed_methods_are_404_method_not_found_through_the_bridge(tmp_path: Path) -> None:
    server = start_stdio_gate(tmp_path, DEMO_COMMAND)
    try:
        token, _ = machine_token(server)
        assert post(server.mcp_url, token, "tools/list", {}).status_code == 200  # the child is up
        for method in ("initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"):
            r = post(server.mcp_url, token, method, {})
            assert r.status_code == 404, (method, r.text)
            assert r.json()["id"] == 7 and r.json()["error"]["code"] == -32601, (method, r.text)
    finally:
        server.stop()
