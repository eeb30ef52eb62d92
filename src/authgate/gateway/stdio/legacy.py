"""Stateful (initialize-handshake) clients, MCP 2025-03-26 … 2025-11-25: a child per session.

- `initialize` without `Mcp-Session-Id` starts a child, forwards the client's own
  `initialize`, and answers with the child's result and a new `Mcp-Session-Id` bound to
  the caller (transports §Session Management). Any other identity presenting the id gets
  404, the same as for an unknown or ended session, and so does everyone once the child
  has exited: the client then starts a new session.
- A request is answered on its POST: JSON, or SSE when the child sends notifications or
  requests (sampling, elicitation, roots) first. What the child sends while no request is
  pending goes to the GET stream. The client's answers to the child's requests come back as
  POSTed responses (→ 202) and are written to the child.
- A POST stream the client closes before the answer cancels the request at the child with
  `notifications/cancelled`: the bridge keeps no events to resume from.
- DELETE ends the session and stops its child.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from authgate.gateway.errors import GatewayError, InvalidJsonRpcRequest, SessionNotFound, error_object
from authgate.gateway.jsonrpc import Message
from authgate.gateway.sse import sse_event
from authgate.gateway.stdio.child import Cancelled, Exchange, StdioChild, id_key
from authgate.gateway.stdio.errors import ChildStartFailed
from authgate.gateway.stdio.http import (
    PING_INTERVAL,
    SSE_HEADERS,
    DisconnectWatch,
    HttpReply,
    accepts,
    header,
    send_json,
    send_status,
)
from authgate.gateway.stdio.pool import ChildPool, LegacySession, Owner
from authgate.gateway.stdio.relay import INTERACTIVE, Wake, give_up, is_response, next_from, next_item
from authgate.observe import note

__all__ = ["LegacyHandler"]

logger = logging.getLogger("authgate.stdio")


class LegacyHandler:
    def __init__(
        self, pool: ChildPool, *, init_timeout: float, call_timeout: float = 600.0, stream_timeout: float = 3600.0
    ) -> None:
        self.pool = pool
        self.init_timeout = init_timeout
        self.call_timeout = call_timeout
        self.stream_timeout = stream_timeout

    def _session(self, scope: Scope, owner: Owner) -> LegacySession:
        session_id = header(scope, "mcp-session-id")
        if not session_id:
            raise InvalidJsonRpcRequest("Bad Request: no Mcp-Session-Id; start a session with initialize first")
        session = self.pool.session_for(session_id, owner)
        if session is None:
            raise SessionNotFound("Session not found: it ended, or it is not yours; start a new one with initialize")
        return session

    async def post(self, scope: Scope, receive: Receive, send: Send, owner: Owner, msg: Message) -> None:
        if msg.is_request and msg.method == "initialize":
            if header(scope, "mcp-session-id"):
                raise InvalidJsonRpcRequest(
                    "Invalid Request: initialize inside a session; send it without Mcp-Session-Id", request_id=msg.id
                )
            await self._initialize(send, owner, msg)
            return
        session = self._session(scope, owner)
        if msg.is_request:
            await self._relay(scope, receive, send, session, msg.obj)
            return
        if msg.method is None:
            await self._client_response(session, msg.obj)
        else:
            await self._client_notification(session, msg.obj)
        await send_status(send, 202)

    # -- initialize ------------------------------------------------------------------------------

    async def _initialize(self, send: Send, owner: Owner, msg: Message) -> None:
        child = await self.pool.start_child(owner)
        early: list[dict[str, Any]] = []
        try:
            ex = await child.request(msg.obj)
            answer = await self._await_answer(child, ex, early)
        except BaseException:
            await self.pool.stop(child)
            raise
        if "result" not in answer:
            await self.pool.stop(child)
            await send_json(send, 200, answer)
            return
        child.init_result = answer["result"] if isinstance(answer["result"], dict) else {}
        session = LegacySession(secrets.token_hex(32), owner, child)
        self.pool.bind_session(session)
        for message in early:
            session.push(message)
        logger.info("%s: session %s… opened for client %s", child.label, session.session_id[:8], owner.client_id)
        await send_json(send, 200, answer, [(b"mcp-session-id", session.session_id.encode())])

    async def _await_answer(self, child: StdioChild, ex: Exchange, early: list[dict[str, Any]]) -> dict[str, Any]:
        """The child's answer to `initialize`; what it sends before that waits for the GET stream."""
        deadline = time.monotonic() + self.init_timeout
        while True:
            try:
                item = await asyncio.wait_for(ex.queue.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise ChildStartFailed(
                    f"the MCP server did not answer initialize within {self.init_timeout:.0f} s",
                    request_id=ex.client_id,
                ) from None
            if isinstance(item, GatewayError | Cancelled):
                raise ChildStartFailed(
                    f"{getattr(item, 'message', 'cancelled')} (during initialize)", request_id=ex.client_id
                )
            if is_response(item):
                return item
            early.append(item)

    # -- requests --------------------------------------------------------------------------------

    async def _relay(
        self, scope: Scope, receive: Receive, send: Send, session: LegacySession, request: dict[str, Any]
    ) -> None:
        child = session.child
        ex = await child.request(request, interactive=request.get("method") in INTERACTIVE)
        reply = HttpReply(send, sse=accepts(scope)[1])
        watch = DisconnectWatch(receive, limit=self.call_timeout)
        try:
            while True:
                item = await next_item(ex, watch, PING_INTERVAL)
                if item is Wake.GONE:
                    await child.cancel(ex, "the client closed the HTTP stream before the answer")
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
                    return
                elif is_response(item):
                    await reply.final(item)
                    return
                elif not await reply.message(item):  # a JSON-only client: the GET stream carries it
                    session.push(item)
        except asyncio.CancelledError:  # cut (a stop's drain time ran out): the child stops working on it
            await child.cancel(ex, "authgate is shutting down")
            raise
        finally:
            watch.close()
            await reply.close()

    async def _client_response(self, session: LegacySession, response: dict[str, Any]) -> None:
        """The client's answer to one of the child's requests (sampling, elicitation, roots)."""
        if id_key(response.get("id")) not in session.child.server_requests:
            logger.info(
                "session %s…: a response to no pending request (id %r); ignored",
                session.session_id[:8],
                response.get("id"),
            )
            return
        session.child.server_requests.pop(id_key(response.get("id")), None)
        await session.child.send(response)

    async def _client_notification(self, session: LegacySession, note: dict[str, Any]) -> None:
        if note.get("method") == "notifications/cancelled":
            params = note.get("params") if isinstance(note.get("params"), dict) else {}
            assert isinstance(params, dict)
            for ex in list(session.child.exchanges.values()):
                if ex.client_id == params.get("requestId"):
                    await session.child.cancel(ex, str(params.get("reason") or "cancelled by the client"))
            return
        await session.child.send(note)

    # -- GET and DELETE -----------------------------------------------------------------------------

    async def get(self, scope: Scope, receive: Receive, send: Send, owner: Owner) -> None:
        """The GET stream: what the child sends outside any request (transports §Listening for Messages)."""
        session = self._session(scope, owner)
        if not accepts(scope)[1]:
            await send_status(send, 406, "Not Acceptable: a GET stream needs Accept: text/event-stream")
            return
        if session.stream_open:
            await send_json(send, 409, error_object(-32600, "Conflict: this session already has a GET stream"))
            return
        session.stream_open = True
        watch = DisconnectWatch(receive, limit=self.stream_timeout)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await self._stream(session, send, watch)
        finally:
            session.stream_open = False
            watch.close()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, session: LegacySession, send: Send, watch: DisconnectWatch) -> None:
        while True:
            message = await next_from(session.outbox, watch, PING_INTERVAL)
            if message in (Wake.GONE, Wake.TIMEOUT) or message is None:  # the client left, the stream's
                return  # time is up (the client opens another), or the session ended
            body = b": keepalive\n\n" if message is Wake.IDLE else sse_event(message)
            await send({"type": "http.response.body", "body": body, "more_body": True})

    async def delete(self, scope: Scope, send: Send, owner: Owner) -> None:
        """End the session and stop its child (transports §Session Management)."""
        session = self._session(scope, owner)
        logger.info("%s: session %s… ended by the client", session.child.label, session.session_id[:8])
        await self.pool.stop(session.child)
        await send_status(send, 200)
