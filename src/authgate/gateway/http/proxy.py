"""`HttpUpstreamProxy`: the protected MCP app when the MCP server is somewhere else.

A pure ASGI app (never BaseHTTPMiddleware: it would buffer SSE) that the guard calls with
the caller's `Identity` in the scope. For each request to the MCP endpoint:

    read + parse the body ─> check mirrored headers ─> check the session's owner
        ─> build the upstream headers ─> send ─> relay the answer as it arrives

* SSE answers are relayed chunk by chunk as they arrive (SSE `id:` / `retry:` lines byte for byte;
  `X-Accel-Buffering: no` added); GET streams and DELETE of legacy sessions likewise; JSON answers
  are checked whole before they go out (relay.py, answer.py); a 202 for a notification passes.
* One request's answer takes at most `upstream_call_timeout`, a GET stream (or a
  `subscriptions/listen` one) at most `upstream_stream_timeout`, after which it ends
  cleanly (the listen stream with its graceful result) and the client reconnects.
* A client that disconnects, a timeout or a stop's drain (gateway/drain.py) cancels the
  upstream request: its connection is closed, the cancellation for 2026-07-28 (transports
  §Cancellation), and a 2025-era request also gets `notifications/cancelled` (cancellation.py).
* Failures before the answer starts become JSON-RPC errors with 502/503/504 (`errors.py`), after
  it the SSE stream's last event (reply.py), a drain's cut (`ShuttingDown`) like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from starlette.types import Receive, Scope, Send
from yarl import URL

from authgate.errors import StoreError
from authgate.gateway.body import PARSED_BODY_KEY, ClientGone, read_body
from authgate.gateway.drain import own_cuts, take_cut
from authgate.gateway.errors import (
    BodyTooLarge,
    GatewayError,
    InvalidBatch,
    JsonRpcId,
    MethodNotAllowed,
    ParseError,
    SessionNotFound,
    SessionStoreUnavailable,
    ShuttingDown,
    UpstreamCallTimeout,
    UpstreamRefused,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from authgate.gateway.headers import IdentityHeaderNames, UpstreamRequestHeaders
from authgate.gateway.http.cancellation import Flight, UpstreamCancellation, watch_disconnect
from authgate.gateway.http.relay import is_sse, relay_response, relay_with_rejections
from authgate.gateway.http.reply import Reply
from authgate.gateway.http.sessions import InMemorySessionBindings, Owner, SessionBindings
from authgate.gateway.http.upstream import Upstream
from authgate.gateway.http.upstream_oauth import UpstreamOAuth
from authgate.gateway.http.upstream_token import UpstreamTokenHeader
from authgate.gateway.jsonrpc import LISTEN, Body, listen_closed, parse_body
from authgate.gateway.request_metadata import MirroredHeaders, check_request_metadata, is_modern
from authgate.gateway.tool_schemas import ToolSchemas, ToolsListTap
from authgate.guard.identity import SCOPE_KEY, Identity
from authgate.masking import masked_url
from authgate.observe import note
from authgate.store.bundle import Stores

__all__ = ["HttpUpstreamProxy"]

log = logging.getLogger("authgate.gateway")

_ANONYMOUS = Owner("", "")


@dataclass(slots=True)
class _Request:
    method: str
    url: URL
    headers: list[tuple[str, str]]
    body: Body | None
    raw_body: bytes | None
    session_id: str | None
    owner: Owner
    request_id: JsonRpcId
    request_ids: frozenset[JsonRpcId]  # of every request in the body (a batch has several)
    modern: bool  # a 2026-07-28 request: closing its connection is its cancellation
    listen: bool  # subscriptions/listen: a stream, timed by upstream_stream_timeout
    replayable: bool  # safe to send again on a fresh connection (jsonrpc.REPLAYABLE_METHODS)
    streams: list[str] = field(default_factory=list)

    @property
    def stream_end(self) -> dict[str, Any] | None:  # the last event of a stream ended on purpose
        return listen_closed(self.request_id) if self.listen and self.request_id is not None else None


class HttpUpstreamProxy:
    """Forwards `{mcp path}` POST/GET/DELETE to a Streamable HTTP MCP server."""

    def __init__(
        self,
        upstream_url: str,
        *,
        connect_timeout: float = 5.0,
        first_byte_timeout: float = 300.0,
        idle_timeout: float = 300.0,
        call_timeout: float = 600.0,
        stream_timeout: float = 3600.0,
        upstream_headers: Mapping[str, str] | None = None,
        identity_headers: IdentityHeaderNames | None = None,
        upstream_token_header: str | None = None,
        upstream_oauth: UpstreamOAuth | None = None,
        max_body: int = 4 << 20,
        sessions: SessionBindings | None = None,
        mount_path: str = "/mcp",
    ) -> None:
        self.upstream = Upstream(
            upstream_url,
            connect_timeout=connect_timeout,
            first_byte_timeout=first_byte_timeout,
            idle_timeout=idle_timeout,
            call_timeout=call_timeout,
            stream_timeout=stream_timeout,
        )
        self.cancellation = UpstreamCancellation(self.upstream)
        self.request_headers = UpstreamRequestHeaders(upstream_headers or {}, identity_headers, upstream_token_header)
        self.upstream_token = UpstreamTokenHeader(upstream_token_header)  # proxy mode: upstream_token.py
        self.oauth = upstream_oauth or UpstreamOAuth()  # each person's own token: upstream_oauth.py
        self.max_body = max_body
        self.sessions: SessionBindings = sessions if sessions is not None else InMemorySessionBindings()
        self._own_sessions = sessions is None  # bindings this proxy chose, which a store may replace
        self.tool_schemas = ToolSchemas()
        self.mount_path = mount_path.rstrip("/")

    # -- life -------------------------------------------------------------------------------

    async def open(self) -> None:
        await self.upstream.open()
        await self.oauth.probe(self.upstream)

    async def close(self) -> None:
        await self.cancellation.close()
        await self.upstream.close()
        closing = getattr(self.sessions, "close", None)
        if closing is not None:
            await closing()

    def attach_store(self, stores: Stores) -> SessionBindings:
        """Keep session bindings in authgate's database (called at start-up by AuthgateApp), so
        that every replica honours every session; returns the bindings in use."""
        if self._own_sessions:
            self.sessions = stores.session_bindings
            self._own_sessions = False
        return self.sessions

    @contextlib.asynccontextmanager
    async def lifespan_context(self, _app: object) -> AsyncIterator[None]:
        """Opens and closes the connection pool (entered by AuthgateApp's lifespan)."""
        await self.open()
        try:
            yield
        finally:
            await self.close()

    @property
    def needs_broker(self) -> bool:
        """Does a request need the connection broker (AuthgateApp puts it in the scope then)?"""
        return self.oauth.needs_broker

    async def check_ready(self) -> tuple[bool, str]:
        """For /health/ready: is the upstream reachable and does it accept our credential?"""
        return await self.oauth.ready(self.upstream, self.request_headers.static)

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # MCP has no WebSocket transport; the server refuses the handshake
        request: _Request | None = None
        reply = Reply(send, scope)
        own_cuts(scope)  # a stop's cut ends the answer here, like a timeout (_exchange)
        try:
            request = await self._prepare(scope, receive)
            reply.expect(request.request_ids)
            await self._exchange(request, receive, reply)
        except GatewayError as exc:
            if exc.request_id is None and request is not None:
                exc.request_id = request.request_id
            if exc.status >= 500 and not isinstance(exc, ShuttingDown):  # the drain logs its cuts once
                log.warning("%s", exc.message)
            await reply.fail(exc)
        except ClientGone:
            return

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- before sending ---------------------------------------------------------------------

    async def _prepare(self, scope: Scope, receive: Receive) -> _Request:
        method: str = scope["method"]
        if method not in ("POST", "GET", "DELETE"):
            raise MethodNotAllowed(
                f"{method} is not part of the MCP Streamable HTTP transport: POST messages "
                "(GET and DELETE for legacy sessions)"
            )
        identity = scope[SCOPE_KEY] if isinstance(scope.get(SCOPE_KEY), Identity) else None
        owner = Owner(identity.subject, identity.client_id) if identity is not None else _ANONYMOUS
        body = raw = None
        if method == "POST":
            raw = await self._read_body(scope, receive)
            body = self._parse(scope, raw)
        single = body.single if body is not None else None
        request_id = single.id if single is not None else None
        session_id = _header(scope, b"mcp-session-id")
        if session_id is not None and await self._owner(session_id, request_id) != owner:
            # The same answer for unknown, expired and someone else's: nothing to learn from it.
            raise SessionNotFound("Session not found: start a new session (initialize)", request_id=request_id)
        if body is not None and not body.messages:
            raise InvalidBatch(list(body.rejected))
        path: str = scope.get("path", "")
        suffix = path[len(self.mount_path) :] if path.startswith(self.mount_path + "/") else ""
        return _Request(
            method,
            self.upstream.url_for(suffix, scope.get("query_string", b"")),
            self.request_headers.build(scope, identity)
            + await self.upstream_token(scope, identity, request_id)
            + await self.oauth.header(scope, request_id),
            body,
            body.upstream_bytes() if body is not None else raw,
            session_id,
            owner,
            request_id,
            frozenset(m.id for m in body.messages if m.is_request and m.id is not None) if body else frozenset(),
            single is not None and is_modern(single, _header(scope, b"mcp-protocol-version")),
            single is not None and single.method == LISTEN,
            method != "POST" or (body is not None and bool(body.messages) and body.replayable),
        )

    async def _owner(self, session_id: str, request_id: JsonRpcId) -> Owner | None:
        try:
            return await self.sessions.owner(session_id)
        except StoreError as exc:
            raise SessionStoreUnavailable(
                f"authgate: cannot check the session's owner ({exc}); try again", request_id=request_id
            ) from exc

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise BodyTooLarge(f"the request body is larger than {self.max_body} bytes")
        return await read_body(receive, self.max_body)

    def _parse(self, scope: Scope, raw: bytes) -> Body | None:
        parsed = scope.get(PARSED_BODY_KEY)  # the policy layer in front already parsed these bytes
        try:
            body = parse_body(raw, parsed[1]) if parsed is not None and parsed[0] is raw else parse_body(raw)
        except ParseError:
            if "json" in (_header(scope, b"content-type") or "json"):
                raise
            return None  # not JSON and not claiming to be: the upstream answers it (415)
        check_request_metadata(body, MirroredHeaders.from_scope(scope["headers"]), self.tool_schemas)
        return body

    # -- sending and relaying ---------------------------------------------------------------

    async def _exchange(self, request: _Request, receive: Receive, reply: Reply) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("the gateway runs inside an asyncio task")
        flight = Flight(task)
        watcher = asyncio.get_running_loop().create_task(watch_disconnect(receive, flight))
        try:
            await self._timed(request, reply)
        except asyncio.CancelledError:
            if (cut := take_cut(reply.scope)) is not None:  # a stop's drain cut: ended like a timeout
                self._cancel_upstream(request, reply, "authgate is shutting down")
                if not ((request.method == "GET" or request.listen) and reply.started):
                    raise cut from None
                await reply.close("stream_closed:shutting_down", request.stream_end)
                return
            self._cancel_upstream(
                request, reply, "the client disconnected" if flight.client_gone else "authgate ended the request"
            )
            if not flight.client_gone or task.uncancel() > 0:
                raise
            note(reply.scope, outcome="client_gone")
            log.debug("client went away; upstream request to %s closed", masked_url(str(request.url)))
        except UpstreamTimeout as exc:
            self._cancel_upstream(request, reply, f"authgate stopped waiting ({exc.reason})")
            raise
        finally:
            flight.done = True
            watcher.cancel()
            for session_id in request.streams:
                await self.sessions.release(session_id)

    async def _timed(self, request: _Request, reply: Reply) -> None:
        """The exchange, within upstream_call_timeout (a call) or upstream_stream_timeout (a GET
        or listen stream, which then ends cleanly: the client reconnects)."""
        stream = request.method == "GET" or request.listen
        limit = self.upstream.stream_timeout if stream else self.upstream.call_timeout
        deadline = asyncio.timeout(limit)
        try:
            async with deadline, self.upstream.traced(request.method, request.headers, reply):
                await self._relay(request, reply)
        except TimeoutError:
            if not deadline.expired():
                raise
            if stream and reply.started:
                await reply.close("stream_timeout", request.stream_end)
                return
            raise UpstreamCallTimeout(
                f"authgate: {self.upstream.where} did not finish answering within {limit:g} s "
                f"({'upstream_stream_timeout' if stream else 'upstream_call_timeout'})"
            ) from None

    def _cancel_upstream(self, request: _Request, reply: Reply, reason: str) -> None:
        """Best effort, in the background: a 2025-era upstream does not take a closed connection
        as cancellation (cancellation.py)."""
        if request.method == "POST" and not request.modern and reply.pending:
            self.cancellation.send(request.url, request.headers, reply.pending, reason)

    async def _relay(self, request: _Request, reply: Reply) -> None:
        wire = (request.method, request.url, request.headers, request.raw_body)
        response = await self.oauth.send(
            self.upstream, reply.scope, wire, request.request_id, replayable=request.replayable
        )
        finished = False
        try:
            await self._track_session(request, response)
            if request.body is not None and request.body.rejected:
                await relay_with_rejections(response, request.body.rejected, reply, self.upstream, request.request_ids)
            else:
                await self._relay_response(request, response, reply)
            finished = True
        finally:
            if finished:
                response.release()
            else:
                response.close()  # mid-stream: the upstream sees the connection close

    async def _track_session(self, request: _Request, response: aiohttp.ClientResponse) -> None:
        if response.status == 401:
            raise UpstreamRefused(
                "authgate: the upstream MCP server refused authgate's credentials (HTTP 401); "
                "check upstream_bearer_token / upstream_headers"
            )
        sid = request.session_id
        try:
            if sid is not None and (response.status == 404 or (request.method == "DELETE" and response.status < 300)):
                await self.sessions.drop(sid)  # ended, or the upstream no longer knows it
            issued = response.headers.get("mcp-session-id")
            if (
                issued is not None
                and issued != sid
                and await self.sessions.bind(issued, request.owner) != request.owner
            ):
                raise UpstreamUnavailable(
                    "authgate: the upstream handed out a session id that belongs to another caller; refusing it"
                )
        except StoreError as exc:  # an unrecorded session would answer 404 later: say so now
            raise SessionStoreUnavailable(f"authgate: cannot record the session ({exc}); try again") from exc

    async def _relay_response(self, request: _Request, response: aiohttp.ClientResponse, reply: Reply) -> None:
        single = request.body.single if request.body is not None else None
        tap = (
            ToolsListTap(self.tool_schemas, single.id)
            if single is not None and single.method == "tools/list" and response.status == 200
            else None
        )
        if request.session_id is not None and is_sse(response):
            await self.sessions.hold(request.session_id)  # an open stream keeps its session alive
            request.streams.append(request.session_id)
        await relay_response(
            response, reply, self.upstream, tap, method=request.method, request_ids=request.request_ids
        )


def _header(scope: Scope, name: bytes) -> str | None:
    return next((str(value.decode("latin-1")) for key, value in scope["headers"] if key == name), None)
