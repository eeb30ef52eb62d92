"""`BodyLimit`: every request body bounded per route, before anything reads or parses it.

    declared Content-Length over the limit ──> 413 at once (not a byte of the body read)
    no Content-Length (chunked) ─┬─ /mcp: streamed through, counted; past the limit → 413
                                 └─ the rest: read here up to the limit, then replayed
                                    to the route (small: /register, /token, /revoke, forms)

Pure ASGI (never BaseHTTPMiddleware: the gateway streams). A declared length is enforced by
the HTTP parser itself (uvicorn never delivers more), so only chunked bodies are counted. A
413 is JSON (an OAuth error, or a JSON-RPC one on /mcp) with `Connection: close`; before the
connection closes, at most DRAIN_BYTES / DRAIN_SECONDS of the rest are read and dropped, so a
client still sending reads the answer instead of a reset (a bounded "lingering close").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.gateway.body import replaying
from authgate.gateway.errors import BodyTooLarge, error_object

SMALL_BODY_BYTES = 64 * 1024  # /register, /token, /revoke, /login, /consent, …
DRAIN_BYTES = 1024 * 1024
DRAIN_SECONDS = 1.0

ErrorBody = Callable[[int], bytes]  # the limit → the 413's JSON body


def oauth_413(limit: int) -> bytes:  # RFC 6749 §5.2 shape, as every other error of these routes
    return json.dumps(
        {"error": "invalid_request", "error_description": f"the request body is larger than {limit} bytes"}
    ).encode()


def jsonrpc_413(limit: int) -> bytes:  # JSON-RPC 2.0 §5: the request could not be read, id null
    return json.dumps(error_object(BodyTooLarge.code, f"the request body is larger than {limit} bytes")).encode()


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length, and whether the body is chunked (Transfer-Encoding)."""
    declared, chunked = None, False
    for key, value in scope.get("headers", ()):
        if key == b"content-length" and value.isdigit():
            declared = int(value)
        elif key == b"transfer-encoding":
            chunked = True
    return declared, chunked


class BodyLimit:
    def __init__(
        self, app: ASGIApp, *, mcp_path: str, mcp_max_bytes: int, small_max_bytes: int = SMALL_BODY_BYTES
    ) -> None:
        self.app = app
        self.mcp_path = mcp_path
        self.mcp_max_bytes = mcp_max_bytes
        self.small_max_bytes = small_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        mcp = path == self.mcp_path or path.startswith(self.mcp_path + "/")
        limit, error = (self.mcp_max_bytes, jsonrpc_413) if mcp else (self.small_max_bytes, oauth_413)
        declared, chunked = _framing(scope)
        if declared is not None and declared > limit:
            await refuse(send, receive, error(limit))
        elif not chunked:  # RFC 9112 §6.3: no body, or the parser delivers no more than declared
            await self.app(scope, receive, send)
        elif mcp:
            counted = Counted(receive, send, limit, error(limit))
            await self.app(scope, counted.receive, counted.send)
        else:
            body = await _read_small(receive, send, limit, error(limit))
            if body is not None:
                await self.app(scope, replaying(body, receive), send)


async def _read_small(receive: Receive, send: Send, limit: int, error: bytes) -> bytes | None:
    """The whole body, or None once answered 413 (or the client left)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # gone: nothing to answer
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await refuse(send, receive, error)
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class Counted:
    """A streamed body, counted. Past the limit the app hears a disconnect, which every ASGI
    app handles, and the client gets the 413 unless the app had begun answering (then that
    answer ends unfinished and the connection closes); what the app sends after a 413 is dropped."""

    def __init__(self, receive: Receive, send: Send, limit: int, error: bytes) -> None:
        self._receive, self._send = receive, send
        self.limit, self.error = limit, error
        self.size = 0
        self.started = self.refused = self.answered = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                self.refused = True
                if not self.started:
                    self.answered = True
                    await refuse(self._send, self._receive, self.error)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)


async def refuse(send: Send, receive: Receive, body: bytes) -> None:
    """413 with `Connection: close`; the body goes out first, then a bounded drain, then the
    end of the response (which lets the server close the connection)."""
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await _drain(receive)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _drain(receive: Receive) -> None:
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while drained < DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                drained += len(message.get("body", b""))
    except TimeoutError:
        return
