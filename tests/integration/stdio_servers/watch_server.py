"""A hand-written stdio MCP server (2025-11-25 wire, no SDK) for the bridge's `Mcp-Param-*` and
`subscriptions/listen` tests. It answers exactly as written here, so a test knows what it
advertises and when it speaks:

- capabilities: `tools.listChanged` and `resources.subscribe` only (no prompts, no
  `resources.listChanged`);
- `tools/list` pages three tools at a time; `route` is on the last page, its `region` and
  `priority` arguments marked `x-mcp-header` (`Region`, `Priority`);
- `resources/subscribe` / `resources/unsubscribe` keep a set of URIs.

Tools: `route` (counts the calls that reach it), `calls` (that count), `add_tool` (adds
`route2`, whose `tenant` is mirrored as `Mcp-Param-Tenant`, and sends
notifications/tools/list_changed during the call), `later` (the same notification `delay` s
after answering: outside any request), `touch` (notifications/resources/updated for `uri`
if it is subscribed), `announce` (prompts/list_changed and resources/list_changed, types this
server never advertised), `subscribed` (the subscribed URIs), `pid`, `crash`, and `confirm`
(asks the client with elicitation/create, then returns the answer; its `region` is mirrored
as `Mcp-Param-Region` too).

Run as `python watch_server.py`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

_write = threading.Lock()
subscribed: set[str] = set()
route_calls = 0
PAGE = 3
asking: dict[str, Any] = {}  # our elicitation request id -> the tools/call id waiting for its answer


def send(message: dict[str, Any]) -> None:
    with _write:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def notify(method: str, params: dict[str, Any] | None = None) -> None:
    send({"jsonrpc": "2.0", "method": method, **({"params": params} if params is not None else {})})


def tool(name: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "description": name, "inputSchema": {"type": "object", "properties": properties or {}}}


TOOLS = [
    tool("calls"),
    tool("add_tool"),
    tool("later", {"delay": {"type": "number"}}),
    tool("touch", {"uri": {"type": "string"}}),
    tool("announce"),
    tool("subscribed"),
    tool("pid"),
    tool("crash"),
    tool("confirm", {"region": {"type": "string", "x-mcp-header": "Region"}}),
    tool(
        "route",
        {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "priority": {"type": "integer", "x-mcp-header": "Priority"},
            "query": {"type": "string"},
        },
    ),
]


def text(value: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": json.dumps(value)}], "structuredContent": {"result": value}}


def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    global route_calls
    if not any(t["name"] == name for t in TOOLS):
        raise KeyError(name)
    if name in ("route", "route2"):
        route_calls += 1
        return text({"tool": name, "arguments": args, "calls": route_calls})
    if name == "calls":
        return text(route_calls)
    if name == "add_tool":
        if not any(t["name"] == "route2" for t in TOOLS):
            TOOLS.append(tool("route2", {"tenant": {"type": "string", "x-mcp-header": "Tenant"}}))
        notify("notifications/tools/list_changed")
        return text("added")
    if name == "later":
        threading.Timer(float(args.get("delay", 0.2)), notify, ["notifications/tools/list_changed"]).start()
        return text("scheduled")
    if name == "touch":
        if args["uri"] in subscribed:
            notify("notifications/resources/updated", {"uri": args["uri"]})
        return text(args["uri"] in subscribed)
    if name == "announce":
        notify("notifications/prompts/list_changed")
        notify("notifications/resources/list_changed")
        return text("announced")
    if name == "subscribed":
        return text(sorted(subscribed))
    if name == "pid":
        return text({"pid": os.getpid(), "client_id": os.environ.get("AUTHGATE_CALLER_CLIENT_ID")})
    os._exit(3)  # crash


def answer(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "initialize":
        return {
            "protocolVersion": "2025-11-25",
            "serverInfo": {"name": "watch", "version": "1"},
            "capabilities": {"tools": {"listChanged": True}, "resources": {"subscribe": True}},
        }
    if method == "tools/list":
        start = int(params.get("cursor") or 0)
        page: dict[str, Any] = {"tools": TOOLS[start : start + PAGE]}
        if start + PAGE < len(TOOLS):
            page["nextCursor"] = str(start + PAGE)
        return page
    if method == "tools/call":
        return call(params["name"], params.get("arguments") or {})
    if method == "resources/list":
        return {"resources": [{"uri": "memo://a", "name": "a"}, {"uri": "memo://b", "name": "b"}]}
    if method == "resources/subscribe":
        subscribed.add(params["uri"])
        return {}
    if method == "resources/unsubscribe":
        subscribed.discard(params["uri"])
        return {}
    if method == "ping":
        return {}
    raise KeyError(method)


def confirm(call_id: Any, region: str) -> None:
    """Ask the client before answering the call (the answer arrives in main's loop)."""
    request_id = f"confirm-{call_id}"
    asking[request_id] = call_id
    send(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "elicitation/create",
            "params": {"message": f"Route to {region}?", "requestedSchema": {"type": "object", "properties": {}}},
        }
    )


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        if "method" not in message and message.get("id") in asking:
            action = (message.get("result") or {}).get("action", "error")
            send({"jsonrpc": "2.0", "id": asking.pop(message["id"]), "result": text(f"confirmed: {action}")})
            continue
        if "id" not in message or "method" not in message:
            continue  # notifications and other answers: nothing to do
        params = message.get("params") or {}
        if message["method"] == "tools/call" and params.get("name") == "confirm":
            confirm(message["id"], (params.get("arguments") or {}).get("region", ""))
            continue
        try:
            send(
                {
                    "jsonrpc": "2.0",
                    "id": message["id"],
                    "result": answer(message["method"], message.get("params") or {}),
                }
            )
        except KeyError as exc:
            send({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": f"unknown {exc}"}})


if __name__ == "__main__":
    main()
