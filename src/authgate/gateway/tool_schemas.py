"""Which tool arguments a client must mirror into `Mcp-Param-*` headers, learned on the way.

MCP 2026-07-28 (transports, "Custom Headers from Tool Parameters"): a tool's `inputSchema`
may mark arguments with `x-mcp-header`; a client then sends `Mcp-Param-{Name}` and a server
that reads the body must check it. The gateway does not call `tools/list` itself: it reads
the `tools/list` answers it relays (JSON or SSE, size-capped) and remembers the schemas that
carry annotations, keyed by tool name. A tool it has not seen yet is checked by the upstream
alone (which MUST check it too).
"""

from __future__ import annotations

import json
from typing import Any

from authgate.gateway.mcp_headers import X_MCP_HEADER_KEY, find_invalid_x_mcp_header

__all__ = ["ToolSchemas", "ToolsListTap"]

MAX_TOOLS = 10_000
MAX_TAPPED_BYTES = 4 * 1024 * 1024


def _annotated(schema: Any) -> bool:
    """True if `x-mcp-header` appears anywhere in the schema (a cheap pre-filter)."""
    return isinstance(schema, dict) and X_MCP_HEADER_KEY in json.dumps(schema)


class ToolSchemas:
    """tool name → `inputSchema`, for the tools whose schema carries valid `x-mcp-header`
    annotations. Bounded; the newest listing of a tool wins."""

    def __init__(self, max_tools: int = MAX_TOOLS) -> None:
        self._schemas: dict[str, dict[str, Any]] = {}
        self._max = max_tools

    def get(self, tool: str) -> dict[str, Any] | None:
        return self._schemas.get(tool)

    def learn(self, result: Any) -> None:
        """Take the `result` of a `tools/list` response."""
        tools = result.get("tools") if isinstance(result, dict) else None
        for tool in tools if isinstance(tools, list) else ():
            if not isinstance(tool, dict) or not isinstance(name := tool.get("name"), str):
                continue
            schema = tool.get("inputSchema")
            # A schema with an invalid annotation is dropped by conforming clients: nothing to check.
            if isinstance(schema, dict) and _annotated(schema) and find_invalid_x_mcp_header(schema) is None:
                if name not in self._schemas and len(self._schemas) >= self._max:
                    self._schemas.pop(next(iter(self._schemas)))
                self._schemas[name] = schema
            else:
                self._schemas.pop(name, None)


class ToolsListTap:
    """Collects a relayed `tools/list` answer and hands its result to `ToolSchemas`."""

    def __init__(self, schemas: ToolSchemas, request_id: Any) -> None:
        self.schemas = schemas
        self.request_id = request_id
        self._chunks: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if self._size <= MAX_TAPPED_BYTES:
            self._chunks.append(chunk)
            self._size += len(chunk)

    def finish(self, content_type: str) -> None:
        if self._size > MAX_TAPPED_BYTES:
            return
        raw = b"".join(self._chunks)
        messages = _sse_messages(raw) if content_type.startswith("text/event-stream") else [_loads(raw)]
        for message in messages:
            if isinstance(message, dict) and message.get("id") == self.request_id and "result" in message:
                self.schemas.learn(message["result"])


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _sse_messages(raw: bytes) -> list[Any]:
    """The JSON payloads of the `data:` fields of each SSE event (WHATWG HTML §9.2.6)."""
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    messages = []
    for event in text.split("\n\n"):
        data = [line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:")]
        if data:
            messages.append(_loads("\n".join(data).encode()))
    return messages
