"""The MCP servers the gateway tests put behind authgate.

`build_upstream(stateless=...)` is an `mcp` SDK `MCPServer` (Streamable HTTP) with tools:

* `echo(text)` — returns the text;
* `wait_for_gate(label)` — sends a progress notification, then blocks until the test opens
  `Upstream.gate(label)` (a threading.Event: the server runs in another thread), and
  records a cancellation if its request is cancelled instead;
* `seen_headers()` — returns the HTTP request headers the tool's request arrived with;
* `in_region(region, query)` — `region` is annotated `x-mcp-header: Region`, so 2026-07-28
  clients must mirror it as `Mcp-Param-Region`.

Every HTTP request's headers are also recorded by an ASGI wrapper (`Upstream.requests`),
so a test can assert what reached the upstream, whatever the route.

`scripted_app()` is a tiny hand-written upstream for what the SDK server does not do:
JSON-RPC batches (2025-03-26), an SSE answer with `id:`/`retry:`/comment lines split
mid-line, and a 401 for the gateway's own credential.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

RAW_SSE = (
    b"id: ev-7\r\nretry: 1500\r\n: a comment line\r\nevent: message\r\n"
    b'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}\r\n\r\n'
    b'id: ev-8\ndata: {"jsonrpc":"2.0","id":1,\ndata: "result":{}}\n\n'
)


@dataclass
class Upstream:
    """What a test can see and steer of one upstream app."""

    app: ASGIApp
    requests: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    gates: dict[str, threading.Event] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    entered: list[str] = field(default_factory=list)

    def gate(self, label: str) -> threading.Event:
        return self.gates.setdefault(label, threading.Event())

    def headers_seen(self, name: str) -> list[str]:
        return [r[name] for r in self.requests if name in r]


class _RecordHeaders:
    def __init__(self, app: ASGIApp, sink: list[dict[str, str]]) -> None:
        self.app = app
        self.sink = sink

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.sink.append({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
        await self.app(scope, receive, send)


def build_upstream(*, stateless: bool, json_response: bool = False) -> Upstream:
    server = MCPServer("gateway-test-upstream")
    upstream = Upstream(app=None)  # type: ignore[arg-type]

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    @server.tool(description="Report progress, then wait until the test opens the gate.")
    async def wait_for_gate(label: str, ctx: Context) -> str:
        upstream.entered.append(label)
        await ctx.report_progress(1, 2, f"{label}: waiting")
        try:
            while not upstream.gate(label).is_set():
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            upstream.cancelled.append(label)
            raise
        return f"{label}: released"

    @server.tool(description="The HTTP headers this tool call arrived with.")
    def seen_headers(ctx: Context) -> str:
        request = ctx.request_context.request
        headers = dict(request.headers) if request is not None else {}
        return json.dumps(headers)

    @server.tool(description="A query routed by region.")
    def in_region(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], query: str) -> str:
        return f"{region}:{query}"

    app = server.streamable_http_app(
        stateless_http=stateless,
        json_response=json_response,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    upstream.app = _RecordHeaders(app, upstream.requests)
    return upstream


def scripted_app() -> Upstream:
    """Batches answered one result per request (202 if none); `raw/sse` → RAW_SSE in two
    pieces; `auth/test` → 401 with a challenge."""
    upstream = Upstream(app=None)  # type: ignore[arg-type]

    async def mcp(request: Request) -> Response:
        raw = await request.body()
        upstream.bodies.append(raw)
        body = json.loads(raw)
        if isinstance(body, dict) and body.get("method") == "raw/sse":

            async def events() -> Any:
                yield RAW_SSE[:40]  # split mid-line: the gateway must not re-frame
                await asyncio.sleep(0.05)
                yield RAW_SSE[40:]

            return StreamingResponse(events(), media_type="text/event-stream")
        if isinstance(body, dict) and body.get("method") == "auth/test":
            return JSONResponse(
                {"error": "invalid_token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer resource_metadata="http://elsewhere"'},
            )
        messages = body if isinstance(body, list) else [body]
        answers = [
            {"jsonrpc": "2.0", "id": m["id"], "result": {"echo": m["method"]}}
            for m in messages
            if "id" in m and "method" in m
        ]
        if not answers:
            return Response(status_code=202)
        return JSONResponse(
            answers if isinstance(body, list) else answers[0], headers={"Set-Cookie": "authgate_session=evil; Path=/"}
        )

    upstream.app = _RecordHeaders(Starlette(routes=[Route("/mcp", mcp, methods=["POST"])]), upstream.requests)
    return upstream
