"""`Reply`: the answer to one client request as it goes out, and how it ends when the
upstream fails midway.

Before the headers go out a failure is an ordinary JSON-RPC error response (502/504). After
them, on an SSE stream, the stream's last event carries a JSON-RPC error for each request id
still unanswered (an array of them for a 2025-03-26 batch), so a client never waits for an
answer that will not come; a JSON body already under way (one too large to hold back) can
only end. `SseWatch` reads the relayed stream, byte for byte unchanged, to know which ids
the client has had answers for, whether it was given an event id to resume from (MCP
2025-11-25 transports §Resumability: a server may end a stream it gave an `id:` on, and the
client resumes with `Last-Event-ID`), and whether it stopped in the middle of an event.

The request log's `outcome` field says how an answer ended when not as the upstream sent it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.types import Scope, Send

from authgate.gateway.errors import GatewayError, JsonRpcId, UpstreamError, error_object, send_error
from authgate.observe import note

__all__ = ["Reply", "SseWatch", "sse_event"]

WATCH_LIMIT = 16 << 20  # an event (or line) larger than this is relayed unread
_LINE_END = re.compile(rb"\r\n|\r|\n")


def sse_event(payload: Any) -> bytes:
    """One SSE `message` event carrying a JSON-RPC message (or a batch of them)."""
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return b"event: message\ndata: " + data + b"\n\n"


class SseWatch:
    """Reads an SSE stream as it is relayed (WHATWG HTML §9.2.6 parsing, nothing changed)."""

    def __init__(self, pending: set[JsonRpcId]) -> None:
        self.pending = pending  # request ids not answered yet; answers seen are removed
        self.resumable = False  # an event id was given: the client can resume with Last-Event-ID
        self.blind = False  # an event too large to read: what it answered is unknown
        self._partial = b""  # the line being received
        self._data: list[bytes] = []
        self._size = 0
        self._in_event = False
        self._after_cr = False

    def feed(self, chunk: bytes) -> None:
        if self.blind:
            return
        if self._after_cr and chunk[:1] == b"\n":  # a CRLF split between two chunks
            chunk = chunk[1:]
        self._after_cr = chunk[-1:] == b"\r"
        lines = _LINE_END.split(self._partial + chunk)
        self._partial = lines.pop()
        for line in lines:
            self._line(line)
        if len(self._partial) + self._size > WATCH_LIMIT:
            self.blind = True

    def closing(self) -> bytes:
        """What ends an event left unfinished, so that an event appended after it stands alone."""
        return b"\n\n" if self._partial else b"\n" if self._in_event else b""

    def _line(self, line: bytes) -> None:
        if not line:  # the end of an event
            if self._data and self.pending:
                self._answered(b"\n".join(self._data))
            self._data, self._size, self._in_event = [], 0, False
            return
        self._in_event = True
        name, _, value = line.partition(b":")
        value = value[1:] if value[:1] == b" " else value
        if name == b"data":
            self._data.append(value)
            self._size += len(value)
        elif name == b"id" and b"\0" not in value:
            self.resumable = bool(value)

    def _answered(self, data: bytes) -> None:
        if b"result" not in data and b"error" not in data:
            return  # a notification or a server request: no need to parse it
        try:
            decoded = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return
        for message in decoded if isinstance(decoded, list) else (decoded,):
            if isinstance(message, dict) and "method" not in message and ("result" in message or "error" in message):
                request_id = message.get("id")
                if isinstance(request_id, str | int):
                    self.pending.discard(request_id)


class Reply:
    """What one client request has been sent so far; `fail` ends it as well as it still can."""

    def __init__(self, send: Send, scope: Scope) -> None:
        self._send = send
        self.scope = scope
        self.status: int | None = None  # set once the headers went out
        self.sse = False
        self.done = False
        self.pending: set[JsonRpcId] = set()
        self.watch: SseWatch | None = None

    @property
    def started(self) -> bool:
        return self.status is not None

    def expect(self, request_ids: Iterable[JsonRpcId]) -> None:
        """The ids of the requests this answer owes a response to."""
        self.pending = {i for i in request_ids if i is not None}

    async def start(self, status: int, headers: list[tuple[bytes, bytes]], *, sse: bool) -> None:
        self.status, self.sse = status, sse
        if sse:
            self.watch = SseWatch(self.pending)
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, chunk: bytes, *, more: bool = True) -> None:
        if self.watch is not None and chunk:
            self.watch.feed(chunk)
        await self._send({"type": "http.response.body", "body": chunk, "more_body": more})
        if not more:
            self.done = True
            if not self.sse:
                self.pending.clear()  # a whole JSON body went out

    async def whole(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        await self.start(status, headers, sse=False)
        await self.body(body, more=False)

    async def fail(self, exc: GatewayError) -> None:
        """End the answer with `exc`: an error response if nothing went out yet; on an SSE stream
        a last event with an error for each request id still unanswered; else just the end."""
        if self.done:
            return
        reason = exc.reason if isinstance(exc, UpstreamError) else None
        if not self.started:
            if reason is not None:
                note(self.scope, outcome=reason)
            self.done = True
            await send_error(self._send, exc)
            return
        ids = sorted(self.pending, key=str)
        if self.sse and self.watch is not None and ids:
            errors = [error_object(exc.code, exc.message, i, exc.data()) for i in ids]
            note(self.scope, outcome=f"error_event:{reason or type(exc).__name__}")
            await self.body(self.watch.closing() + sse_event(errors[0] if len(errors) == 1 else errors), more=False)
        else:
            note(self.scope, outcome=f"cut:{reason or type(exc).__name__}")
            await self.body(b"", more=False)

    async def close(self, outcome: str, final: dict[str, Any] | None = None) -> None:
        """End a stream that is under way on purpose (its time is up), with `final` as its last
        event if it is SSE and one is given."""
        if self.done or not self.started:
            return
        note(self.scope, outcome=outcome)
        last = self.watch.closing() + sse_event(final) if final is not None and self.watch is not None else b""
        await self.body(last, more=False)
