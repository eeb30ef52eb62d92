"""`subscriptions/listen` for 2026-07-28 clients of the stdio bridge (MCP 2026-07-28
basic/patterns/subscriptions; transports: the listen response is the long-lived SSE stream).

A listen stream is bound to one child of the caller (chosen like any other request of that
caller and capability set) and carries what that child sends outside any request:

- the acknowledgment first (`notifications/subscriptions/acknowledged`), whose filter is the
  subset of the requested one the child's `initialize` capabilities support
  (`tools.listChanged`, `prompts.listChanged`, `resources.listChanged`; `resources.subscribe`
  for `resourceSubscriptions`, each URI the child accepted with `resources/subscribe`);
- then only the honored notification types (resources/updated only for the stream's URIs),
  each tagged with `_meta["io.modelcontextprotocol/subscriptionId"]` = the listen request's id.

The stream keeps its child from being reaped, sends SSE comments while idle, and ends when
the client closes it (the URIs only it needed are then `resources/unsubscribe`d at the
child), when the child exits (a JSON-RPC error, `stdio_server_exited`: listen again and
refetch, the new process knows nothing of the old one's state), or when the bridge stops or
the stream has been open for `stream_timeout` seconds (the empty `SubscriptionsListenResult`,
the graceful close: the client listens again).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY
from mcp_types import SERVER_INFO_META_KEY
from starlette.types import Receive, Scope, Send

from authgate.gateway.errors import GatewayError, JsonRpcId
from authgate.gateway.jsonrpc import Message
from authgate.gateway.stdio.child import StdioChild
from authgate.gateway.stdio.errors import ChildExited, ChildLimit, ListenFilterInvalid
from authgate.gateway.stdio.http import PING_INTERVAL, DisconnectWatch, HttpReply
from authgate.gateway.stdio.pool import ChildPool
from authgate.gateway.stdio.relay import Wake, ask, next_from

__all__ = ["Requested", "Subscriptions", "requested_filter"]

logger = logging.getLogger("authgate.stdio")

# filter key → (notification method, capability, capability flag)
LIST_CHANGED = {
    "toolsListChanged": ("notifications/tools/list_changed", "tools", "listChanged"),
    "promptsListChanged": ("notifications/prompts/list_changed", "prompts", "listChanged"),
    "resourcesListChanged": ("notifications/resources/list_changed", "resources", "listChanged"),
}
UPDATED = "notifications/resources/updated"
MAX_URIS = 256  # per stream: each is a resources/subscribe to the child
MAX_STREAMS_PER_CHILD = 64
MAX_QUEUED = 1000  # notifications waiting for a client that is not reading


class End(enum.Enum):
    CLOSING = "the bridge is stopping"
    CHILD_EXITED = "the child exited"


@dataclass(frozen=True, slots=True)
class Requested:
    """The client's filter: the list-changed keys it asked for, and the resource URIs."""

    flags: frozenset[str]
    uris: tuple[str, ...]


def requested_filter(msg: Message) -> Requested:
    """`params.notifications` of a listen request; -32602 if it is not a SubscriptionFilter."""
    wanted = msg.params.get("notifications")
    if not isinstance(wanted, dict):
        raise ListenFilterInvalid(
            "Invalid params: subscriptions/listen needs params.notifications, an object", request_id=msg.id
        )
    for key in LIST_CHANGED:
        if key in wanted and not isinstance(wanted[key], bool):
            raise ListenFilterInvalid(f"Invalid params: notifications.{key} must be a boolean", request_id=msg.id)
    uris = wanted.get("resourceSubscriptions", [])
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise ListenFilterInvalid(
            "Invalid params: notifications.resourceSubscriptions must be a list of URIs", request_id=msg.id
        )
    if len(uris) > MAX_URIS:
        raise ListenFilterInvalid(
            f"Invalid params: at most {MAX_URIS} resourceSubscriptions per stream", request_id=msg.id
        )
    return Requested(frozenset(k for k in LIST_CHANGED if wanted.get(k) is True), tuple(dict.fromkeys(uris)))


def _supports(capabilities: dict[str, Any], capability: str, flag: str) -> bool:
    value = capabilities.get(capability)
    return isinstance(value, dict) and value.get(flag) is True


@dataclass(eq=False)
class Listen:
    """One open listen stream."""

    subscription_id: JsonRpcId
    methods: frozenset[str]  # the honored list_changed notifications
    uris: set[str] = field(default_factory=set)  # the honored resourceSubscriptions
    queue: asyncio.Queue[dict[str, Any] | End] = field(default_factory=asyncio.Queue)

    def offer(self, note: dict[str, Any]) -> None:
        """Queue `note`, tagged with the subscription id, if the stream agreed to carry it."""
        params = note.get("params") if isinstance(note.get("params"), dict) else {}
        assert isinstance(params, dict)
        method = note.get("method")
        if not (method in self.methods or (method == UPDATED and params.get("uri") in self.uris)):
            return  # MCP 2026-07-28 subscriptions: MUST NOT send types the client did not request
        if self.queue.qsize() >= MAX_QUEUED:
            logger.warning("listen stream %r: the client is not reading; dropped %s", self.subscription_id, method)
            return
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        assert isinstance(meta, dict)
        tagged = {**params, "_meta": {**meta, SUBSCRIPTION_ID_META_KEY: self.subscription_id}}
        self.queue.put_nowait({"jsonrpc": "2.0", "method": method, "params": tagged})


class Subscriptions:
    """The open listen streams of every stateless child, and the URIs subscribed at each child.

    `stray(child, message)` takes what a child sends while the bridge waits for its answer to
    a resources/(un)subscribe."""

    def __init__(
        self,
        pool: ChildPool,
        *,
        timeout: float,
        stray: Callable[[StdioChild, dict[str, Any]], None],
        stream_timeout: float = 3600.0,
    ) -> None:
        self.pool = pool
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.stray = stray
        self._streams: dict[StdioChild, list[Listen]] = {}
        self._subscribed: dict[StdioChild, collections.Counter[str]] = {}
        self._locks: dict[StdioChild, asyncio.Lock] = {}

    def publish(self, child: StdioChild, note: dict[str, Any]) -> None:
        """A notification the child sent outside any request: to its streams that want it."""
        for listen in self._streams.get(child, ()):
            listen.offer(note)

    def close(self) -> None:
        """The bridge is stopping: every stream ends with the graceful-close result."""
        for streams in self._streams.values():
            for listen in streams:
                listen.queue.put_nowait(End.CLOSING)

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, child: StdioChild, msg: Message, requested: Requested
    ) -> None:
        """The listen stream, until the client leaves, the child exits or the bridge stops."""
        if len(self._streams.get(child, ())) >= MAX_STREAMS_PER_CHILD:
            raise ChildLimit(
                f"this MCP server process already carries {MAX_STREAMS_PER_CHILD} subscriptions/listen "
                "streams (the limit); close one first",
                request_id=msg.id,
            )
        caps = (child.init_result or {}).get("capabilities")
        caps = caps if isinstance(caps, dict) else {}
        honored: dict[str, Any] = {k: True for k in sorted(requested.flags) if _supports(caps, *LIST_CHANGED[k][1:])}
        listen = Listen(msg.id, frozenset(LIST_CHANGED[k][0] for k in honored))
        streams = self._streams.setdefault(child, [])
        streams.append(listen)
        reply = HttpReply(send, sse=True)
        watch = DisconnectWatch(receive, limit=self.stream_timeout)
        exited = asyncio.ensure_future(child.exited.wait())
        exited.add_done_callback(lambda t: None if t.cancelled() else listen.queue.put_nowait(End.CHILD_EXITED))
        try:
            with self.pool.hold(child):
                if requested.uris and _supports(caps, "resources", "subscribe"):
                    await self._subscribe(child, listen, requested.uris)
                    if listen.uris:
                        honored["resourceSubscriptions"] = [u for u in requested.uris if u in listen.uris]
                await reply.message(
                    {
                        "jsonrpc": "2.0",
                        "method": "notifications/subscriptions/acknowledged",
                        "params": {"notifications": honored, "_meta": {SUBSCRIPTION_ID_META_KEY: msg.id}},
                    }
                )
                logger.info("%s: listen stream %r opened (%s)", child.label, msg.id, ", ".join(honored) or "nothing")
                await self._stream(reply, watch, child, listen)
                logger.info("%s: listen stream %r ended", child.label, msg.id)
        finally:
            exited.cancel()
            watch.close()
            streams.remove(listen)
            if not streams:
                self._streams.pop(child, None)
            await self._unsubscribe(child, listen)
            await reply.close()

    async def _stream(self, reply: HttpReply, watch: DisconnectWatch, child: StdioChild, listen: Listen) -> None:
        while True:
            item = await next_from(listen.queue, watch, PING_INTERVAL)
            if item is Wake.GONE:  # MCP 2026-07-28: closing the stream is the client's cancellation
                return
            if item is Wake.IDLE:
                await reply.keepalive()
            elif item is End.CLOSING or item is Wake.TIMEOUT:  # stopping, or upstream_stream_timeout: listen again
                result = {
                    "resultType": "complete",
                    "_meta": {
                        SUBSCRIPTION_ID_META_KEY: listen.subscription_id,
                        SERVER_INFO_META_KEY: (child.init_result or {}).get("serverInfo"),
                    },
                }
                await reply.final({"jsonrpc": "2.0", "id": listen.subscription_id, "result": result})
                return
            elif item is End.CHILD_EXITED:
                status = f"exited with status {child.returncode}" if child.returncode is not None else "stopped"
                await reply.error(
                    ChildExited(
                        f"the MCP server process ({child.program}) {status}; send subscriptions/listen again "
                        "(a new process starts) and refetch what you depend on",
                        request_id=listen.subscription_id,
                    )
                )
                return
            else:
                await reply.message(item)

    async def _subscribe(self, child: StdioChild, listen: Listen, uris: tuple[str, ...]) -> None:
        """resources/subscribe each URI no other stream of this child already subscribed."""
        counts = self._subscribed.setdefault(child, collections.Counter())
        async with self._locks.setdefault(child, asyncio.Lock()):
            for uri in uris:
                if counts[uri] == 0 and not await self._ask(child, "resources/subscribe", uri):
                    continue
                counts[uri] += 1
                listen.uris.add(uri)

    async def _unsubscribe(self, child: StdioChild, listen: Listen) -> None:
        """resources/unsubscribe the URIs no other stream of this child still needs."""
        counts = self._subscribed.get(child)
        if counts is None:
            return
        async with self._locks.setdefault(child, asyncio.Lock()):
            for uri in sorted(listen.uris):
                counts[uri] -= 1
                if counts[uri] <= 0:
                    del counts[uri]
                    if child.alive:
                        await self._ask(child, "resources/unsubscribe", uri)
            if not counts:
                self._subscribed.pop(child, None)

    def forget_exited(self) -> None:
        """Drop what is kept for children that are gone (run by the reaper)."""
        for child in [c for c in self._locks if not c.alive and c not in self._streams]:
            self._locks.pop(child, None)
            self._subscribed.pop(child, None)

    async def _ask(self, child: StdioChild, method: str, uri: str) -> bool:
        """Send `method` for `uri` to the child; True if it answered with a result."""
        try:
            answer = await ask(
                child,
                {"jsonrpc": "2.0", "id": f"authgate-{method}", "method": method, "params": {"uri": uri}},
                self.timeout,
                lambda m: self.stray(child, m),
            )
        except TimeoutError:
            logger.warning("%s: no answer to %s %s within %.0f s", child.label, method, uri, self.timeout)
            return False
        except GatewayError as exc:
            logger.info("%s: %s %s failed: %s", child.label, method, uri, exc.message)
            return False
        if "result" not in answer:
            logger.info("%s: %s %s refused: %s", child.label, method, uri, answer.get("error"))
            return False
        return True
