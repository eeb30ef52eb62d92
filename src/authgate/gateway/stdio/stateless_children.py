"""The children of stateless (MCP 2026-07-28) callers: picked or started, initialized by the bridge.

A caller's (subject, client) requests go to children started for that caller and initialized
by the bridge itself (`initialize` at 2025-11-25 with the client capabilities the request's
`_meta` declares; children are kept per distinct capability set). Each child's tool schemas
are kept for the `Mcp-Param-*` checks (tools.py). Outside a request a 2026-07-28 client cannot
be reached: a child's requests are refused, its change notifications go to the listen streams
(subscriptions.py), other notifications are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.shared.subscriptions import LISTEN_STREAM_METHODS
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, LOG_LEVEL_META_KEY
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from authgate._version import __version__
from authgate.gateway.errors import GatewayError
from authgate.gateway.jsonrpc import Message
from authgate.gateway.stdio.child import Cancelled, Exchange, StdioChild
from authgate.gateway.stdio.envelope import LEVELS, strip_envelope
from authgate.gateway.stdio.errors import ChildStartFailed
from authgate.gateway.stdio.pool import ChildPool, Owner
from authgate.gateway.stdio.relay import is_request, is_response
from authgate.gateway.stdio.subscriptions import Subscriptions
from authgate.gateway.stdio.tools import ChildTools

__all__ = ["StatelessChildren"]


class StatelessChildren:
    def __init__(self, pool: ChildPool, *, init_timeout: float, stream_timeout: float = 3600.0) -> None:
        self.pool = pool
        self.init_timeout = init_timeout
        self._locks: dict[Owner, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.tools: dict[StdioChild, ChildTools] = {}
        self.subscriptions = Subscriptions(
            pool, timeout=init_timeout, stream_timeout=stream_timeout, stray=self._unsolicited
        )

    async def dispatch(
        self,
        owner: Owner,
        msg: Message,
        *,
        interactive: bool,
        forward: bool = True,
        check: Callable[[StdioChild], Awaitable[None]] | None = None,
    ) -> tuple[StdioChild, Exchange | None]:
        """Pick (or start) a child of this caller, `check` the request against it, and hand it the
        request, under the caller's lock."""
        meta = msg.params.get("_meta") if isinstance(msg.params.get("_meta"), dict) else {}
        assert isinstance(meta, dict)
        caps = meta.get(CLIENT_CAPABILITIES_META_KEY)
        caps = caps if isinstance(caps, dict) else {}
        key = json.dumps(caps, sort_keys=True)
        async with self._locks.setdefault(owner, asyncio.Lock()):
            children = [
                c for c in self.pool.stateless_children(owner, key) if not (interactive and c.holds_interactive())
            ]
            if children:
                child = min(children, key=lambda c: len(c.exchanges))
            else:
                child = await self._start(owner, key, caps, meta.get(CLIENT_INFO_META_KEY))
            if check is not None:
                await check(child)
            if not forward:
                return child, None
            level = meta.get(LOG_LEVEL_META_KEY)
            ex = await child.request(
                strip_envelope(msg.obj), interactive=interactive, log_level=level if level in LEVELS else None
            )
        return child, ex

    async def _start(self, owner: Owner, key: str, caps: dict[str, Any], client_info: Any) -> StdioChild:
        child = await self.pool.start_child(owner, capabilities=key)
        child.unsolicited = lambda m: self._unsolicited(child, m)
        info = (
            client_info if isinstance(client_info, dict) else {"name": "authgate-stdio-bridge", "version": __version__}
        )
        try:
            ex = await child.request(
                {
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {"protocolVersion": LATEST_HANDSHAKE_VERSION, "capabilities": caps, "clientInfo": info},
                }
            )
            answer = await asyncio.wait_for(self._answer_of(child, ex), self.init_timeout)
            if not isinstance(answer.get("result"), dict):
                raise ChildStartFailed(f"the MCP server refused initialize: {answer.get('error')}")
            child.init_result = answer["result"]
            await child.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            tools = self.tools[child] = ChildTools(
                child, timeout=self.init_timeout, stray=lambda m: self._unsolicited(child, m)
            )
            if "tools" in (child.init_result.get("capabilities") or {}):
                tools.refresh()  # a client may call a tool it never listed: its Mcp-Param-* are checked too
                await tools.settled()
        except TimeoutError:
            self.tools.pop(child, None)
            await self.pool.stop(child)
            raise ChildStartFailed(
                f"the MCP server did not answer initialize within {self.init_timeout:.0f} s"
            ) from None
        except BaseException:
            self.tools.pop(child, None)
            await self.pool.stop(child)
            raise
        return child

    async def _answer_of(self, child: StdioChild, ex: Exchange) -> dict[str, Any]:
        while True:
            item = await ex.queue.get()
            if isinstance(item, GatewayError | Cancelled):
                raise ChildStartFailed(f"{getattr(item, 'message', 'cancelled')} (during initialize)")
            if is_response(item):
                return item
            if is_request(item):
                await self.refuse(child, item)

    def _unsolicited(self, child: StdioChild, message: dict[str, Any]) -> None:
        """Outside any request a 2026-07-28 client cannot be reached: requests are refused, change
        notifications go to the child's listen streams."""
        if is_request(message):
            task = asyncio.get_running_loop().create_task(self.refuse(child, message))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif isinstance(message.get("method"), str):
            self.notice(child, message)

    def notice(self, child: StdioChild, note: dict[str, Any]) -> None:
        """A notification of the child's not tied to a request, wherever stdio delivered it."""
        if note.get("method") == "notifications/tools/list_changed" and child in self.tools:
            self.tools[child].refresh()
        if note.get("method") in LISTEN_STREAM_METHODS:
            self.subscriptions.publish(child, note)

    @staticmethod
    async def refuse(child: StdioChild, request: dict[str, Any]) -> None:
        """Answer a request of the child's that cannot reach the client (a ping: the bridge answers)."""
        error = {
            "code": -32603,
            "message": (
                f"authgate stdio bridge: {request.get('method')} can reach a 2026-07-28 client only during "
                "tools/call, prompts/get or resources/read"
            ),
        }
        with contextlib.suppress(GatewayError):
            if request.get("method") == "ping":
                await child.answer(request["id"], result={})
            else:
                await child.answer(request["id"], error=error)

    def forget_exited(self) -> None:
        """Drop the locks of callers without children, and the tool listings of exited children."""
        for owner in [
            o
            for o, lock in self._locks.items()
            if not lock.locked() and not any(e.owner == o for e in self.pool.entries.values())
        ]:
            del self._locks[owner]
        for child in [c for c in self.tools if not c.alive]:
            self.tools.pop(child).close()
        self.subscriptions.forget_exited()

    def close(self) -> None:
        """The bridge is stopping: listen streams end gracefully, listings stop."""
        self.subscriptions.close()
        for tools in self.tools.values():
            tools.close()
        self.tools.clear()
