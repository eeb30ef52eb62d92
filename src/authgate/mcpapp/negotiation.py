"""Accept and Content-Type checks in front of the built-in MCP servers, with answers that say
what to send (seed 003 lost time on bare 400s). Proxied upstreams are not wrapped: there the
gateway is never stricter than the upstream itself.

MCP Streamable HTTP: a POST carries a JSON-RPC body (`Content-Type: application/json`) and
its `Accept` lists both `application/json` and `text/event-stream`.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1")).lower()
    return ""


def _accepts_both(accept: str) -> bool:
    types = {part.split(";")[0].strip() for part in accept.split(",")}
    return "*/*" in types or {"application/json", "text/event-stream"} <= types


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ContentNegotiation:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST":
            ctype = _header(scope, b"content-type").split(";")[0].strip()
            if ctype != "application/json":
                await _refuse(
                    send,
                    415,
                    f"Unsupported Media Type: send the JSON-RPC message with "
                    f"'Content-Type: application/json' (got {ctype or 'none'!r})",
                )
                return
            if not _accepts_both(_header(scope, b"accept")):
                await _refuse(
                    send,
                    406,
                    "Not Acceptable: send 'Accept: application/json, text/event-stream' "
                    "(MCP Streamable HTTP answers with either)",
                )
                return
        await self.app(scope, receive, send)

    @property
    def router(self) -> object:
        """The wrapped app's router, so its lifespan (the SDK's session manager) still runs."""
        return getattr(self.app, "router", self.app)
