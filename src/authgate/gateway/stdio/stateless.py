"""Stateless clients, MCP 2026-07-28: no session, every message a self-contained POST.

Policy (docs/gateway-stdio.md):
- A caller's (subject, client) requests go to children started for that caller
  (stateless_children.py): a child that serves 2026-07-28 itself gets them as they came and
  answers them itself (InputRequiredResults, requestState, listen streams: all its own);
  otherwise the bridge initializes it at 2025-11-25 and does what follows. The per-request envelope
  (`_meta` protocol version, client info, capabilities, log level) is checked (MCP
  2026-07-28 basic §Per-request protocol fields, and the `Mcp-Method`/`Mcp-Name` header
  rules → 400 -32020) and removed before the child sees it. A `tools/call`'s `Mcp-Param-*`
  headers are checked against the child's tool schemas (tools.py) before the call reaches it.
- `server/discover` is answered from the child's `initialize` result.
- A child holds at most one interactive request (tools/call, prompts/get, resources/read)
  at a time, so a request the child sends the client (sampling, elicitation, roots) belongs
  to it. It becomes an `InputRequiredResult` (MCP 2026-07-28 MRTR, input_required.py); the
  client's retry with `inputResponses` is written to the child as the answers.
- Closing the response stream cancels the request (2026-07-28 cancellation: a disconnect
  is the cancellation signal; over stdio that is `notifications/cancelled`).
- `subscriptions/listen` streams carry a child's change notifications (subscriptions.py);
  other notifications outside a request are dropped.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
)
from mcp.shared.subscriptions import LISTEN_STREAM_METHODS
from mcp_types import LOG_LEVEL_META_KEY, SERVER_INFO_META_KEY
from mcp_types.methods import CLIENT_REQUESTS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import Receive, Scope, Send

from authgate.gateway.errors import GatewayError, HeaderMismatch, InvalidJsonRpcRequest, error_object
from authgate.gateway.jsonrpc import Message
from authgate.gateway.request_metadata import MirroredHeaders, check_param_headers, param_headers
from authgate.gateway.stdio.child import SUBSCRIPTION_ID, Cancelled, Exchange, StdioChild
from authgate.gateway.stdio.envelope import LEVELS, complete, status_of, wanted
from authgate.gateway.stdio.http import PING_INTERVAL, DisconnectWatch, HttpReply, accepts, send_json, send_status
from authgate.gateway.stdio.input_required import SuspendedRequests
from authgate.gateway.stdio.pool import ChildPool, Owner
from authgate.gateway.stdio.relay import INTERACTIVE, Wake, give_up, is_request, is_response, next_item
from authgate.gateway.stdio.resume import CloseStream
from authgate.gateway.stdio.stateless_children import StatelessChildren
from authgate.gateway.stdio.subscriptions import requested_filter
from authgate.observe import note

__all__ = ["StatelessHandler"]

# MCP 2026-07-28 removes these (SEP-2575): a stateless client gets 404 -32601 for them, which
# the bridge must give itself, as the child it initialized at 2025-11-25 still serves them.
REMOVED_METHODS = frozenset(m for m, v in CLIENT_REQUESTS if v == "2025-11-25") - frozenset(
    m for m, v in CLIENT_REQUESTS if v in MODERN_PROTOCOL_VERSIONS
)


class StatelessHandler:
    def __init__(
        self,
        pool: ChildPool,
        *,
        init_timeout: float,
        input_timeout: float,
        call_timeout: float = 600.0,
        stream_timeout: float = 3600.0,
        protocol: str = "auto",
    ) -> None:
        self.input_timeout = input_timeout
        self.call_timeout = call_timeout
        self.suspended = SuspendedRequests(input_timeout)
        self.listens: set[Exchange] = set()  # subscriptions/listen streams of 2026-07-28 children
        self.children = StatelessChildren(
            pool, init_timeout=init_timeout, stream_timeout=stream_timeout, protocol=protocol
        )

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
        if msg.method in REMOVED_METHODS:  # the child speaks 2025-11-25 and would answer them
            await send_json(
                send, 404, error_object(-32601, f"Method not found: {msg.method} (removed in 2026-07-28)", msg.id)
            )
            return
        params = msg.params
        if msg.method == "subscriptions/listen":
            await self._listen(scope, receive, send, owner, msg)
        elif msg.method == "server/discover":
            await self._discover(scope, receive, send, owner, msg)
        elif ("requestState" in params or "inputResponses" in params) and not self.children.modern:
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

    # -- requests --------------------------------------------------------------------------------

    async def _discover(self, scope: Scope, receive: Receive, send: Send, owner: Owner, msg: Message) -> None:
        """`server/discover` (MCP 2026-07-28 lifecycle): a 2026-07-28 child answers it itself; for a
        2025-11-25 child the bridge answers from its initialize result."""
        child, ex = await self.children.dispatch(owner, msg, interactive=False, forward=None)
        if ex is not None:
            await self._relay(scope, receive, send, owner, child, ex, msg)
            return
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
        requested = None if self.children.modern else requested_filter(msg)
        child, ex = await self.children.dispatch(owner, msg, interactive=False, forward=None)
        if ex is not None:  # a 2026-07-28 child serves the stream itself: its frames name ex (child.py)
            self.listens.add(ex)
            await self._relay(
                scope, receive, send, owner, child, ex, msg, limit=self.children.subscriptions.stream_timeout
            )
            return
        await self.children.subscriptions.serve(scope, receive, send, child, msg, requested or requested_filter(msg))

    async def _forward(self, scope: Scope, receive: Receive, send: Send, owner: Owner, msg: Message) -> None:
        method = msg.method or ""
        check = None
        if method == "tools/call":
            headers = _param_headers(scope, msg)  # a duplicated or malformed one: refused before any child

            async def check(child: StdioChild) -> None:
                await self._check_params(child, msg, headers)

        child, ex = await self.children.dispatch(owner, msg, interactive=method in INTERACTIVE, check=check)
        assert ex is not None
        await self._relay(scope, receive, send, owner, child, ex, msg)

    async def _check_params(self, child: StdioChild, msg: Message, headers: dict[str, str]) -> None:
        """MCP 2026-07-28 transports, Server Validation: Mcp-Param-* must mirror the body (400 -32020)."""
        tools = self.children.tools.get(child)
        if tools is not None:
            await tools.settled()  # after a tools/list_changed, the new schemas
            check_param_headers(tools.schemas, msg, headers)

    async def _resume(self, scope: Scope, receive: Receive, send: Send, owner: Owner, msg: Message) -> None:
        """The client's retry with `inputResponses`: the answers go to the child, the request goes on."""
        handle, state = self.suspended.claim(owner, msg)
        if msg.method == "tools/call":
            try:
                await self._check_params(state.child, msg, _param_headers(scope, msg))
            except HeaderMismatch:
                self.suspended.restore(handle, state)  # not used up: the client may retry it with the right headers
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

    async def _relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        owner: Owner,
        child: StdioChild,
        ex: Exchange,
        msg: Message,
        *,
        limit: float | None = None,
    ) -> None:
        reply = HttpReply(send, sse=accepts(scope)[1])
        watch = DisconnectWatch(receive, limit=limit or self.call_timeout)
        try:
            while not reply.finished:
                item = await next_item(ex, watch, PING_INTERVAL)
                if item is Wake.GONE:
                    await child.cancel(ex, "the client closed the HTTP stream (2026-07-28: that is cancellation)")
                    return
                if (item is Wake.TIMEOUT and limit is not None) or isinstance(item, Closing):
                    # a listen stream's graceful close (upstream_stream_timeout, or a stop): listen again
                    await child.cancel(ex, "upstream_stream_timeout: the client listens again")
                    result = {"resultType": "complete", "_meta": {SUBSCRIPTION_ID: ex.client_id}}
                    await reply.final({"jsonrpc": "2.0", "id": ex.client_id, "result": result})
                    return
                if item is Wake.TIMEOUT:
                    note(scope, outcome=f"{'error_event:' if reply.streaming else ''}upstream_call_timeout")
                    await reply.error(await give_up(child, ex, self.call_timeout))
                    return
                if item is Wake.IDLE:
                    await reply.keepalive()
                elif isinstance(item, Cancelled):
                    return
                elif isinstance(item, GatewayError):
                    await reply.error(item)
                elif isinstance(item, CloseStream):  # only a resumable (2025-11-25) stream's: resume.py
                    continue
                else:
                    await self._handle(reply, owner, child, ex, msg, item)
        except asyncio.CancelledError:  # cut (a stop's drain time ran out): the child stops working on it
            await child.cancel(ex, "authgate is shutting down")
            raise
        finally:
            self.listens.discard(ex)
            watch.close()
            await reply.close()

    async def _handle(
        self, reply: HttpReply, owner: Owner, child: StdioChild, ex: Exchange, msg: Message, item: dict[str, Any]
    ) -> None:
        modern = child.modern_meta is not None  # a 2026-07-28 child: its answers and frames as they are
        if is_response(item):
            if ex.method == "tools/list" and child in self.children.tools:
                self.children.tools[child].learn(item.get("result"))
            await reply.final(item if modern else complete(item, ex.method, child), status_of(item))
        elif modern and ex.method == "subscriptions/listen":
            if _subscription_of(item) == ex.client_id:  # the frames naming this stream (child.py)
                await reply.message(item)
        elif is_request(item):
            if item.get("method") == "ping" or not ex.interactive or modern:
                await self.children.refuse(child, item)
            else:
                await reply.final(self.suspended.suspend(owner, child, ex, msg, item))
        elif item.get("method") in LISTEN_STREAM_METHODS:
            self.children.notice(child, item)  # 2026-07-28: change notifications ride listen streams only
        elif wanted(item, ex):
            await reply.message(item)

    async def expire(self, now: float | None = None) -> int:
        """Drop requestState handles the client did not come back for; cancel their requests."""
        stale = await self.suspended.expire(time.monotonic() if now is None else now)
        self.children.forget_exited()
        return stale

    def close(self) -> None:
        """The bridge is stopping: listen streams end gracefully, listings stop."""
        self.end_listens()
        self.children.close()

    def end_listens(self) -> None:
        """A stop: the listen streams of 2026-07-28 children end with their graceful close."""
        for ex in self.listens:
            ex.deliver(Closing())


class Closing(Cancelled):
    """Ends a 2026-07-28 child's listen stream with the graceful-close result (a stop)."""


def _subscription_of(item: dict[str, Any]) -> Any:
    params = item.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get(SUBSCRIPTION_ID) if isinstance(meta, dict) else None


def _param_headers(scope: Scope, msg: Message) -> dict[str, str]:
    """A duplicated or malformed `Mcp-Param-*` header is refused before any child is involved."""
    return param_headers(msg, MirroredHeaders.from_scope(scope.get("headers", [])))
