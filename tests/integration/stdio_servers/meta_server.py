"""A stdio MCP server that answers each `tools/call` with the `params._meta` its request
arrived with, as JSON text: what a stdio child sees of the trace context the bridge sends on
(MCP SEP-414: `_meta.traceparent`). Raw JSON-RPC lines, no SDK, so nothing reads or strips
`_meta` before the tool does. One tool, `meta`.

Run as `python meta_server.py` (stdio).
"""

from __future__ import annotations

import json
import sys
from typing import Any

TOOL = {"name": "meta", "description": "The _meta this call arrived with.", "inputSchema": {"type": "object"}}


def answer(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "meta-recorder", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": [TOOL]}
    if method == "tools/call":
        return {"content": [{"type": "text", "text": json.dumps(params.get("_meta", {}))}], "isError": False}
    if method == "ping":
        return {}
    return None


def main() -> None:
    for line in sys.stdin:
        msg = json.loads(line)
        if "id" not in msg or "method" not in msg:
            continue  # notifications, and answers to requests this server never makes
        params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
        result = answer(msg["method"], params)
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg["id"]}
        if result is None:
            reply["error"] = {"code": -32601, "message": f"unknown method {msg['method']}"}
        else:
            reply["result"] = result
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
