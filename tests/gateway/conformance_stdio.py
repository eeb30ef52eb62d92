"""The conformance upstream (conformance_upstream.py) over stdio, for `authgate serve -- python THIS`:
the stdio-bridge leg of test_conformance.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, so `gateway.…` imports

import anyio  # noqa: E402
from mcp.server.lowlevel.server import NotificationOptions  # noqa: E402
from mcp.server.stdio import stdio_server  # noqa: E402

from gateway.conformance_upstream import build_conformance_server  # noqa: E402


async def main() -> None:
    """`MCPServer.run("stdio")`, but declaring `listChanged` for tools and prompts: over stdio
    the bridge initializes it at 2025-11-25 for 2025-11-25 clients, where the trigger tools send the
    notifications; 2026-07-28 clients reach it at 2026-07-28 (its first request: server/discover)."""
    lowlevel = build_conformance_server()._lowlevel_server
    options = lowlevel.create_initialization_options(NotificationOptions(prompts_changed=True, tools_changed=True))
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(read_stream, write_stream, options)


if __name__ == "__main__":
    anyio.run(main)
