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
- A session at 2025-11-25 gets resumable streams (resume.py): a priming event first, event ids,
  a `GET` with `Last-Event-ID` resumes a stream, and a closed connection is not cancellation.
  Earlier versions: a POST stream the client closes before the answer cancels the request at
  the child with `notifications/cancelled` (there is nothing to resume from).
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
from authgate.gateway.stdio.resume import RESUMABLE_FROM, CloseStream, Stream, StreamLog, StreamReply
from authgate.observe import note

__all__ = ["LegacyHandler"]

logger = logging.getLogger("authgate.stdio")
TAKE_OVER = 10.0  # seconds a resume waits for the connection it replaces to let go
_UNKNOWN_STREAM = (
    "Bad Request: Last-Event-ID names no stream of this session that can be resumed "
    "(unknown, cancelled, not resumed within {:g} s, or answered over a minute ago)"
)


class LegacyHandler:
    def __init__(
        self,
        pool: ChildPool,
        *,
        init_timeout: float,
        call_timeout: float = 600.0,
        stream_timeout: float = 3600.0,
        sse_retry_ms: int = 1000,
        resume_window: float = 60.0,
    ) -> None:
        self.pool = pool
        self.init_timeout = init_timeout
        self.call_timeout = call_timeout
        self.stream_timeout = stream_timeout
        self.sse_retry_ms = sse_retry_ms
        self.resume_window = resume_window

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
        version = child.init_result.get("protocolVersion")
        if isinstance(version, str) and version >= RESUMABLE_FROM:  # dates: later sorts higher
            session.streams = StreamLog(child, retry_ms=self.sse_retry_ms, resume_window=self.resume_window)
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
            if isinstance(item, CloseStream):  # only a resumable stream's (resume.py)
                continue
            if is_response(item):
                return item
            early.append(item)

    # -- requests --------------------------------------------------------------------------------

    async def _relay(
        self, scope: Scope, receive: Receive, send: Send, session: LegacySession, request: dict[str, Any]
    ) -> None:
        child, sse = session.child, accepts(scope)[1]
        log = session.streams if sse else None
        interactive = request.get("method") in INTERACTIVE
        ex = await child.request(request, interactive=interactive, resumable=log is not None)
        if log is None:
            await self._pump(scope, receive, session, ex, HttpReply(send, sse=sse), None)
            return
        stream = log.open(ex)
        async with stream.lock:
            reply = StreamReply(send, log, stream)
            await reply.start(priming=True)
            await self._pump(scope, receive, session, ex, reply, stream)

    async def _pump(
        self,
        scope: Scope,
        receive: Receive,
        session: LegacySession,
        ex: Exchange,
        reply: HttpReply | StreamReply,
        stream: Stream | None,
    ) -> None:
        """Deliver what the child sends for `ex` on this connection, until the answer or the
        connection's end (a resumable `stream` then waits for its client's GET: resume.py)."""
        child = session.child
        watch = DisconnectWatch(receive, limit=max(0.0, ex.started + self.call_timeout - time.monotonic()))
        if stream is not None and session.streams is not None:
            session.streams.attach(stream, watch.gone)
        try:
            while True:
                item = await next_item(ex, watch, PING_INTERVAL)
                if (item is Wake.GONE or isinstance(item, CloseStream)) and stream is not None and session.streams:
                    session.streams.detach(stream)  # not cancellation: the client resumes it
                    assert isinstance(reply, StreamReply)
                    await reply.close(item.retry_ms if isinstance(item, CloseStream) else None)
                    return
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
                    if session.streams is not None:
                        session.streams.drop(ex)
                    return
                elif isinstance(item, GatewayError):
                    await reply.error(item)
                    return
                elif isinstance(item, CloseStream):
                    continue  # not a resumable stream: nothing to close
                elif is_response(item):
                    await reply.final(item)
                    return
                elif not await reply.message(item):  # a JSON-only client: the GET stream carries it
                    session.push(item)
        except asyncio.CancelledError:  # cut (a stop's drain time ran out): the child stops working on it
            await child.cancel(ex, "authgate is shutting down")
            if session.streams is not None:
                session.streams.drop(ex)  # nothing left to resume
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
                    if session.streams is not None:
                        session.streams.drop(ex)
            return
        await session.child.send(note)

    # -- GET and DELETE -----------------------------------------------------------------------------

    async def get(self, scope: Scope, receive: Receive, send: Send, owner: Owner) -> None:
        """The GET stream: what the child sends outside any request (transports §Listening for Messages)."""
        session = self._session(scope, owner)
        if not accepts(scope)[1]:
            await send_status(send, 406, "Not Acceptable: a GET stream needs Accept: text/event-stream")
            return
        last = header(scope, "last-event-id")
        if last is not None and session.streams is not None:
            await self._resume(scope, receive, send, session, session.streams, last)
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

    async def _resume(
        self, scope: Scope, receive: Receive, send: Send, session: LegacySession, log: StreamLog, last: str
    ) -> None:
        """`GET` with `Last-Event-ID`: replay the stream after that event, then go on with it."""
        found = log.find(last[:64])
        if found is None:
            await send_json(send, 400, error_object(-32600, _UNKNOWN_STREAM.format(log.resume_window)))
            return
        stream, after = found
        if stream.kick is not None:
            stream.kick.set()  # a connection still writes it: that one lets go, this one takes over
        try:
            async with asyncio.timeout(TAKE_OVER):
                await stream.lock.acquire()
        except TimeoutError:
            await send_json(send, 409, error_object(-32600, "Conflict: another connection still writes this stream"))
            return
        try:
            if stream.number not in log.streams:  # cancelled or expired while this one waited
                await send_json(send, 400, error_object(-32600, _UNKNOWN_STREAM.format(log.resume_window)))
                return
            reply = StreamReply(send, log, stream)
            await reply.start(priming=False)
            await reply.replay(after)
            if stream.answered_at is None:
                await self._pump(scope, receive, session, stream.ex, reply, stream)
            else:
                await reply.close()
        finally:
            stream.lock.release()

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
