"""`Mcp-Param-*` headers of 2026-07-28 `tools/call` requests, checked by the stdio bridge.

MCP 2026-07-28 transports, "Custom Headers from Tool Parameters": a tool's `inputSchema` may
mark arguments with `x-mcp-header`; clients mirror them into `Mcp-Param-{Name}` headers and a
server that reads the body MUST reject a request whose headers disagree with it (400,
-32020 HeaderMismatch). The bridge is that server (its children speak stdio and never see a
header), so it checks before a call reaches a child, with the same checks as the HTTP proxy
(`request_metadata.param_headers` / `check_param_headers`).

Schemas are kept per child (`ChildTools`), not bridge-wide: the headers must agree with the
schema of the process that will run the call, and processes of the same command can list
different tools (per caller, through `identity_headers`; per client capability set; or after
a `tools/list_changed` only one of them sent). A bridge-wide table would let one caller's
child decide what another caller's calls are checked against.

A child's schemas come from the bridge's own `tools/list` right after it initialized the
child (a client may call a tool without listing first), from every `tools/list` answer it
relays, and from a new listing after each `notifications/tools/list_changed`. A `tools/call`
waits for a listing in progress. A listing that fails leaves the last schemas in place (none
at first, when headers go unchecked: there is nothing to check them against).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from authgate.gateway.errors import GatewayError
from authgate.gateway.stdio.child import StdioChild
from authgate.gateway.stdio.relay import ask
from authgate.gateway.tool_schemas import ToolSchemas

__all__ = ["ChildTools"]

logger = logging.getLogger("authgate.stdio")
MAX_PAGES = 100  # of one tools/list: a server that pages forever is not listed further


class ChildTools:
    """The `x-mcp-header` schemas of one child's tools, and its listings.

    `stray` takes what the child sends while the bridge waits for a listing page (stdio does
    not say which request a notification belongs to)."""

    def __init__(self, child: StdioChild, *, timeout: float, stray: Callable[[dict[str, Any]], None]) -> None:
        self.child = child
        self.timeout = timeout
        self.stray = stray
        self.schemas = ToolSchemas()
        self._stale = False
        self._task: asyncio.Task[None] | None = None

    def learn(self, result: Any) -> None:
        """A `tools/list` answer relayed to a client (one page of it)."""
        self.schemas.learn(result)

    def refresh(self) -> None:
        """List the child's tools again (at start, and after `notifications/tools/list_changed`).
        A change announced during a listing is followed by another one."""
        self._stale = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._relist())

    async def settled(self) -> None:
        """Wait for a listing in progress (bounded by its own timeout)."""
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task})  # never cancels the listing, nor raises when it was cancelled

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _relist(self) -> None:
        while self._stale and self.child.alive:
            self._stale = False
            try:
                self.schemas = await self._list_all()
            except TimeoutError:
                logger.warning(
                    "%s: tools/list got no answer within %.0f s; Mcp-Param-* headers are checked "
                    "against the tools it listed before",
                    self.child.label,
                    self.timeout,
                )
            except (GatewayError, ValueError) as exc:
                if self.child.alive:
                    logger.warning(
                        "%s: listing its tools failed (%s); Mcp-Param-* headers are checked against "
                        "the tools it listed before",
                        self.child.label,
                        exc,
                    )

    async def _list_all(self) -> ToolSchemas:
        """Every page of the child's tools/list (following nextCursor), within `timeout` in all."""
        schemas = ToolSchemas()
        cursor: Any = None
        async with asyncio.timeout(self.timeout):
            for page in range(MAX_PAGES):
                params = {"cursor": cursor} if cursor is not None else {}
                answer = await ask(
                    self.child,
                    {"jsonrpc": "2.0", "id": f"authgate-tools-{page}", "method": "tools/list", "params": params},
                    self.timeout,
                    self.stray,
                )
                result = answer.get("result")
                if not isinstance(result, dict):
                    raise ValueError(f"tools/list answered {answer.get('error')!r}")
                schemas.learn(result)
                cursor = result.get("nextCursor")
                if not isinstance(cursor, str) or not cursor:
                    return schemas
        logger.warning(
            "%s: tools/list still had a nextCursor after %d pages; the rest is not checked", self.child.label, MAX_PAGES
        )
        return schemas
