"""HTTP plumbing of the stdio bridge: reading a request, and one response that is JSON until a
message has to be streamed, then Server-Sent Events (MCP Streamable HTTP, 2025-03-26 …
2026-07-28 basic/transports §Sending Messages: the server answers a POST with one JSON
object or an SSE stream).

These streams have no event ids: a closed one is the end of that request (and the bridge
cancels it at the child). 2025-11-25 sessions get resumable streams instead (resume.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from starlette.types import Receive, Scope, Send

from authgate.gateway.errors import GatewayError, error_object
from authgate.gateway.sse import sse_event

__all__ = ["HttpReply", "DisconnectWatch", "accepts", "header", "send_json", "send_status"]

PING_INTERVAL = 15.0  # seconds of silence before an SSE comment keeps proxies from closing the stream
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]


def header(scope: Scope, name: str) -> str | None:
    key = name.lower().encode()
    for k, v in scope.get("headers", []):
        if k == key:
            return bytes(v).decode("latin-1")
    return None


def accepts(scope: Scope) -> tuple[bool, bool]:
    """(JSON acceptable, SSE acceptable) from the Accept header; none at all means anything."""
    value = (header(scope, "accept") or "*/*").lower()
    anything = "*/*" in value
    return (
        anything or "application/json" in value or "application/*" in value,
        anything or "text/event-stream" in value or "text/*" in value,
    )


async def send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def send_status(
    send: Send, status: int, text: str = "", headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = text.encode()
    base = [(b"content-type", b"text/plain; charset=utf-8")] if data else []
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*base, (b"content-length", str(len(data)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": data})


class DisconnectWatch:
    """Sets `gone` when the client closes the connection (ASGI `http.disconnect`); `deadline`
    (time.monotonic()) is when the request or stream has run for as long as it may."""

    def __init__(self, receive: Receive, *, limit: float | None = None) -> None:
        self.gone = asyncio.Event()
        self.deadline = time.monotonic() + limit if limit is not None else None
        self._task = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        with contextlib.suppress(Exception):
            while (await receive())["type"] != "http.disconnect":
                pass
        self.gone.set()

    def close(self) -> None:
        self._task.cancel()


class HttpReply:
    """One HTTP response: a JSON body for a lone answer, an SSE stream once a message must go first."""

    def __init__(self, send: Send, *, sse: bool, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self._send = send
        self.sse_allowed = sse
        self.headers = headers or []
        self.streaming = False
        self.finished = False

    async def _start_stream(self) -> None:
        if not self.streaming:
            self.streaming = True
            await self._send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *self.headers]})

    async def message(self, message: dict[str, Any]) -> bool:
        """Stream a message that precedes the answer; False when the client cannot take one."""
        if not self.sse_allowed:
            return False
        await self._start_stream()
        await self._send({"type": "http.response.body", "body": sse_event(message), "more_body": True})
        return True

    async def keepalive(self) -> None:
        if self.sse_allowed:
            await self._start_stream()
            await self._send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})

    async def final(self, message: dict[str, Any], status: int = 200) -> None:
        """The answer: the JSON body, or the last event of the stream."""
        self.finished = True
        if self.streaming:
            await self._send({"type": "http.response.body", "body": sse_event(message), "more_body": False})
        else:
            await send_json(self._send, status, message, self.headers)

    async def error(self, exc: GatewayError) -> None:
        await self.final(error_object(exc.code, exc.message, exc.request_id, exc.data()), exc.status)

    async def close(self) -> None:
        """End an open stream that got no answer (the client is gone, or the bridge is stopping)."""
        if self.streaming and not self.finished:
            self.finished = True
            with contextlib.suppress(Exception):
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
