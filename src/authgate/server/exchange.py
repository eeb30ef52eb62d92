"""`Exchange`: one request to the MCP endpoint as the gate (`server/gate.py`) sees it, in one
object — the only per-request allocation of the gate besides the log record, the body and
its parse:

* the request headers the gate and the policy read, found in one pass (the first of each, as
  ASGI servers hand them; for `Content-Length` the last that is a number, for
  `Transfer-Encoding` any);
* the request log's record (`server/logs.py`) and when the request started;
* the body once read: `receive` hands it to the app first, then the server's channel (so
  the app still hears a disconnect);
* the answer on its way out: `send` notes its status, the session it names and when its last
  byte went, and carries the request id back;
* once the gate lets it through, the drain's flight (gateway/drain.py `Flight`, its base): the
  app's messages come through `relay`, which notes them for a stop's cut and sends them on, in
  one call when nothing sits between (no list rewriting, no chunked-body count).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Receive, Scope, Send

from authgate.gateway.drain import Flight
from authgate.observe import REQUEST_KEY
from authgate.server.logs import open_record, stamp_start, write_record

if TYPE_CHECKING:
    from authgate.guard.identity import Identity
    from authgate.policy.enforcer import Listing
    from authgate.policy.operations import Body

__all__ = ["Exchange"]

_READ = frozenset(
    {b"authorization", b"origin", b"host", b"x-request-id", b"mcp-session-id", b"mcp-method", b"mcp-name"}
)


class Exchange(Flight):
    __slots__ = (
        "_receive",
        "_send",
        "at",
        "authorization",
        "body",
        "chunked",
        "declared",
        "finished_at",
        "host",
        "identity",
        "judged",
        "listing",
        "mirrored",
        "origin",
        "record",
        "response_session",
        "started",
        "status",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        found: dict[bytes, bytes] = {}
        declared: int | None = None
        chunked = False
        for key, value in scope["headers"]:
            if key in _READ:
                found.setdefault(key, value)
            elif key == b"content-length" and value.isdigit():
                declared = int(value)
            elif key == b"transfer-encoding":
                chunked = True
        self.authorization = _text(found.get(b"authorization"))
        self.origin = _text(found.get(b"origin"))
        self.host = _text(found.get(b"host"))
        self.declared, self.chunked = declared, chunked
        # MCP 2026-07-28's Mcp-Method / Mcp-Name, for the policy's check against the body
        self.mirrored = (_text(found.get(b"mcp-method")), _text(found.get(b"mcp-name")))
        self.record: dict[str, Any] = open_record(
            scope, _text(found.get(b"x-request-id")), _text(found.get(b"mcp-session-id"))
        )
        scope[REQUEST_KEY] = self.record  # where inner layers note fields (observe.note)
        self.started = time.monotonic()
        self.at = time.time()  # the audit trail's time of the call
        self.body: bytes | None = None  # set once the gate has read it: replayed to the app
        self.status: int | None = None
        self.finished_at: float | None = None
        self.response_session: str | None = None
        # what the gate's checks found: the caller, the body as the policy judged it (None:
        # no body to judge) and the send rewriting list results (None: most calls)
        self.identity: Identity | None = None
        self.judged: Body | None = None
        self.listing: Listing | None = None

    @property
    def channel(self) -> Receive:
        """The server's `receive` (what `receive` reads once the body is replayed)."""
        return self._receive

    def through(self, receive: Receive) -> None:
        """Read through this instead: a wrapper of `channel` (the body limit's counting)."""
        self._receive = receive

    async def receive(self) -> Message:
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        return await self._receive()

    async def send(self, message: Message) -> None:
        await self._send(self._noted(message))

    async def relay(self, message: Message) -> None:
        """The app's `send`, once flying: the drain's note (`passes`), then `onward`, or what
        `send` does when there is nothing between (without its coroutine frame)."""
        if not self.passes(message):
            return
        onward = self.onward
        if onward is not None:
            await onward(message)
            return
        await self._send(self._noted(message))

    def _noted(self, message: Message) -> Message:
        """What the answer says, noted for the request log (status, session, end time); the
        start's headers stamped with the request id."""
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            message, self.response_session = stamp_start(self.record, message)
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.finished_at = time.monotonic()
        return message

    def forward(self) -> Send:
        return self.onward if self.onward is not None else self.send

    def latency_ms(self) -> float:
        return ((self.finished_at or time.monotonic()) - self.started) * 1000

    def finish(self) -> None:
        """Write the request's log line (and let go of the sends: no cycle through `onward`)."""
        self.onward = None
        write_record(self.record, self.started)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
