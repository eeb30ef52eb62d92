"""Stateless clients, MCP 2026-07-28: no session, every message a self-contained POST.

Policy (docs/gateway-stdio.md):
- A caller's (subject, client) requests go to children started for that caller and
  initialized by the bridge itself (`initialize` at 2025-11-25 with the client
  capabilities the request's `_meta` declares; children are kept per distinct capability
  set). The per-request envelope (`_meta` protocol version, client info, capabilities,
  log level) is checked (MCP 2026-07-28 basic §Per-request protocol fields, and the
  `Mcp-Method`/`Mcp-Name` header rules → 400 -32020) and removed before the child sees it.
  A `tools/call`'s `Mcp-Param-*` headers are checked against the child's tool schemas
  (tools.py) before the call reaches it.
- `server/discover` is answered from the child's `initialize` result.
- A child holds at most one interactive request (tools/call, prompts/get, resources/read)
  at a time, so a request the child sends the client (sampling, elicitation, roots) belongs
  to it. It becomes an `InputRequiredResult` (MCP 2026-07-28 MRTR) whose `requestState`
  is a random handle bound to the caller; the child's tool stays suspended until the client
  retries with `inputResponses`, which the bridge writes to the child as the answers. A
  handle not retried within `input_timeout` is dropped and the request cancelled.
- Closing the response stream cancels the request (2026-07-28 cancellation: a disconnect
  is the cancellation signal; over stdio that is `notifications/cancelled`).
- `subscriptions/listen` streams carry a child's change notifications (subscriptions.py);
  other notifications outside a request are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp.shared.subscriptions import LISTEN_STREAM_METHODS
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, LOG_LEVEL_META_KEY, SERVER_INFO_META_KEY
from mcp_types.version import LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from starlette.types import Receive, Scope, Send

from authgate._version import __version__
from authgate.gateway.errors import GatewayError, HeaderMismatch, InvalidJsonRpcRequest, error_object
from authgate.gateway.jsonrpc import Message
from authgate.gateway.request_metadata import MirroredHeaders, check_param_headers, param_headers
from authgate.gateway.stdio.child import Cancelled, Exchange, StdioChild
from authgate.gateway.stdio.envelope import LEVELS, complete, status_of, strip_envelope, wanted
from authgate.gateway.stdio.errors import ChildStartFailed, InputStateInvalid
from authgate.gateway.stdio.http import PING_INTERVAL, DisconnectWatch, HttpReply, accepts, send_json, send_status
from authgate.gateway.stdio.pool import ChildPool, Owner
from authgate.gateway.stdio.relay import INTERACTIVE, Wake, is_request, is_response, next_item
from authgate.gateway.stdio.subscriptions import Subscriptions, requested_filter
from authgate.gateway.stdio.tools import ChildTools

__all__ = ["StatelessHandler"]

logger = logging.getLogger("authgate.stdio")


@dataclass(eq=False)
class Suspended:
    """An interactive request waiting for the client's `inputResponses`."""

    owner: Owner
    child: StdioChild
    exchange: Exchange
    method: str
    name: Any
    inputs: dict[str, Any]  # inputRequests key -> the child's own request id
    expires: float


class StatelessHandler:
    def __init__(self, pool: ChildPool, *, init_timeout: float, input_timeout: float) -> None:
        self.pool = pool
        self.init_timeout = init_timeout
        self.input_timeout = input_timeout
        self.suspended: dict[str, Suspended] = {}
        self._locks: dict[Owner, asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.tools: dict[StdioChild, ChildTools] = {}
        self.subscriptions = Subscriptions(pool, timeout=init_timeout, stray=self._unsolicited)

    async def post(self, scope: Scope, receive: Receive, send: Send, owner: Owner, msg: Message) -> None:
        if not msg.is_request:
            if msg.method is None:  # 2026-07-28: clients answer input requests by retrying, never by responses
                raise InvalidJsonRpcRequest(
                    "Invalid Request: a 2026-07-28 client sends no JSON-RPC responses; "
                    "answer inputRequests by retrying with inputResponses"
                )
            await send_status(send, 202)  # no client notification has meaning without a session
            return
        rejection = self._check_envelope(scope, msg)
        if rejection is not None:
            body = error_object(rejection.code, rejection.message, msg.id, rejection.data)
            await send_json(send, ERROR_CODE_HTTP_STATUS.get(rejection.code, 400), body)
            return
        params = msg.params
        if msg.method == "subscriptions/listen":
            await self._listen(scope, receive, send, owner, msg)
        elif msg.method == "server/discover":
            await self._discover(send, owner, msg)
        elif "requestState" in params or "inputResponses" in params:
            await self._resume(scope, receive, send, owner, msg)
        else:
            await self._forward(scope, receive, send, owner, msg)

    @staticmethod
    def _check_envelope(scope: Scope, msg: Message) -> InboundLadderRejection | None:
        raw = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in scope.get("headers", [])]
        duplicated = find_duplicated_routing_header(raw)
        if duplicated is not None:
            return InboundLadderRejection(code=-32020, message=f"{duplicated} header appears more than once")
        verdict = classify_inbound_request(msg.obj, headers=dict(raw))
        return verdict if isinstance(verdict, InboundLadderRejection) else None

    # -- children --------------------------------------------------------------------------------

    async def _dispatch(
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
                await self._refuse(child, item)

    def _unsolicited(self, child: StdioChild, message: dict[str, Any]) -> None:
        """Outside any request a 2026-07-28 client cannot be reached: requests are refused, change
        notifications go to the child's listen streams."""
        if is_request(message):
            task = asyncio.get_running_loop().create_task(self._refuse(child, message))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif isinstance(message.get("method"), str):
            self._notice(child, message)

    def _notice(self, child: StdioChild, note: dict[str, Any]) -> None:
        """A notification of the child's not tied to a request, wherever stdio delivered it."""
        if note.get("method") == "notifications/tools/list_changed" and child in self.tools:
            self.tools[child].refresh()
        if note.get("method") in LISTEN_STREAM_METHODS:
            self.subscriptions.publish(child, note)

    @staticmethod
    async def _refuse(child: StdioChild, request: dict[str, Any]) -> None:
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

    # -- requests --------------------------------------------------------------------------------

    async def _discover(self, send: Send, owner: Owner, msg: Message) -> None:
        """`server/discover` (MCP 2026-07-28 lifecycle), answered from the child's initialize result."""
        child, _ = await self._dispatch(owner, msg, interactive=False, forward=False)
        init = child.init_result or {}
        result: dict[str, Any] = {
            "supportedVersions": list(MODERN_PROTOCOL_VERSIONS),
            "capabilities": init.get("capabilities", {}),
            "ttlMs": 0,
            "cacheScope": "private",
            "resultType": "complete",
            "_meta": {SERVER_INFO_META_KEY: init.get("serverInfo")},
        }
        if init.get("instructions"):
            result["instructions"] = init["instructions"]
        await send_json(send, 200, {"jsonrpc": "2.0", "id": msg.id, "result": result})

    async def _listen(self, scope: Scope, receive: Receive, send: Send, owner: Owner, msg: Message) -> None:
        """`subscriptions/listen`: the answer is the stream (MCP 2026-07-28), so it needs SSE."""
        if not accepts(scope)[1]:
            await send_status(
                send,
                406,
                "Not Acceptable: subscriptions/listen answers with an SSE stream; "
                "send Accept: application/json, text/event-stream",
            )
            return
        requested = requested_filter(msg)
        child, _ = await self._dispatch(owner, msg, interactive=False, forward=False)
        await self.subscriptions.serve(scope, receive, send, child, msg, requested)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, owner: Owner, msg: Message) -> None:
        method = msg.method or ""
        check = None
        if method == "tools/call":
            headers = _param_headers(scope, msg)  # a duplicated or malformed one: refused before any child

            async def check(child: StdioChild) -> None:
                await self._check_params(child, msg, headers)

        child, ex = await self._dispatch(owner, msg, interactive=method in INTERACTIVE, check=check)
        assert ex is not None
        await self._relay(scope, receive, send, owner, child, ex, msg)

    async def _check_params(self, child: StdioChild, msg: Message, headers: dict[str, str]) -> None:
        """MCP 2026-07-28 transports, Server Validation: Mcp-Param-* must mirror the body (400 -32020)."""
        tools = self.tools.get(child)
        if tools is not None:
            await tools.settled()  # after a tools/list_changed, the new schemas
            check_param_headers(tools.schemas, msg, headers)

    async def _resume(self, scope: Scope, receive: Receive, send: Send, owner: Owner, msg: Message) -> None:
        """The client's retry with `inputResponses`: the answers go to the child, the request goes on."""
        handle, state = self._claim(owner, msg)
        if msg.method == "tools/call":
            try:
                await self._check_params(state.child, msg, _param_headers(scope, msg))
            except HeaderMismatch:
                self.suspended[handle] = state  # not used up: the client may retry it with the right headers
                raise
        ex = state.exchange
        ex.client_id = msg.id
        meta = msg.params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta:
            ex.client_token = meta["progressToken"]
        level = meta.get(LOG_LEVEL_META_KEY) if isinstance(meta, dict) else None
        ex.log_level = level if level in LEVELS else None
        responses = msg.params.get("inputResponses")
        assert isinstance(responses, dict)
        for key, child_request_id in state.inputs.items():
            if state.child.alive:
                await state.child.answer(child_request_id, result=responses[key])
        await self._relay(scope, receive, send, owner, state.child, ex, msg)

    def _claim(self, owner: Owner, msg: Message) -> tuple[str, Suspended]:
        """Check a `requestState` (untrusted input, 2026-07-28 MRTR) and take it: the handle and its state."""
        handle = msg.params.get("requestState")
        state = self.suspended.get(handle) if isinstance(handle, str) else None
        if state is None or state.owner != owner:
            raise InputStateInvalid(
                "Invalid params: requestState is unknown, expired or not yours; "
                "send the request again without requestState",
                request_id=msg.id,
            )
        if msg.method != state.method or msg.params.get("name", msg.params.get("uri")) != state.name:
            raise InputStateInvalid("Invalid params: requestState belongs to a different request", request_id=msg.id)
        responses = msg.params.get("inputResponses")
        if not isinstance(responses, dict) or set(responses) != set(state.inputs):
            raise InputStateInvalid(
                f"Invalid params: inputResponses must answer exactly {sorted(state.inputs)}", request_id=msg.id
            )
        assert isinstance(handle, str)
        del self.suspended[handle]
        return handle, state

    async def _relay(
        self, scope: Scope, receive: Receive, send: Send, owner: Owner, child: StdioChild, ex: Exchange, msg: Message
    ) -> None:
        reply = HttpReply(send, sse=accepts(scope)[1])
        watch = DisconnectWatch(receive)
        try:
            while not reply.finished:
                item = await next_item(ex, watch, PING_INTERVAL)
                if item is Wake.GONE:
                    await child.cancel(ex, "the client closed the HTTP stream (2026-07-28: that is cancellation)")
                    return
                if item is Wake.IDLE:
                    await reply.keepalive()
                elif isinstance(item, Cancelled):
                    return
                elif isinstance(item, GatewayError):
                    await reply.error(item)
                else:
                    await self._handle(reply, owner, child, ex, msg, item)
        finally:
            watch.close()
            await reply.close()

    async def _handle(
        self, reply: HttpReply, owner: Owner, child: StdioChild, ex: Exchange, msg: Message, item: dict[str, Any]
    ) -> None:
        if is_response(item):
            if ex.method == "tools/list" and child in self.tools:
                self.tools[child].learn(item.get("result"))
            await reply.final(complete(item, ex.method, child), status_of(item))
        elif is_request(item):
            if item.get("method") == "ping" or not ex.interactive:
                await self._refuse(child, item)
            else:
                await reply.final(self._suspend(owner, child, ex, msg, item))
        elif item.get("method") in LISTEN_STREAM_METHODS:
            self._notice(child, item)  # 2026-07-28: change notifications ride listen streams only
        elif wanted(item, ex):
            await reply.message(item)

    def _suspend(
        self, owner: Owner, child: StdioChild, ex: Exchange, msg: Message, request: dict[str, Any]
    ) -> dict[str, Any]:
        """The child asked the client something: answer with an InputRequiredResult (2026-07-28 MRTR)."""
        handle = secrets.token_urlsafe(32)
        key = f"authgate-{ex.child_id}-{secrets.token_hex(4)}"
        name = msg.params.get("name", msg.params.get("uri"))
        self.suspended[handle] = Suspended(
            owner, child, ex, ex.method, name, {key: request["id"]}, time.monotonic() + self.input_timeout
        )
        input_request = {"method": request["method"], "params": request.get("params", {})}
        result = {
            "resultType": "input_required",
            "inputRequests": {key: input_request},
            "requestState": handle,
            "_meta": {SERVER_INFO_META_KEY: (child.init_result or {}).get("serverInfo")},
        }
        return {"jsonrpc": "2.0", "id": ex.client_id, "result": result}

    async def expire(self, now: float | None = None) -> int:
        """Drop requestState handles the client did not come back for; cancel their requests."""
        now = time.monotonic() if now is None else now
        stale = [h for h, s in self.suspended.items() if s.expires <= now]
        for handle in stale:
            state = self.suspended.pop(handle)
            logger.info("%s: no inputResponses within %.0f s; request cancelled", state.child.label, self.input_timeout)
            for child_request_id in state.inputs.values():
                if state.child.alive:
                    await state.child.answer(
                        child_request_id, error={"code": -32603, "message": "the client did not answer"}
                    )
            await state.child.cancel(state.exchange, "the client did not retry with inputResponses in time")
        for owner in [
            o
            for o, lock in self._locks.items()
            if not lock.locked() and not any(e.owner == o for e in self.pool.entries.values())
        ]:
            del self._locks[owner]
        for child in [c for c in self.tools if not c.alive]:
            self.tools.pop(child).close()
        self.subscriptions.forget_exited()
        return len(stale)

    def close(self) -> None:
        """The bridge is stopping: listen streams end gracefully, listings stop."""
        self.subscriptions.close()
        for tools in self.tools.values():
            tools.close()
        self.tools.clear()


def _param_headers(scope: Scope, msg: Message) -> dict[str, str]:
    """A duplicated or malformed `Mcp-Param-*` header is refused before any child is involved."""
    return param_headers(msg, MirroredHeaders.from_scope(scope.get("headers", [])))
