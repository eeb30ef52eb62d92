"""Stopping without cutting calls: the gateway's side of a graceful shutdown.

    the server (server/shutdown.py)           the gateway (here)
    SIGTERM: listener closed ───────────────> Drain.begin(): standalone GET streams end cleanly
                                              (an SSE stream that never ends by itself), and the
                                              apps' own closers run (the stdio bridge ends its
                                              subscriptions/listen streams with their result)
    calls in flight run on, up to
    shutdown_drain_seconds
    drain time over ────────────────────────> Drain.expire(after): every request still running
                                              is cut: its client gets a JSON-RPC error for its
                                              request id (HTTP 503 JSON, or the SSE stream's last
                                              event: `ShuttingDown`, retryable); a listen stream
                                              its graceful close (the empty result)

`DrainGuard(app, drain)` wraps the MCP app (HTTP proxy, stdio bridge or any other) and keeps
the requests in flight: each request's task is cancelled when it is cut, so the app stops
waiting (the HTTP proxy closes its upstream connection, the stdio bridge sends
`notifications/cancelled`); what the app still tries to send after that is dropped, and the
guard writes the ending. The request id comes from the body the policy layer in front
parsed (`PARSED_BODY_KEY`); without one, from the body kept (up to BODY_KEPT bytes) as the
app reads it and parsed only when the request is cut.

This is also the one place a stream that ends abnormally after its headers gets its final
JSON-RPC error event (`final_event`), for the gateways to share.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.gateway.body import PARSED_BODY_KEY
from authgate.gateway.errors import GatewayError, JsonRpcId, ShuttingDown, error_object
from authgate.observe import note

__all__ = ["BODY_KEPT", "Drain", "DrainGuard", "final_event"]

log = logging.getLogger("authgate.gateway")

BODY_KEPT = 1 << 20  # a longer body is not kept: its request is answered with id null when cut
LISTEN = "subscriptions/listen"  # MCP 2026-07-28: the answer is a stream that stays open
SUBSCRIPTION_ID_META_KEY = "io.modelcontextprotocol/subscriptionId"


def final_event(message: dict[str, Any]) -> Message:
    """The last event of an SSE stream: one JSON-RPC message, then the end of the body."""
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    return {"type": "http.response.body", "body": b"event: message\ndata: " + data + b"\n\n", "more_body": False}


@dataclass(eq=False)
class _Flight:
    """One request the guard watches: what went out of it, and how to end it when cut."""

    task: asyncio.Task[Any]
    scope: Scope
    method: str  # the HTTP method; GET is a standalone stream (MCP Streamable HTTP)
    send: Send
    parsed: Any = None  # the decoded body, when a layer in front parsed it
    body: list[bytes] = field(default_factory=list)
    body_size: int = 0
    started: bool = False
    sse: bool = False
    complete: bool = False
    cutting: bool = False

    def cut(self) -> None:
        if not (self.cutting or self.complete):
            self.cutting = True
            self.task.cancel()

    def tap(self, receive: Receive) -> Receive:
        async def receive_kept() -> Message:
            message = await receive()
            if message["type"] == "http.request" and self.body_size <= BODY_KEPT:
                chunk = message.get("body", b"")
                self.body_size += len(chunk)
                if self.body_size <= BODY_KEPT:
                    self.body.append(chunk)
                else:
                    self.body.clear()
            return message

        return receive_kept

    async def guarded_send(self, message: Message) -> None:
        if self.cutting:
            return  # the app's last words after the cut: the guard writes the ending
        if message["type"] == "http.response.start":
            self.started = True
            self.sse = any(
                k.lower() == b"content-type" and v.lower().startswith(b"text/event-stream")
                for k, v in message.get("headers", [])
            )
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self.send(message)

    def request(self) -> tuple[JsonRpcId, str | None]:
        """The JSON-RPC request's id and method, when the body was one request."""
        parsed = self.parsed
        if parsed is None and self.body:
            try:
                parsed = json.loads(b"".join(self.body))
            except (ValueError, UnicodeDecodeError):
                return None, None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("id"), str | int):
            return None, None
        method = parsed.get("method")
        return parsed["id"], method if isinstance(method, str) else None

    async def end(self, error: GatewayError) -> None:
        """Answer a request that was cut, as far as its response allows."""
        if self.complete:
            return
        request_id, method = self.request() if self.method == "POST" else (None, None)
        error.request_id = request_id
        reason = "shutting_down"
        if not self.started:
            note(self.scope, outcome=reason)
            body = json.dumps(error_object(error.code, error.message, request_id, error.data())).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *error.headers(),
            ]
            await self.send({"type": "http.response.start", "status": error.status, "headers": headers})
            await self.send({"type": "http.response.body", "body": body})
        elif self.sse and request_id is not None and method == LISTEN:
            # the graceful close of a listen stream (MCP 2026-07-28 subscriptions): listen again elsewhere
            meta = {SUBSCRIPTION_ID_META_KEY: request_id}
            result = {"resultType": "complete", "_meta": meta}
            note(self.scope, outcome=f"stream_closed:{reason}")
            await self.send(final_event({"jsonrpc": "2.0", "id": request_id, "result": result}))
        elif self.sse and request_id is not None:
            note(self.scope, outcome=f"error_event:{reason}")
            await self.send(final_event(error_object(error.code, error.message, request_id, error.data())))
        else:  # a GET stream (no request to answer), or a JSON body already under way
            note(self.scope, outcome=f"{'stream_closed' if self.sse else 'cut'}:{reason}")
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        self.complete = True


class Drain:
    """The shutdown state of one app: running, stopping (draining), or expired."""

    def __init__(self) -> None:
        self.stopping = False
        self.expired = False
        self.after: float = 0.0  # the drain time that ran out, for the error message
        self._flights: set[_Flight] = set()
        self._closers: list[Callable[[], None]] = []

    @property
    def in_flight(self) -> int:
        return len(self._flights)

    def on_stop(self, closer: Callable[[], None]) -> None:
        """Run `closer` when the stop begins (the stdio bridge ends its listen streams)."""
        self._closers.append(closer)

    def begin(self) -> None:
        """Stop accepting: streams that never end by themselves end now; calls run on."""
        if self.stopping:
            return
        self.stopping = True
        for closer in self._closers:
            try:
                closer()
            except Exception:  # one closer failing must not keep the others or the stop from running
                log.exception("shutdown: closing streams failed")
        for flight in list(self._flights):
            if flight.method == "GET":
                flight.cut()

    def expire(self, after: float) -> int:
        """The drain time is over: cut every request still running; returns how many."""
        self.begin()
        self.expired, self.after = True, after
        running = [f for f in self._flights if not f.complete]
        for flight in running:
            flight.cut()
        return len(running)

    def error(self) -> ShuttingDown:
        return ShuttingDown(
            f"authgate is shutting down: the request was still running after the {self.after:g} s drain time; "
            "send it again (to another replica, or to this server once it is back)"
        )


class DrainGuard:
    """Pure ASGI: keeps `app`'s HTTP requests in `drain`, so a stop can end them cleanly."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        parsed = scope.get(PARSED_BODY_KEY)
        flight = _Flight(task, scope, scope.get("method", "GET"), send, parsed[1] if parsed is not None else None)
        self.drain._flights.add(flight)
        if self.drain.expired or (self.drain.stopping and flight.method == "GET"):
            flight.cut()  # too late to start: answered at the app's first wait
        delivered = False
        try:
            await self.app(scope, receive if parsed is not None else flight.tap(receive), flight.guarded_send)
        except asyncio.CancelledError:
            if not flight.cutting or task.uncancel() > 0:
                raise  # cancelled by someone else too (the server's last resort)
            delivered = True
        finally:
            self.drain._flights.discard(flight)
        if not flight.cutting:
            return
        if not delivered:  # cut as the app returned: take the cancellation here, not in the layers outside
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                if task.uncancel() > 0:
                    raise
        with contextlib.suppress(Exception):  # the client may be gone: nothing left to tell it
            await flight.end(self.drain.error())
