"""Stopping without cutting calls: the gateway's side of a graceful shutdown.

    the server (server/shutdown.py)           the gateway (here)
    SIGTERM: listener closed ───────────────> Drain.begin(): standalone GET streams end cleanly
                                              (an SSE stream that never ends by itself), and the
                                              apps' own closers run (the stdio bridge ends its
                                              subscriptions/listen streams with their result)
    calls in flight run on, up to
    shutdown_drain_seconds
    drain time over ────────────────────────> Drain.expire(after): every request still running
                                              is cut: its client gets a JSON-RPC error for each
                                              request id still unanswered (HTTP 503 JSON, or the
                                              SSE stream's last event: `ShuttingDown`,
                                              retryable); a listen stream its graceful close

The gate (server/gate.py) keeps each request it lets through in the drain, its `Exchange` the
request's `Flight` (no object or coroutine frame of its own); `DrainGuard(app, drain)` does the
same as a wrapper, for an app with no gate in front. Either way the MCP app (HTTP proxy, stdio
bridge or any other) has its requests in flight kept: a request that is cut has its task cancelled, so the app stops
waiting (the stdio bridge sends `notifications/cancelled` to its child). Then either

* the app ends the answer itself: one that said so as it started (`own_cuts`: the HTTP
  proxy, whose `Reply` already watches its stream and ends it on any failure) takes the
  cancellation in its `except CancelledError` (`take_cut`) and fails the request with the
  returned `ShuttingDown`, exactly as with a timeout (its upstream is cancelled, the
  stream's pending ids get their errors); or
* the guard ends it: what the app still tries to send is dropped, and the guard writes the
  ending from what it saw go out. It watches an SSE answer to a POST with the same
  `SseWatch` (gateway/sse.py), so its last event is `error_ending`'s: an event the stream
  stopped in the middle of is terminated first, and only ids still unanswered get an error.

The request ids come from the body the policy layer in front parsed (`PARSED_BODY_KEY`);
without one, from the body kept (up to BODY_KEPT bytes) as the app reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.gateway.body import PARSED_BODY_KEY
from authgate.gateway.errors import JsonRpcId, ShuttingDown, send_error
from authgate.gateway.jsonrpc import LISTEN, listen_closed, readable_id
from authgate.gateway.sse import SseWatch, error_ending, last_event
from authgate.observe import note

__all__ = ["BODY_KEPT", "CUT_KEY", "Drain", "DrainGuard", "Flight", "own_cuts", "take_cut"]

log = logging.getLogger("authgate.gateway")

BODY_KEPT = 1 << 20  # a longer body is not kept: its request is answered with id null when cut
CUT_KEY = "authgate.drain_cut"  # the scope's handle on the request's cut, for own_cuts / take_cut
REASON = "shutting_down"


def own_cuts(scope: Scope) -> None:
    """Called by an app as it starts a request: when a stop cuts it, the app ends the answer
    itself (after `take_cut`), and the guard neither watches the stream nor writes to it."""
    flight = scope.get(CUT_KEY)
    if isinstance(flight, Flight):
        flight.owned = True


def take_cut(scope: Scope) -> ShuttingDown | None:
    """In an app's `except asyncio.CancelledError` (after `own_cuts`): when the cancellation is
    the drain's cut and no one else's, the app takes it (its task is uncancelled) and ends the
    answer with the returned error, as with any failure. None: not a cut, re-raise."""
    flight = scope.get(CUT_KEY)
    if not isinstance(flight, Flight) or not flight.owned or flight.error is None or flight.taken:
        return None
    if flight.task.cancelling() != 1:  # cancelled by someone else too (a client gone, the server's last resort)
        return None
    flight.task.uncancel()
    flight.taken = True
    return flight.error


class Flight:
    """One request the guard watches: what went out of it, and how to end it when cut.

    A base of the gate's `Exchange` (server/exchange.py), which is the flight of every request
    it lets through (no object of its own, no wrapper around the app), and made by `DrainGuard`
    for an app with no gate in front. `fly` starts the watch (`Drain.enter` calls it)."""

    __slots__ = (
        "complete",
        "error",
        "kept",
        "kept_size",
        "method",
        "onward",
        "opened",
        "owned",
        "parsed",
        "scope",
        "sse",
        "taken",
        "task",
        "watch",
    )

    def fly(self, task: asyncio.Task[Any], scope: Scope, onward: Send | None, parsed: Any) -> None:
        """`onward`: where the app's messages go (None: the exchange's own `send`); `parsed`: the
        decoded body, when a layer in front parsed it."""
        self.task = task
        self.scope = scope
        self.method: str = scope.get("method", "GET")  # GET is a standalone stream (MCP Streamable HTTP)
        self.onward = onward
        self.parsed = parsed
        self.kept: list[bytes] | None = None  # the body kept as the app reads it (`tap`: when not parsed)
        self.kept_size = 0
        self.opened = False  # the answer's start went out
        self.sse = False
        self.complete = False
        self.error: ShuttingDown | None = None  # set when cut
        self.owned = False  # the app ends its own answer when cut (own_cuts)
        self.taken = False  # ... and has taken this cut (take_cut)
        self.watch: SseWatch | None = None  # an SSE answer to requests, watched when the guard ends it

    def forward(self) -> Send:
        """The send after the guard (the exchange's own when `onward` is None)."""
        return self.onward  # type: ignore[return-value]  # Exchange overrides it

    @property
    def cutting(self) -> bool:
        return self.error is not None

    def cut(self, error: ShuttingDown) -> None:
        if not (self.error is not None or self.complete):
            self.error = error
            self.task.cancel()

    def tap(self, receive: Receive) -> Receive:
        kept: list[bytes] = []
        self.kept = kept

        async def receive_kept() -> Message:
            message = await receive()
            if message["type"] == "http.request" and self.kept_size <= BODY_KEPT:
                chunk = message.get("body", b"")
                self.kept_size += len(chunk)
                if self.kept_size <= BODY_KEPT:
                    kept.append(chunk)
                else:
                    kept.clear()
            return message

        return receive_kept

    def passes(self, message: Message) -> bool:
        """Note a message the app sends; False: drop it (the app's last words after the cut:
        the guard writes the ending)."""
        if self.error is not None and not self.taken:
            return False
        kind = message["type"]
        if kind == "http.response.start":
            self.opened = True
            for k, v in message.get("headers", ()):
                if v[:17].lower() == b"text/event-stream" and k.lower() == b"content-type":
                    self.sse = True
                    break
            if self.sse and self.method == "POST" and not self.owned and (ids := self.requests()[0]):
                self.watch = SseWatch(set(ids))
        elif kind == "http.response.body":
            if self.watch is not None and message.get("body"):
                self.watch.feed(message["body"])
            if not message.get("more_body", False):
                self.complete = True
        return True

    async def guarded_send(self, message: Message) -> None:
        if self.passes(message):
            await self.forward()(message)

    def requests(self) -> tuple[list[JsonRpcId], str | None]:
        """The ids of the JSON-RPC requests in the body (several in a batch), and a lone one's method."""
        parsed = self.parsed
        if parsed is None and self.kept:
            try:
                parsed = json.loads(b"".join(self.kept))
            except (ValueError, UnicodeDecodeError, RecursionError):
                return [], None
        messages = parsed if isinstance(parsed, list) else [parsed]
        ids = [readable_id(m) for m in messages if isinstance(m, dict) and isinstance(m.get("method"), str)]
        method = parsed.get("method") if isinstance(parsed, dict) else None
        return [i for i in ids if i is not None], method if isinstance(method, str) else None

    def delivered(self) -> bool:
        """In the `except asyncio.CancelledError` around the app: is the cancellation the drain's
        cut, not taken by the app and no one else's? Then the guard ends the answer; else re-raise."""
        return self.error is not None and not self.taken and self.task.uncancel() == 0

    async def end(self) -> None:
        """Answer a request that was cut, as far as its response allows."""
        if self.complete or self.error is None:
            return
        ids, method = self.requests() if self.method == "POST" else ([], None)
        ending = b""
        send = self.forward()
        if not self.opened:
            note(self.scope, outcome=REASON)
            self.error.request_id = ids[0] if len(ids) == 1 else None
            await send_error(send, self.error)
        elif self.watch is not None and method == LISTEN and ids:
            note(self.scope, outcome=f"stream_closed:{REASON}")  # its client listens again elsewhere
            ending = last_event(self.watch, listen_closed(ids[0]))
        elif self.watch is not None and (ending := error_ending(self.watch, self.error)):
            note(self.scope, outcome=f"error_event:{REASON}")
        else:  # a GET stream (no request to answer), all answered, or a JSON body already under way
            note(self.scope, outcome=f"{'stream_closed' if self.sse else 'cut'}:{REASON}")
        if self.opened:
            await send({"type": "http.response.body", "body": ending, "more_body": False})
        self.complete = True


class Drain:
    """The shutdown state of one app: running, stopping (draining), or expired."""

    def __init__(self) -> None:
        self.stopping = False
        self.expired = False
        self.after: float = 0.0  # the drain time that ran out, for the error message
        self._flights: set[Flight] = set()
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
                flight.cut(self.error())

    def expire(self, after: float) -> int:
        """The drain time is over: cut every request still running; returns how many."""
        self.begin()
        self.expired, self.after = True, after
        running = [f for f in self._flights if not f.complete]
        for flight in running:
            flight.cut(self.error())
        return len(running)

    def error(self) -> ShuttingDown:
        return ShuttingDown(
            f"authgate is shutting down: the request was still running after the {self.after:g} s drain time; "
            "send it again (to another replica, or to this server once it is back)"
        )

    # -- one request: enter, run the app, leave, and end it if it was cut --------------------
    def enter(self, flight: Flight) -> None:
        """Keep `flight` (after its `fly`), its scope's handle on it for own_cuts / take_cut."""
        flight.scope[CUT_KEY] = flight
        self._flights.add(flight)
        if self.expired or (self.stopping and flight.method == "GET"):
            flight.cut(self.error())  # too late to start: answered at the app's first wait

    def leave(self, flight: Flight) -> None:
        """The app returned (or raised): no scope <-> flight cycle left, so both go by reference
        count, not the collector."""
        self._flights.discard(flight)
        del flight.scope[CUT_KEY]

    async def carry(self, flight: Flight, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run `app` for a flight `enter` kept: `leave` after it, and end the flight if a stop cut
        it. (The gate inlines this in its hot path: a frame less for every suspension.)"""
        delivered = False
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            if not flight.delivered():
                raise  # cancelled by someone else too (the server's last resort)
            delivered = True
        finally:
            self.leave(flight)
        if flight.error is not None:  # cut; most requests are not
            await self.settle(flight, delivered)

    @staticmethod
    async def settle(flight: Flight, delivered: bool) -> None:
        """After `leave`, for a flight that was cut (`error` set): the guard's ending."""
        if not (delivered or flight.taken):  # cut as the app returned: take the cancellation here
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                if flight.task.uncancel() > 0:
                    raise
        with contextlib.suppress(Exception):  # the client may be gone: nothing left to tell it
            await flight.end()


class DrainGuard:
    """Pure ASGI: keeps `app`'s HTTP requests in `drain`, so a stop can end them cleanly (the
    gate, server/gate.py, does the same itself for the app behind it)."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        parsed = scope.get(PARSED_BODY_KEY)
        flight = Flight()
        flight.fly(task, scope, send, parsed[1] if parsed is not None else None)
        self.drain.enter(flight)
        app_receive = receive if parsed is not None else flight.tap(receive)
        await self.drain.carry(flight, self.app, scope, app_receive, flight.guarded_send)
