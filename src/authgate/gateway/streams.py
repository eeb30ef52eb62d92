"""`StreamLimit`: at most `max_streams_per_caller` long-lived streams open per caller, in front
of whichever MCP app authgate protects (HTTP upstream, stdio bridge, built-in or yours).

A stream is what a client keeps open without end: the GET stream of the MCP endpoint
(Streamable HTTP's server-to-client channel) and a `subscriptions/listen` request (MCP
2026-07-28, whose answer is the long-lived stream). Each holds an upstream connection or a
child's subscription for as long as the client keeps it; a call's own streamed answer is
not counted here (it ends with the call). Past the cap the new stream gets 429 with a
JSON-RPC error and `Retry-After`, before the app sees it; the caller's other streams and
every other caller are untouched.

The caller is who the guard says is calling (`Identity`: subject and client, as the gateway
binds sessions), or the client address for an anonymous request. The count is this
replica's: behind a load balancer each replica allows as many.

Sits behind the policy layer (server/app.py), which has parsed a POST body by then
(`PARSED_BODY_KEY`), so a refused request never takes a seat.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from authgate.gateway.body import PARSED_BODY_KEY
from authgate.gateway.errors import GatewayError, JsonRpcId, send_error
from authgate.guard.identity import SCOPE_KEY, Identity

__all__ = ["StreamLimit", "TooManyStreams"]

LISTEN = "subscriptions/listen"
RETRY_AFTER = 5  # seconds: a stream frees its seat only when the client closes one


class TooManyStreams(GatewayError):
    """The caller already holds `max_streams_per_caller` open streams (RFC 6585 §4: 429)."""

    status = 429
    code = -32603  # gateway-local, like every failure authgate itself answers (gateway/errors.py)

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": "too_many_streams"}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(RETRY_AFTER).encode())]


class StreamLimit:
    def __init__(self, app: ASGIApp, *, per_caller: int) -> None:
        self.app = app
        self.per_caller = per_caller
        self._open: dict[tuple[str, ...], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stream = _stream(scope)
        if stream is None:
            await self.app(scope, receive, send)
            return
        caller = _caller(scope)
        held = self._open.get(caller, 0)
        if held >= self.per_caller:
            await send_error(
                send,
                TooManyStreams(
                    f"authgate: this caller already has {held} streams open (max_streams_per_caller); "
                    "close one, or retry later",
                    request_id=stream[1],
                ),
            )
            return
        self._open[caller] = held + 1
        try:
            await self.app(scope, receive, send)
        finally:
            left = self._open[caller] - 1
            if left:
                self._open[caller] = left
            else:
                del self._open[caller]


def _stream(scope: Scope) -> tuple[str, JsonRpcId] | None:
    """("GET", None) or ("listen", its id) when the request opens a stream, else None."""
    method = scope.get("method")
    if method == "GET":
        return "GET", None
    parsed = scope.get(PARSED_BODY_KEY)
    if method != "POST" or parsed is None:
        return None
    decoded = parsed[1]
    for message in decoded if isinstance(decoded, list) else [decoded]:
        if isinstance(message, dict) and message.get("method") == LISTEN:
            request_id = message.get("id")
            return "listen", request_id if isinstance(request_id, str | int) else None
    return None


def _caller(scope: Scope) -> tuple[str, ...]:
    identity = scope.get(SCOPE_KEY)
    if isinstance(identity, Identity):
        return ("identity", identity.subject, identity.client_id)
    client = scope.get("client")
    return ("address", str(client[0]) if client else "-")
