"""The children of stateless (MCP 2026-07-28) callers: picked or started, initialized by the bridge.

A caller's (subject, client) requests go to children started for that caller. A child whose
`server/discover` (its first request, with the 2026-07-28 envelope) lists 2026-07-28 takes the
caller's requests as they came, envelope included (`upstream_stdio_protocol = "auto"`);
otherwise the bridge initializes its children itself (`initialize` at 2025-11-25 with the
client capabilities the request's `_meta` declares; children are kept per distinct capability
set). Each child's tool schemas are kept for the `Mcp-Param-*` checks (tools.py). Outside a
request a 2026-07-28 client cannot be reached: a child's requests are refused, its change
notifications go to the listen streams (subscriptions.py), other notifications are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.shared.subscriptions import LISTEN_STREAM_METHODS
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    LOG_LEVEL_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
)
from mcp_types.version import LATEST_HANDSHAKE_VERSION, LATEST_MODERN_VERSION

from authgate._version import __version__
from authgate.gateway.errors import GatewayError
from authgate.gateway.jsonrpc import Message
from authgate.gateway.stdio.child import Cancelled, Exchange, StdioChild
from authgate.gateway.stdio.envelope import LEVELS, strip_envelope
from authgate.gateway.stdio.errors import ChildStartFailed
from authgate.gateway.stdio.pool import ChildPool, Owner
from authgate.gateway.stdio.relay import is_request, is_response
from authgate.gateway.stdio.resume import CloseStream
from authgate.gateway.stdio.subscriptions import Subscriptions
from authgate.gateway.stdio.tools import ChildTools

__all__ = ["MODERN_KEY", "StatelessChildren"]

logger = logging.getLogger("authgate.stdio")
MODERN_KEY = "2026-07-28"  # the pool's capability key of children spoken to at 2026-07-28 (any capabilities)


class StatelessChildren:
    def __init__(
        self, pool: ChildPool, *, init_timeout: float, stream_timeout: float = 3600.0, protocol: str = "auto"
    ) -> None:
        self.pool = pool
        self.init_timeout = init_timeout
        self.protocol = protocol  # "auto": 2026-07-28 children when the command serves it; "2025-11-25": never
        # whether the command serves 2026-07-28 itself (learned from the first child); None: not known yet
        self.modern: bool | None = False if protocol == LATEST_HANDSHAKE_VERSION else None
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
        forward: bool | None = True,
        check: Callable[[StdioChild], Awaitable[None]] | None = None,
    ) -> tuple[StdioChild, Exchange | None]:
        """Pick (or start) a child of this caller, `check` the request against it, and hand it the
        request (`forward` None: only to a child that serves 2026-07-28 itself), under the caller's lock.

        A 2026-07-28 child takes every request of its caller as it came, envelope included (it
        reads the client's capabilities from each request); a 2025-11-25 child was initialized
        with one capability set and holds one interactive request at a time."""
        meta = msg.params.get("_meta") if isinstance(msg.params.get("_meta"), dict) else {}
        assert isinstance(meta, dict)
        caps = meta.get(CLIENT_CAPABILITIES_META_KEY)
        caps = caps if isinstance(caps, dict) else {}
        key = json.dumps(caps, sort_keys=True)
        async with self._locks.setdefault(owner, asyncio.Lock()):
            children = [
                c
                for c in self.pool.stateless_children(owner, MODERN_KEY if self.modern else key)
                if self.modern or not (interactive and c.holds_interactive())
            ]
            if children:
                child = min(children, key=lambda c: len(c.exchanges))
            else:
                child = await self._start(owner, key, caps, meta.get(CLIENT_INFO_META_KEY))
            if check is not None:
                await check(child)
            modern = child.modern_meta is not None
            if forward is False or (forward is None and not modern):
                return child, None
            level = meta.get(LOG_LEVEL_META_KEY)
            ex = await child.request(
                msg.obj if modern else strip_envelope(msg.obj),
                interactive=interactive,
                log_level=level if level in LEVELS else None,
            )
        return child, ex

    async def _start(self, owner: Owner, key: str, caps: dict[str, Any], client_info: Any) -> StdioChild:
        info = (
            client_info if isinstance(client_info, dict) else {"name": "authgate-stdio-bridge", "version": __version__}
        )
        if self.modern is not False:
            child = await self._start_modern(owner, info)
            if child is not None:
                return child
        child = await self.pool.start_child(owner, capabilities=key)
        child.unsolicited = lambda m: self._unsolicited(child, m)
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
            await self._list_tools(child)
        except TimeoutError:
            await self._drop(child)
            raise ChildStartFailed(
                f"the MCP server did not answer initialize within {self.init_timeout:.0f} s"
            ) from None
        except BaseException:
            await self._drop(child)
            raise
        return child

    async def _start_modern(self, owner: Owner, info: Any) -> StdioChild | None:
        """A child spoken to at 2026-07-28 (no handshake: its first request carries the envelope),
        when its `server/discover` lists 2026-07-28; None when it does not, and then never again
        for this command: the probe's child is stopped (its era is decided by its first request)."""
        child = await self.pool.start_child(owner, capabilities=MODERN_KEY)
        child.unsolicited = lambda m: self._unsolicited(child, m)
        meta = {
            PROTOCOL_VERSION_META_KEY: LATEST_MODERN_VERSION,
            CLIENT_INFO_META_KEY: info,
            CLIENT_CAPABILITIES_META_KEY: {},
        }
        discover = {"jsonrpc": "2.0", "id": 0, "method": "server/discover", "params": {"_meta": meta}}
        try:
            ex = await child.request(discover)
            answer = await asyncio.wait_for(self._answer_of(child, ex), self.init_timeout)
            result = answer.get("result")
            if not isinstance(result, dict) or LATEST_MODERN_VERSION not in (result.get("supportedVersions") or ()):
                logger.info(
                    "%s: serves no 2026-07-28 (server/discover: %.200r); spoken to at 2025-11-25", child.label, answer
                )
                self.modern = False
                await self._drop(child)
                return None
            server_meta = result.get("_meta") if isinstance(result.get("_meta"), dict) else {}
            child.init_result = {
                "capabilities": result.get("capabilities") or {},
                "serverInfo": (server_meta or {}).get(SERVER_INFO_META_KEY),
                "instructions": result.get("instructions"),
            }
            child.modern_meta = meta
            self.modern = True
            await self._list_tools(child)
        except TimeoutError:
            await self._drop(child)
            raise ChildStartFailed(
                f"the MCP server did not answer server/discover within {self.init_timeout:.0f} s"
            ) from None
        except ChildStartFailed:  # it exited on server/discover (a 2025-era server may): not modern
            logger.info("%s: exited on server/discover; spoken to at 2025-11-25", child.label)
            self.modern = False
            await self._drop(child)
            return None
        except BaseException:
            await self._drop(child)
            raise
        return child

    async def _drop(self, child: StdioChild) -> None:
        self.tools.pop(child, None)
        await self.pool.stop(child)

    async def _list_tools(self, child: StdioChild) -> None:
        """Its tool schemas, for the Mcp-Param-* checks (tools.py)."""
        assert child.init_result is not None
        tools = self.tools[child] = ChildTools(
            child, timeout=self.init_timeout, stray=lambda m: self._unsolicited(child, m)
        )
        if "tools" in (child.init_result.get("capabilities") or {}):
            tools.refresh()  # a client may call a tool it never listed: its Mcp-Param-* are checked too
            await tools.settled()

    async def _answer_of(self, child: StdioChild, ex: Exchange) -> dict[str, Any]:
        while True:
            item = await ex.queue.get()
            if isinstance(item, GatewayError | Cancelled):
                raise ChildStartFailed(f"{getattr(item, 'message', 'cancelled')} (during initialize)")
            if isinstance(item, CloseStream):  # only a resumable stream's (resume.py)
                continue
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
