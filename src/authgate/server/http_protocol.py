"""`BoundedHttpToolsProtocol`: uvicorn's httptools protocol with the request head bounded in
size and in time, and the number of open connections capped.

Size. ASGI middleware sees a request only once its whole head is parsed, too late for a
64 MiB header (buffered in full first); uvicorn's h11 limit (`h11_max_incomplete_event_size`)
answers 400, and its httptools protocol has no limit. This subclass counts the bytes of a
request head as they arrive and its header lines as they are parsed: past MAX_HEAD_BYTES or
MAX_HEADERS the client gets 431 (RFC 6585 §5) with a short JSON body, and the connection
closes after a bounded drain (DRAIN_BYTES / DRAIN_SECONDS read and dropped, so a client
still sending reads the answer instead of a reset).

Time. uvicorn times out only the silence between two requests of a keep-alive connection
(`timeout_keep_alive`); a new connection that sends nothing, or half a request line, is kept
forever (slowloris). Here a connection waiting for a request head must complete it within
`header_read_timeout` seconds of the first byte (of connecting, for its first request): then
it gets 408 (RFC 9110 §15.5.9) if it had sent part of a head, and is closed. The same time
bounds the silence while a request body arrives (a slow POST), unless the app is the one not
reading; a large body that keeps arriving takes as long as it takes.

Count. Past `max_connections` open connections, a newcomer closes the one idle longest, or is
turned away with 503 and `Retry-After` when every connection serves a request
(server/connections.py). uvicorn's own `limit_concurrency` is not used: it counts idle
connections too, and answers every request 503 while slowloris sockets hold the count.

`authgate serve` passes `bounded_protocol(header_read_timeout=…, max_connections=…)` to
uvicorn as `http=` (cli/main.py); library mode users pass it (or this class, with the
defaults) to their own uvicorn the same way: `--http authgate.server.http_protocol:BoundedHttpToolsProtocol`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from authgate.server.connections import OpenConnections, connections_of

MAX_HEAD_BYTES = 64 * 1024  # request line and headers
MAX_HEADERS = 100
DRAIN_BYTES = 1024 * 1024
DRAIN_SECONDS = 1.0
HEADER_READ_TIMEOUT = 10.0
MAX_CONNECTIONS = 1000
WARN_EVERY = 60.0  # seconds between two log lines about the connection cap

log = logging.getLogger("authgate")


class _TooManyHeaders(Exception):
    """Raised from the parser's header callback, so it parses nothing further."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    header_read_timeout: ClassVar[float] = HEADER_READ_TIMEOUT
    max_connections: ClassVar[int] = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # between the first byte of a request and the end of its headers
        self._head_bytes = 0
        self._too_many_headers = False  # the parser stopped at MAX_HEADERS: 431, not uvicorn's 400
        self._refused = False  # answered 431, 503 or 408: draining until the connection closes
        self._drained = 0
        self._timer: asyncio.TimerHandle | None = None  # the head's deadline, or the body's silence
        self._in_body = False  # a request head is complete and its body is not
        self._seats: OpenConnections = connections_of(self.server_state, self.max_connections)
        self._seated = False  # counted among the open connections (server/connections.py)
        self._turned_away = False

    # -- the connection cap and the head's deadline -------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self._seats.admit(self):
            self._turn_away(transport)
            return
        self._seated = True
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._seated:
            self._seated = False
            self._seats.leave(self)
        elif self._turned_away:
            self._turned_away = False
            self._seats.turned_away -= 1
        super().connection_lost(exc)

    def make_room(self) -> None:
        """Closed by a newcomer past max_connections: this connection was the one idle longest."""
        self._seated = False
        self._disarm()
        self.transport.close()

    def _await_head(self) -> None:
        if self._timer is None and not self._refused:
            self._timer = self.loop.call_later(self.header_read_timeout, self._head_too_slow)

    def _await_body(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.header_read_timeout, self._body_too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._in_head and (self.cycle is None or self.cycle.response_complete):
            self._answer(408, f"the request head did not arrive within {self.header_read_timeout:g} s")
            self.transport.close()
        else:
            self.transport.close()  # nothing sent yet, or a pipelined head stalled behind an answer

    def _body_too_slow(self) -> None:
        self._timer = None
        if not self._in_body or self.transport.is_closing():
            return
        waiting = self.cycle is not None and self.cycle.waiting_for_100_continue  # the client waits for us
        if self.flow.read_paused or waiting:  # the app is not reading: the silence is not the client's
            self._await_body()
            return
        self.transport.close()  # the app sees a disconnect

    def _turn_away(self, transport: asyncio.Transport) -> None:
        """Every seat serves a request: 503 at once, the connection closed after a short drain
        (a flood of them: at once)."""
        self.transport, self.flow = transport, FlowControl(transport)
        self._refused = self._turned_away = True
        seats = self._seats
        seats.turned_away += 1
        if seats.turned_away > seats.limit:
            transport.abort()
            return
        now = time.monotonic()
        if now - seats.warned_at >= WARN_EVERY:
            seats.warned_at = now
            log.warning(
                "max_connections (%d) reached with every connection serving a request; "
                "new connections get 503 until one ends",
                seats.limit,
            )
        self._answer(503, f"the server has {seats.limit} connections open (max_connections)", retry_after=1)
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(DRAIN_SECONDS, transport.close)

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        if self._seated:  # the WebSocket protocol takes the transport: its close is not ours to see
            self._seated = False
            self._seats.leave(self)
        super().handle_websocket_upgrade()

    def _unsupported_upgrade_warning(self) -> None:
        # `authgate serve` runs uvicorn with ws="none" (no WebSocket package imported; MCP has no
        # WebSocket transport): an Upgrade request is served as the HTTP request it also is, with
        # no two warnings a request (one asking to install a WebSocket package) for anyone to send
        if self.ws_protocol_class is not None:
            super()._unsupported_upgrade_warning()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._seated and not self.transport.is_closing() and self.cycle.response_complete and not self.pipeline:
            self._seats.idle(self)

    # -- the head's size ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drained += len(data)
            if self._drained > DRAIN_BYTES:
                self.transport.close()
            return
        HttpToolsProtocol.data_received(self, data)
        if self._refused:
            return
        if self._in_body:
            self._await_body()  # each chunk of a body restarts the silence it may keep
        elif self.cycle is None or self.cycle.response_complete:
            # Still waiting for a head after this chunk (the keep-alive wait is over): its
            # deadline, from now. Armed after the chunk is parsed, not before: a request that
            # arrives whole (most) then never sets a timer; each one armed and cancelled cost
            # ~2 us a request (docs/benchmarks.md §2).
            self._await_head()
        if self._in_head:
            # The whole chunk counts (it may hold the end of a previous request): the head
            # buffered before a refusal is at most MAX_HEAD_BYTES plus one read.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes")

    # The parser's callbacks run for every request (on_header for each field): they call the
    # base class's by name, which costs less than super().

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes, self._too_many_headers = True, 0, False
        HttpToolsProtocol.on_message_begin(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= MAX_HEADERS:
            self._too_many_headers = True
            raise _TooManyHeaders  # the parser stops; uvicorn then calls send_400_response
        HttpToolsProtocol.on_header(self, name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._timer is not None:
            self._disarm()
        if self._seated:
            self._seats.busy(self)
        self._in_body = True
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._timer is not None:
            self._disarm()
        HttpToolsProtocol.on_message_complete(self)

    def send_400_response(self, msg: str) -> None:
        if self._too_many_headers:
            self._refuse(f"the request has more than {MAX_HEADERS} header fields")
        else:
            super().send_400_response(msg)

    def _refuse(self, description: str) -> None:
        self._refused = True
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request behind one still answering: no room for a 431
            return
        self._answer(431, description)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client sees the end of the answer while we drain
        self.loop.call_later(DRAIN_SECONDS, self.transport.close)

    def _answer(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        """A whole JSON answer written straight to the transport, before any ASGI app ran."""
        body = json.dumps({"error": "invalid_request", "error_description": description}).encode()
        head = b"".join(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    head,
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"retry-after: %d\r\n" % retry_after if retry_after is not None else b"",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )


def bounded_protocol(
    *, header_read_timeout: float = HEADER_READ_TIMEOUT, max_connections: int = MAX_CONNECTIONS
) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=`, with these limits (settings
    `header_read_timeout`, `max_connections`)."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"header_read_timeout": header_read_timeout, "max_connections": max_connections},
    )
