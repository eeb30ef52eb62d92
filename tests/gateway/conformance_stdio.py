"""The conformance upstream (conformance_upstream.py) over stdio, for `authgate serve -- python THIS`:
the stdio-bridge leg of test_conformance.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, so `gateway.…` imports

import anyio  # noqa: E402
from mcp.server.lowlevel.server import NotificationOptions  # noqa: E402
from mcp.server.stdio import stdio_server  # noqa: E402
from mcp.shared.message import ServerMessageMetadata, SessionMessage  # noqa: E402
from mcp_types import JSONRPCNotification, JSONRPCRequest  # noqa: E402

from gateway.conformance_upstream import build_conformance_server  # noqa: E402

# authgate's stdio bridge: "close the connection of my request's stream" (gateway/stdio/resume.py)
CLOSE_SSE_STREAM = "notifications/authgate/close_sse_stream"


async def main() -> None:
    """`MCPServer.run("stdio")`, but declaring `listChanged` for tools and prompts: over stdio
    the bridge initializes it at 2025-11-25 for 2025-11-25 clients, where the trigger tools send the
    notifications; 2026-07-28 clients reach it at 2026-07-28 (its first request: server/discover).

    And `ctx.close_sse_stream()` (test_reconnection), which over stdio has no stream to close, asks
    the bridge to close the request's HTTP stream: each request is handed to the server with a
    `close_sse_stream` callback that writes CLOSE_SSE_STREAM naming it, as the SDK's HTTP transport
    hands it one that closes the stream."""
    lowlevel = build_conformance_server()._lowlevel_server
    options = lowlevel.create_initialization_options(NotificationOptions(prompts_changed=True, tools_changed=True))
    async with stdio_server() as (read_stream, write_stream):
        send, receive = anyio.create_memory_object_stream[Any](0)

        async def pass_on() -> None:
            async with send:
                async for item in read_stream:
                    message = getattr(item, "message", None)
                    if isinstance(message, JSONRPCRequest):
                        item = SessionMessage(message, ServerMessageMetadata(close_sse_stream=_closer(message.id)))
                    await send.send(item)

        def _closer(request_id: Any) -> Any:
            async def close() -> None:
                note = JSONRPCNotification(jsonrpc="2.0", method=CLOSE_SSE_STREAM, params={"requestId": request_id})
                await write_stream.send(SessionMessage(note))

            return close

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(pass_on)
            await lowlevel.run(receive, write_stream, options)
            tasks.cancel_scope.cancel()


if __name__ == "__main__":
    anyio.run(main)
