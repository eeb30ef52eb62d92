"""Test doubles for the policy layer: an MCP-ish app, a token verifier, an audit store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Receive, Scope, Send

from authgate.errors import InvalidToken
from authgate.guard.identity import SCOPE_KEY, Identity
from authgate.store.models import AuditEvent

TOOLS = [{"name": n, "inputSchema": {"type": "object"}} for n in ("search", "write", "delete")]


def identity(*scopes: str, client_id: str = "client-1") -> Identity:
    return Identity(
        subject="sub-1",
        client_id=client_id,
        scopes=scopes,
        audience=("http://testserver/mcp",),
        expires_at=2**40,
        username="alice",
    )


class Verifier:
    """Tokens are 'tok-<scope>+<scope>'."""

    async def verify(self, token: str) -> Identity:
        if not token.startswith("tok-"):
            raise InvalidToken("unknown token")
        return identity(*[s for s in token[4:].split("+") if s])


@dataclass
class McpApp:
    """Answers tools/list (JSON, or SSE with a progress event first) and tools/call; records
    what reached it."""

    sse: bool = False
    session_id: str | None = None
    seen: list[tuple[bytes, Identity | None]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen = scope.get(SCOPE_KEY)
        self.seen.append((body, seen if isinstance(seen, Identity) else None))
        decoded = json.loads(body)
        messages = decoded if isinstance(decoded, list) else [decoded]
        answers = [self._answer(m) for m in messages if isinstance(m, dict) and "id" in m]
        headers = [(b"mcp-session-id", self.session_id.encode())] if self.session_id else []
        if self.sse:
            events = [b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n']
            events += [b"event: message\nid: 7\ndata: " + json.dumps(a).encode() + b"\n\n" for a in answers]
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), *headers],
                }
            )
            for event in events:  # in two pieces each, to cut events across chunks
                await send({"type": "http.response.body", "body": event[:20], "more_body": True})
                await send({"type": "http.response.body", "body": event[20:], "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if not answers:  # notifications only
            await send({"type": "http.response.start", "status": 202, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        payload = json.dumps(answers if isinstance(decoded, list) else answers[0]).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    @staticmethod
    def _answer(message: dict[str, Any]) -> dict[str, Any]:
        if message["method"] == "tools/list":
            return {
                "jsonrpc": "2.0",
                "id": message["id"],
                "result": {"tools": TOOLS, "ttlMs": 60000, "cacheScope": "public"},
            }
        return {"jsonrpc": "2.0", "id": message["id"], "result": {"content": [], "isError": False}}


@dataclass
class MemoryAuditStore:
    """No connection of its own (`batch_writer` is None): the writer thread hands its batches
    to the event loop, as for an in-memory SQLite database."""

    events: list[AuditEvent] = field(default_factory=list)
    fail: int = 0  # refuse this many writes first
    hold: asyncio.Event | None = None  # writes wait until it is set
    batch_sizes: list[int] = field(default_factory=list)

    async def add_audit_events(self, events: Sequence[AuditEvent]) -> None:
        from authgate.errors import StoreError

        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            self.fail -= 1
            raise StoreError("database is locked")
        self.batch_sizes.append(len(events))
        self.events.extend(events)

    def batch_writer(self) -> None:
        return None

    async def list_audit_events(
        self, *, since: float | None = None, subject: str | None = None, target: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        return self.events[-limit:]
