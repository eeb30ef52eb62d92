"""An in-process driver for the stdio bridge: ASGI calls with a chosen Identity, no network.

`Asgi(bridge).post(identity, body, headers)` runs one request and returns a `Reply` whose
`status`, `headers`, `json()` and SSE `events()` can be awaited; `reply.close()` disconnects.
`modern(method, params)` is a 2026-07-28 request and its metadata headers.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from authgate.gateway.stdio.bridge import StdioBridge
from authgate.guard.identity import SCOPE_KEY, Identity

DEMO = Path(__file__).resolve().parents[1] / "integration" / "stdio_servers" / "demo_server.py"
WATCH = DEMO.with_name("watch_server.py")
STEP_TIMEOUT = 20.0
LEGACY = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def identity(name: str) -> Identity:
    return Identity(subject=f"user-{name}", client_id=f"client-{name}", scopes=("mcp",), audience=(), expires_at=0)


class Reply:
    def __init__(self, task: asyncio.Task[None], sent: asyncio.Queue[dict[str, Any]], gone: asyncio.Event) -> None:
        self.task, self._sent, self._gone = task, sent, gone
        self.status = 0
        self.headers: dict[str, str] = {}
        self._buffer = b""
        self.ended = False

    async def start(self) -> Reply:
        message = await asyncio.wait_for(self._sent.get(), STEP_TIMEOUT)
        assert message["type"] == "http.response.start", message
        self.status = message["status"]
        self.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        return self

    async def _chunk(self) -> bytes:
        message = await asyncio.wait_for(self._sent.get(), STEP_TIMEOUT)
        self.ended = not message.get("more_body", False)
        return bytes(message.get("body", b""))

    async def body(self) -> bytes:
        data = b""
        while not self.ended:
            data += await self._chunk()
        return data

    async def json(self) -> Any:
        return json.loads(await self.body())

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        while not self.ended:
            self._buffer += await self._chunk()
            while b"\n\n" in self._buffer:
                event, self._buffer = self._buffer.split(b"\n\n", 1)
                for line in event.splitlines():
                    if line.startswith(b"data: ") and line[6:].strip():  # not a priming event (empty data)
                        yield json.loads(line[6:])

    async def fields(self) -> AsyncIterator[dict[str, str]]:
        """Each SSE event as its fields (id, retry, event, data), a priming event's empty data too;
        comments (keepalives) left out."""
        while not self.ended:
            self._buffer += await self._chunk()
            while b"\n\n" in self._buffer:
                event, self._buffer = self._buffer.split(b"\n\n", 1)
                fields = {}
                for line in event.decode().splitlines():
                    name, _, value = line.partition(":")
                    if name:
                        fields[name] = value.removeprefix(" ")
                if fields:
                    yield fields

    async def answer(self) -> Any:
        """The JSON-RPC answer: the JSON body, or the last SSE event."""
        if self.headers.get("content-type", "").startswith("application/json"):
            return await self.json()
        last = None
        async for event in self.events():
            last = event
        return last

    async def close(self) -> None:
        self._gone.set()
        await asyncio.wait_for(self.task, STEP_TIMEOUT)


class Asgi:
    def __init__(self, app: StdioBridge) -> None:
        self.app = app

    async def call(
        self,
        who: Identity | None,
        method: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        repeated: Sequence[tuple[str, str]] = (),
    ) -> Reply:
        """`repeated`: header lines added as they are, e.g. a second copy of one in `headers`."""
        raw = json.dumps(body).encode() if body is not None else b""
        lines = [*{**LEGACY, **(headers or {})}.items(), *repeated]
        scope: dict[str, Any] = {
            "type": "http",
            "method": method,
            "path": "/mcp",
            "headers": [(k.lower().encode(), v.encode()) for k, v in lines],
        }
        if who is not None:
            scope[SCOPE_KEY] = who
        sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        gone = asyncio.Event()
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.put_nowait(message)

        return await Reply(asyncio.create_task(self.app(scope, receive, send)), sent, gone).start()

    async def post(
        self,
        who: Identity | None,
        body: Any,
        headers: dict[str, str] | None = None,
        repeated: Sequence[tuple[str, str]] = (),
    ) -> Reply:
        return await self.call(who, "POST", body, headers, repeated)


def rpc(method: str, params: dict[str, Any] | None = None, request_id: int | None = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if request_id is not None:
        message["id"] = request_id
    return message


def modern(
    method: str, params: dict[str, Any] | None = None, request_id: Any = 1, capabilities: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026-07-28 request (envelope in `_meta`) and the metadata headers that mirror it."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": capabilities if capabilities is not None else {},
    }
    body = rpc(method, {**(params or {}), "_meta": meta}, request_id)
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": method}
    name = (params or {}).get("name", (params or {}).get("uri"))
    if name is not None:
        headers["mcp-name"] = name
    return body, headers


INIT = rpc(
    "initialize",
    {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}}, "clientInfo": {"name": "t", "version": "1"}},
)


async def open_session(asgi: Asgi, who: Identity) -> str:
    reply = await asgi.post(who, INIT)
    assert reply.status == 200, await reply.body()
    await reply.body()
    session = reply.headers["mcp-session-id"]
    note = await asgi.post(who, rpc("notifications/initialized", request_id=None), {"mcp-session-id": session})
    assert note.status == 202
    return session


@pytest.fixture
async def bridge() -> AsyncIterator[StdioBridge]:
    # 2025-11-25 children for 2026-07-28 callers too: these tests are of the bridge's own InputRequiredResults
    # (demo_server's tools ask with ctx.elicit, which a 2026-07-28 connection cannot carry)
    app = StdioBridge(
        [sys.executable, str(DEMO)],
        identity_env=True,
        max_children=3,
        max_children_per_identity=2,
        protocol="2025-11-25",
    )
    async with app:
        yield app


@pytest.fixture
def asgi(bridge: StdioBridge) -> Asgi:
    return Asgi(bridge)


@pytest.fixture
async def watch_bridge() -> AsyncIterator[StdioBridge]:
    """The bridge in front of watch_server.py (x-mcp-header tools, listChanged, resources.subscribe)."""
    app = StdioBridge(
        [sys.executable, str(WATCH)], identity_env=True, max_children=4, max_children_per_identity=2, init_timeout=20
    )
    async with app:
        yield app


@pytest.fixture
def watch(watch_bridge: StdioBridge) -> Asgi:
    return Asgi(watch_bridge)
