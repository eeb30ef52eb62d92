"""Server-Sent Events as the gateways write and watch them, and how a stream cut short ends.

An answer relayed as SSE may have to end before it is whole: the upstream died, a timeout
fired (gateway/http), or a stop's drain time ran out (gateway/drain.py). Its client must
not wait for answers that will not come, so the stream's last event carries a JSON-RPC
error for each request id still unanswered (`error_ending`; one event, with an array of
errors for several ids: a 2025-03-26 batch). `SseWatch` reads the stream as it goes out,
byte for byte unchanged, to know which ids the client has had answers for, whether it was
given an event id to resume from (MCP 2025-11-25 transports §Resumability: a server may end
a stream it gave an `id:` on, and the client resumes with `Last-Event-ID`), and whether it
stopped in the middle of an event, which the gateway terminates before adding its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from authgate.gateway.errors import GatewayError, JsonRpcId, error_object

__all__ = ["SseWatch", "error_ending", "last_event", "sse_event"]

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


def last_event(watch: SseWatch, payload: Any) -> bytes:
    """`payload` as the stream's last event, after whatever ends an event left unfinished."""
    return watch.closing() + sse_event(payload)


def error_ending(watch: SseWatch, exc: GatewayError) -> bytes:
    """The last bytes of a stream cut short by `exc`: an event left unfinished terminated, then
    one event with a JSON-RPC error for each request id still unanswered; empty when none is."""
    ids = sorted(watch.pending, key=str)
    if not ids:
        return b""
    errors = [error_object(exc.code, exc.message, i, exc.data()) for i in ids]
    return last_event(watch, errors[0] if len(errors) == 1 else errors)
