"""Resumable POST streams for stateful sessions at 2025-11-25 (MCP 2025-11-25 basic/transports
§Sending Messages 6, §Resumability and Redelivery).

The bridge owns the HTTP side of a stdio child, so it does for a 2025-11-25 session what an HTTP
MCP server with an event store does:

- A request from a client that accepts SSE is answered on an SSE stream that starts with a
  priming event: an event id, a `retry` field (`retry_ms`) and empty data. Every later event of
  the stream carries an id `<stream>-<n>`: unique within the session, naming its stream.
- Each stream's events are kept (`StreamLog`), bounded: at most MAX_EVENTS events and
  MAX_STREAM_BYTES per stream (the oldest dropped first; the last is always kept), an answered
  stream for KEEP_ANSWERED seconds and at most MAX_ANSWERED of them per session.
- A client that loses the connection (or is told to go: below) resumes with `GET` and
  `Last-Event-ID`: the events of that stream after that id are replayed, then the stream goes
  on where it was, on the new connection, until the answer. A `Last-Event-ID` of no stream the
  session still holds gets 400 (never 404: the session is fine). A second resume of a stream
  takes it over from the first connection, which ends.
- A closed connection is not cancellation (the transport: "Disconnection SHOULD NOT be
  interpreted as the client cancelling its request"): the call goes on and its messages wait.
  If no client resumes within `resume_window` seconds, the call is cancelled at the child
  (`notifications/cancelled`) and its events dropped. A POSTed `notifications/cancelled` still
  cancels at once.
- A stdio server cannot close an HTTP connection itself; it asks with the notification
  CLOSE_SSE_STREAM, `params: {"requestId": <the id of its request>, "retry": <ms, optional>}`
  (what the Python SDK's `ctx.close_sse_stream()` does over HTTP, tests/gateway/conformance_stdio.py
  maps it). The bridge ends that request's connection (with a `retry` event first when given)
  and keeps the stream for the client's `GET`. The notification never reaches the client; for a
  stream that cannot be resumed (an older client, a JSON answer) it is ignored.

Clients at an earlier version, or that accept only JSON, get the answers as before (http.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import Send

from authgate.gateway.errors import GatewayError, error_object
from authgate.gateway.stdio.http import SSE_HEADERS

if TYPE_CHECKING:
    from authgate.gateway.stdio.child import Exchange, StdioChild

__all__ = [
    "CLOSE_SSE_STREAM",
    "RESUMABLE_FROM",
    "CloseStream",
    "Stream",
    "StreamLog",
    "StreamReply",
    "close_stream_hint",
]

logger = logging.getLogger("authgate.stdio")

RESUMABLE_FROM = "2025-11-25"  # the first version with priming events; 2026-07-28 has no sessions
CLOSE_SSE_STREAM = "notifications/authgate/close_sse_stream"
MAX_RETRY_MS = 600_000  # the largest `retry` a child may ask for
MAX_EVENTS = 1000  # per stream
MAX_STREAM_BYTES = 32 * 1024 * 1024  # per stream (one event may be up to 16 MiB: child.MAX_LINE)
MAX_ANSWERED = 32  # answered streams kept per session for a late resume
KEEP_ANSWERED = 60.0  # seconds an answered stream is kept
_EVENT_ID = re.compile(r"([0-9]{1,9})-([0-9]{1,9})")


@dataclass(frozen=True)
class CloseStream:
    """The child asked (CLOSE_SSE_STREAM) to close its request's connection; the client resumes."""

    retry_ms: int | None = None


def close_stream_hint(exchanges: dict[int, Exchange], params: dict[str, Any], label: str) -> None:
    """CLOSE_SSE_STREAM from a child: a CloseStream for its request when that stream is resumable."""
    rid, retry = params.get("requestId"), params.get("retry")
    ex = exchanges.get(rid) if isinstance(rid, int) and not isinstance(rid, bool) else None
    if ex is None or not ex.resumable:
        logger.debug("%s: ignored %s for request %r (no resumable stream)", label, CLOSE_SSE_STREAM, rid)
        return
    ok = isinstance(retry, int) and not isinstance(retry, bool) and 0 <= retry <= MAX_RETRY_MS
    ex.deliver(CloseStream(retry if ok else None))


@dataclass(eq=False)
class Stream:
    """One request's SSE stream: its events so far, and who is writing it."""

    number: int
    ex: Exchange
    events: deque[tuple[int, bytes]] = field(default_factory=deque)  # (n, the event as sent)
    size: int = 0
    last: int = 0  # the n of the newest event (0: the priming event)
    answered_at: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # held by the connection writing it
    kick: asyncio.Event | None = None  # set to make that connection let go (a resume takes over)
    orphan: asyncio.Task[None] | None = None  # cancels the call when nobody resumes in time

    def event_id(self, n: int) -> str:
        return f"{self.number}-{n}"

    def priming(self, retry_ms: int) -> bytes:
        return f"id: {self.event_id(0)}\nretry: {retry_ms}\ndata: \n\n".encode()

    def record(self, message: dict[str, Any]) -> bytes:
        """`message` as the stream's next event, kept for replay."""
        self.last += 1
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
        event = f"id: {self.event_id(self.last)}\nevent: message\ndata: ".encode() + data + b"\n\n"
        self.events.append((self.last, event))
        self.size += len(event)
        while len(self.events) > 1 and (len(self.events) > MAX_EVENTS or self.size > MAX_STREAM_BYTES):
            self.size -= len(self.events.popleft()[1])
        return event

    def after(self, n: int) -> list[bytes]:
        if self.events and self.events[0][0] > n + 1:
            logger.warning(
                "stream %s: resumed after event %d; events before %d were dropped", self.number, n, self.events[0][0]
            )
        return [event for m, event in self.events if m > n]


class StreamLog:
    """The resumable streams of one session (its child's requests)."""

    def __init__(self, child: StdioChild, *, retry_ms: int, resume_window: float) -> None:
        self.child = child
        self.retry_ms = retry_ms
        self.resume_window = resume_window
        self.streams: dict[int, Stream] = {}
        self._numbers = 0

    def open(self, ex: Exchange) -> Stream:
        self.prune()
        self._numbers += 1
        ex.resumable = True
        stream = self.streams[self._numbers] = Stream(self._numbers, ex)
        return stream

    def find(self, last_event_id: str) -> tuple[Stream, int] | None:
        """The stream `Last-Event-ID` names, and the n of the last event the client has."""
        self.prune()
        match = _EVENT_ID.fullmatch(last_event_id.strip())
        stream = self.streams.get(int(match[1])) if match else None
        if match is None or stream is None or int(match[2]) > stream.last:
            return None
        return stream, int(match[2])

    def attach(self, stream: Stream, kick: asyncio.Event) -> None:
        """A connection writes `stream` (its lock held) and lets go when `kick` is set."""
        stream.kick = kick
        if stream.orphan is not None:
            stream.orphan.cancel()
            stream.orphan = None

    def detach(self, stream: Stream) -> None:
        """Its connection is gone, the answer not sent: the call goes on for `resume_window` s."""
        stream.kick = None
        if stream.answered_at is None and stream.orphan is None and stream.number in self.streams:
            stream.orphan = asyncio.get_running_loop().create_task(self._orphaned(stream))

    def answered(self, stream: Stream) -> None:
        stream.answered_at = time.monotonic()
        stream.kick = None

    def drop(self, ex: Exchange) -> None:
        """Forget the stream of `ex` (cancelled by the client)."""
        for number, stream in list(self.streams.items()):
            if stream.ex is ex:
                self._forget(number)

    async def _orphaned(self, stream: Stream) -> None:
        await asyncio.sleep(self.resume_window)
        stream.orphan = None
        self._forget(stream.number)
        reason = f"authgate: no client resumed the stream within {self.resume_window:g} s"
        logger.info("%s: %s of %s; cancelled", self.child.label, reason.removeprefix("authgate: "), stream.ex.method)
        await self.child.cancel(stream.ex, reason)

    def _forget(self, number: int) -> None:
        stream = self.streams.pop(number, None)
        if stream is not None and stream.orphan is not None and stream.orphan is not asyncio.current_task():
            stream.orphan.cancel()

    def prune(self) -> None:
        """Answered streams past KEEP_ANSWERED, and the oldest beyond MAX_ANSWERED."""
        answered = sorted((s for s in self.streams.values() if s.answered_at is not None), key=lambda s: s.number)
        now = time.monotonic()
        for i, stream in enumerate(answered):
            assert stream.answered_at is not None
            if now - stream.answered_at > KEEP_ANSWERED or i < len(answered) - MAX_ANSWERED:
                self._forget(stream.number)

    def close(self) -> None:
        """The session ended: nothing more to resume."""
        for number in list(self.streams):
            self._forget(number)


class StreamReply:
    """One connection's part of a resumable stream: what it writes is recorded, with ids."""

    def __init__(self, send: Send, log: StreamLog, stream: Stream) -> None:
        self._send = send
        self.log = log
        self.stream = stream
        self.streaming = True  # SSE from the first byte (the priming event, or the replay)
        self.finished = False

    async def start(self, *, priming: bool) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        if priming:
            await self._body(self.stream.priming(self.log.retry_ms))

    async def replay(self, after: int) -> None:
        for event in self.stream.after(after):
            await self._body(event)

    async def _body(self, data: bytes, more: bool = True) -> None:
        with contextlib.suppress(OSError):  # the client is gone: what was recorded waits for its resume
            await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def message(self, message: dict[str, Any]) -> bool:
        await self._body(self.stream.record(message))
        return True

    async def keepalive(self) -> None:
        await self._body(b": keepalive\n\n")

    async def final(self, message: dict[str, Any], status: int = 200) -> None:
        del status  # an SSE stream's status was sent with its first event
        self.finished = True
        event = self.stream.record(message)
        self.log.answered(self.stream)
        await self._body(event, more=False)

    async def error(self, exc: GatewayError) -> None:
        await self.final(error_object(exc.code, exc.message, exc.request_id, exc.data()))

    async def close(self, retry_ms: int | None = None) -> None:
        """End this connection; the stream goes on (the client resumes it) unless answered."""
        if not self.finished:
            self.finished = True
            await self._body(f"retry: {retry_ms}\n\n".encode() if retry_ms is not None else b"", more=False)
