"""`ResponseTap`: wraps the ASGI `send` of one request to record its status and end, and to
rewrite the JSON-RPC results of the list requests it carried.

A JSON answer is buffered (up to MAX_BUFFERED bytes), rewritten and sent with a new
Content-Length. An SSE answer (text/event-stream) keeps streaming: it is cut into events at
blank lines, an event whose `data` is the response to a list request is rewritten, every
other event goes on as soon as it is complete, and once every awaited response has passed
the rest streams through untouched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Message, Send

MAX_BUFFERED = 8 * 1024 * 1024
_EVENT_ENDS = (b"\r\n\r\n", b"\n\n", b"\r\r")

Rewrite = Callable[[dict[str, Any]], dict[str, Any]]  # a JSON-RPC `result` → the one to send


def _content_type(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key.lower() == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


def _without_length(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() != b"content-length"]


def _next_event_end(buffer: bytes | bytearray) -> int:
    """Index just past the first complete SSE event in `buffer`, or -1."""
    ends = [(i, len(sep)) for sep in _EVENT_ENDS if (i := buffer.find(sep)) >= 0]
    if not ends:
        return -1
    i, n = min(ends)
    return i + n


class ResponseTap:
    def __init__(self, send: Send, rewrites: dict[Any, Rewrite]) -> None:
        self._send = send
        self.rewrites = dict(rewrites)  # JSON-RPC id → rewrite of the response with that id
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.finished_at: float | None = None
        self._mode = "pass"
        self._start: Message | None = None
        self._buffer = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._on_start(message)
        elif message["type"] == "http.response.body":
            if not message.get("more_body", False):
                self.finished_at = time.monotonic()
            if self._mode == "json":
                await self._on_json(message)
            elif self._mode == "sse":
                await self._on_sse(message)
            else:
                await self._send(message)
        else:
            await self._send(message)

    async def _on_start(self, message: Message) -> None:
        self.status = int(message["status"])
        self.headers = list(message.get("headers", []))
        kind = _content_type(self.headers)
        if self.rewrites and self.status == 200 and kind == "application/json":
            self._mode, self._start = "json", message  # held until the body is complete
            return
        if self.rewrites and self.status == 200 and kind == "text/event-stream":
            self._mode = "sse"
            message = {**message, "headers": _without_length(self.headers)}
        await self._send(message)

    # -- JSON ------------------------------------------------------------------------------
    async def _on_json(self, message: Message) -> None:
        self._buffer += message.get("body", b"")
        more = bool(message.get("more_body", False))
        if more and len(self._buffer) <= MAX_BUFFERED:
            return
        assert self._start is not None
        body = bytes(self._buffer) if more else self._rewrite_json(bytes(self._buffer))
        headers = (
            _without_length(self.headers)
            if more
            else [*_without_length(self.headers), (b"content-length", str(len(body)).encode())]
        )
        self._mode, self._buffer = "pass", bytearray()  # too large to hold: the rest goes as it came
        await self._send({**self._start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    def _rewrite_json(self, body: bytes) -> bytes:
        try:
            payload = json.loads(body)
        except ValueError:
            return body
        if isinstance(payload, list):
            changed = [self._rewrite_response(p) for p in payload]
            if all(c is None for c in changed):
                return body
            return json.dumps([c if c is not None else p for c, p in zip(changed, payload, strict=True)]).encode()
        rewritten = self._rewrite_response(payload)
        return body if rewritten is None else json.dumps(rewritten).encode()

    def _rewrite_response(self, payload: Any) -> dict[str, Any] | None:
        """The rewritten JSON-RPC response, or None when it is not one awaited."""
        if not isinstance(payload, dict) or not isinstance(payload.get("result"), dict):
            return None
        rid = payload.get("id")
        if isinstance(rid, bool) or not isinstance(rid, str | int) or rid not in self.rewrites:
            return None
        rewrite = self.rewrites.pop(rid)
        return {**payload, "result": rewrite(payload["result"])}

    # -- SSE -------------------------------------------------------------------------------
    async def _on_sse(self, message: Message) -> None:
        self._buffer += message.get("body", b"")
        more = bool(message.get("more_body", False))
        out = bytearray()
        while self.rewrites and (end := _next_event_end(self._buffer)) >= 0:
            out += self._rewrite_event(bytes(self._buffer[:end]))
            del self._buffer[:end]
        if not self.rewrites or not more or len(self._buffer) > MAX_BUFFERED:
            out += self._buffer  # nothing more to rewrite (or the stream ends): let the rest go
            self._buffer = bytearray()
            self._mode = "pass" if more else self._mode
        if out or not more:
            await self._send({"type": "http.response.body", "body": bytes(out), "more_body": more})

    def _rewrite_event(self, event: bytes) -> bytes:
        lines = event.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return event
        try:
            rewritten = self._rewrite_response(json.loads(b"\n".join(data)))
        except ValueError:
            return event
        if rewritten is None:
            return event
        kept = [line for line in lines if line and not line.startswith(b"data:")]
        return b"\n".join([*kept, b"data: " + json.dumps(rewritten).encode()]) + b"\n\n"
