"""`Reply`: the answer to one client request as it goes out, and how it ends when the
upstream fails midway.

Before the headers go out a failure is an ordinary JSON-RPC error response (502/503/504).
After them, on an SSE stream, the stream's last event carries a JSON-RPC error for each
request id still unanswered, after whatever ends an event the stream stopped in the middle
of (gateway/sse.py: `SseWatch` reads the relayed stream, `error_ending` writes the end, the
same for a stop's drain); a JSON body already under way (one too large to hold back) can
only end. The failures are the upstream's, a timeout, or a stop cutting the request
(`ShuttingDown`, handed over by gateway/drain.py like any other failure).

The request log's `outcome` field says how an answer ended when not as the upstream sent it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.types import Scope, Send

from authgate.gateway.errors import GatewayError, JsonRpcId, send_error
from authgate.gateway.sse import SseWatch, error_ending, last_event
from authgate.observe import note

__all__ = ["Reply"]


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
        reason = (exc.data() or {}).get("reason")
        if not self.started:
            if reason is not None:
                note(self.scope, outcome=reason)
            self.done = True
            await send_error(self._send, exc)
            return
        ending = error_ending(self.watch, exc) if self.sse and self.watch is not None else b""
        note(self.scope, outcome=f"{'error_event' if ending else 'cut'}:{reason or type(exc).__name__}")
        await self.body(ending, more=False)

    async def close(self, outcome: str, final: dict[str, Any] | None = None) -> None:
        """End a stream that is under way on purpose (its time is up), with `final` as its last
        event if it is SSE and one is given."""
        if self.done or not self.started:
            return
        note(self.scope, outcome=outcome)
        await self.body(
            last_event(self.watch, final) if final is not None and self.watch is not None else b"", more=False
        )
