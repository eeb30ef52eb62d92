"""An `mcp` SDK `MCPServer` that implements what the MCP conformance suite's server
scenarios ask of the server under test (`@modelcontextprotocol/conformance` 0.2.0-alpha.12,
`conformance list --server`; each scenario's description names the tools, resources and
prompts it calls); the 2026-07-28 scenarios' part is in conformance_upstream_2026.py. The
gateway conformance test (test_conformance.py) runs the suite against it directly, through
authgate's HTTP gateway and (conformance_stdio.py) through its stdio bridge.

Why not `@modelcontextprotocol/server-everything` (already in tests/node, with a
`streamableHttp` mode)? Its tools have other names, so it passed 11 of 0.1.16's 32 scenarios
(and failed `dns-rebinding-protection`); this server passes every scored scenario of both
requirement sets.

`build_conformance_upstream()` returns the ASGI app (Streamable HTTP at `/mcp`, stateful,
an in-memory event store so SSE streams can be resumed with `Last-Event-ID`, DNS
rebinding protection for loopback).

One adjustment: the `server-sse-polling` scenario initializes a 2025-11-25 session and then
POSTs `tools/call test_reconnection` with `MCP-Protocol-Version: 2025-03-26`. The Python SDK
takes that header at its word and, for a pre-2025-11-25 client, sends no priming event and
cannot close the stream mid-call, so the scenario would only warn and the resumption path
(priming `id:`/`retry:`, stream closed mid-call, `GET` with `Last-Event-ID`) would go
untested — the very path a proxy could break. `_SessionVersionWins` raises that header to
2025-11-25 (what the session negotiated) before the SDK sees it; the scenario then runs the
whole path, directly and through the gateway alike.
"""

from __future__ import annotations

import asyncio
import base64
import json
from itertools import count
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    AudioContent,
    CallToolResult,
    Completion,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from starlette.types import ASGIApp, Receive, Scope, Send

from .conformance_upstream_2026 import add_2026_features

# A 1x1 PNG and a header-only WAV: the scenarios check only type and MIME type.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
WAV_EMPTY = base64.b64encode(
    b"RIFF"
    + (36).to_bytes(4, "little")
    + b"WAVEfmt "
    + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little")
    + (8000).to_bytes(4, "little")
    + (16000).to_bytes(4, "little")
    + (2).to_bytes(2, "little")
    + (16).to_bytes(2, "little")
    + b"data"
    + (0).to_bytes(4, "little")
).decode()

# SEP-1613 and SEP-2106: listed as is, so `$schema`, `$defs`, `additionalProperties`,
# `$anchor`, `allOf`/`anyOf` and `if`/`then`/`else` must survive (the schema the
# `json-schema-2020-12` scenario of conformance 0.2.0-alpha.12 lists).
JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


class MemoryEventStore(EventStore):
    """Every SSE event of every stream, kept so a client can resume after `Last-Event-ID`."""

    def __init__(self) -> None:
        self._ids = count(1)
        self._events: list[tuple[str, int, Any]] = []  # (stream id, event number, message)

    async def store_event(self, stream_id: str, message: Any) -> str:
        number = next(self._ids)
        self._events.append((stream_id, number, message))
        return str(number)

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        try:
            after = int(last_event_id)
        except ValueError:
            return None
        stream = next((s for s, n, _ in self._events if n == after), None)
        if stream is None:
            return None
        for s, n, message in list(self._events):
            if s == stream and n > after and message is not None:  # None: a priming event
                await send_callback(EventMessage(message, str(n)))
        return stream


class _SessionVersionWins:
    """`MCP-Protocol-Version: 2025-03-26` → `2025-11-25` on requests (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = dict(
                scope,
                headers=[
                    (k, b"2025-11-25" if k == b"mcp-protocol-version" and v == b"2025-03-26" else v)
                    for k, v in scope["headers"]
                ],
            )
        await self.app(scope, receive, send)


def _text(result: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=result)])


def build_conformance_upstream() -> ASGIApp:
    """The server over Streamable HTTP at `/mcp` (see the module doc)."""
    server = build_conformance_server()
    # Loopback defaults of the SDK: Host and Origin must be 127.0.0.1/localhost/[::1].
    security = TransportSecuritySettings(
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
    return _SessionVersionWins(
        server.streamable_http_app(event_store=MemoryEventStore(), retry_interval=100, transport_security=security)
    )


def build_conformance_server() -> MCPServer:
    """The `MCPServer` itself, for any transport (conformance_stdio.py runs it over stdio)."""
    server = MCPServer("authgate-conformance-upstream", version="1.0.0")
    subscriptions: set[str] = set()

    # -- tools --------------------------------------------------------------------------

    @server.tool(description="Returns one text block.")
    def test_simple_text() -> CallToolResult:
        return _text("This is a simple text response for testing.")

    @server.tool(description="Returns one image block.")
    def test_image_content() -> CallToolResult:
        return CallToolResult(content=[ImageContent(type="image", data=PNG_1X1, mime_type="image/png")])

    @server.tool(description="Returns one audio block.")
    def test_audio_content() -> CallToolResult:
        return CallToolResult(content=[AudioContent(type="audio", data=WAV_EMPTY, mime_type="audio/wav")])

    @server.tool(description="Returns one embedded text resource.")
    def test_embedded_resource() -> CallToolResult:
        return CallToolResult(
            content=[
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri="test://embedded-resource",
                        mime_type="text/plain",
                        text="This is an embedded resource content.",
                    ),
                )
            ]
        )

    @server.tool(description="Returns text, an image and an embedded resource.")
    def test_multiple_content_types() -> CallToolResult:
        return CallToolResult(
            content=[
                TextContent(type="text", text="Multiple content types test:"),
                ImageContent(type="image", data=PNG_1X1, mime_type="image/png"),
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri="test://mixed-content-resource",
                        mime_type="application/json",
                        text=json.dumps({"test": "data", "value": 123}),
                    ),
                ),
            ]
        )

    @server.tool(description="Sends three info log messages 50 ms apart while it runs.")
    async def test_tool_with_logging(ctx: Context) -> CallToolResult:
        for i, step in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
            if i:
                await asyncio.sleep(0.05)
            await ctx.info(step)  # deprecated in 2026-07-28; the scenario is 2025-11-25
        return _text("Tool with logging executed successfully")

    @server.tool(description="Reports progress 0, 50 and 100 of 100, 50 ms apart.")
    async def test_tool_with_progress(ctx: Context) -> CallToolResult:
        for i, done in enumerate((0, 50, 100)):
            if i:
                await asyncio.sleep(0.05)
            await ctx.report_progress(done, 100, f"Completed step {done} of 100")
        meta = ctx.request_context.meta or {}
        return _text(str(meta.get("progress_token", 0)))

    @server.tool(description="Always fails.")
    def test_error_handling() -> str:
        raise RuntimeError("This tool intentionally returns an error for testing")

    @server.tool(description="Closes its SSE stream mid-call; the result follows on the resumed stream.")
    async def test_reconnection(ctx: Context) -> CallToolResult:
        await ctx.close_sse_stream()
        await asyncio.sleep(0.2)
        return _text("Reconnection test completed")

    @server.tool(description="Asks the client to sample an LLM with the prompt.")
    async def test_sampling(prompt: str, ctx: Context) -> CallToolResult:
        result = await ctx.session.create_message(  # deprecated in 2026-07-28, as above
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
        text = getattr(result.content, "text", "No response")
        return _text(f"LLM response: {text}")

    @server.tool(description="Asks the client for a username and an email address.")
    async def test_elicitation(message: str, ctx: Context) -> CallToolResult:
        answer = await ctx.session.elicit_form(
            message,
            {
                "type": "object",
                "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"},
                },
                "required": ["username", "email"],
            },
            related_request_id=ctx.request_id,
        )
        return _text(f"User response: action={answer.action}, content={json.dumps(answer.content or {})}")

    @server.tool(description="Elicitation whose fields all have defaults (SEP-1034).")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> CallToolResult:
        answer = await ctx.session.elicit_form(
            "Review these fields",
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {
                        "type": "string",
                        "description": "User status",
                        "enum": ["active", "inactive", "pending"],
                        "default": "active",
                    },
                    "verified": {"type": "boolean", "description": "Verified", "default": True},
                },
                "required": [],
            },
            related_request_id=ctx.request_id,
        )
        return _text(f"Elicitation completed: action={answer.action}, content={json.dumps(answer.content or {})}")

    @server.tool(description="Elicitation with the five enum forms of SEP-1330.")
    async def test_elicitation_sep1330_enums(ctx: Context) -> CallToolResult:
        def titled(prefix: str, word: str) -> list[dict[str, str]]:
            return [
                {"const": f"{prefix}{i}", "title": f"{n} {word}"}
                for i, n in ((1, "First"), (2, "Second"), (3, "Third"))
            ]

        answer = await ctx.session.elicit_form(
            "Pick options",
            {
                "type": "object",
                "properties": {
                    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string", "oneOf": titled("value", "Option")},
                    "legacyEnum": {
                        "type": "string",
                        "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"],
                    },
                    "untitledMulti": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
                    },
                    "titledMulti": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 3,
                        "items": {"anyOf": titled("value", "Choice")},
                    },
                },
                "required": [],
            },
            related_request_id=ctx.request_id,
        )
        return _text(f"Elicitation completed: action={answer.action}, content={json.dumps(answer.content or {})}")

    @server.tool(description="Has a JSON Schema 2020-12 input schema (SEP-1613).")
    def json_schema_2020_12_tool(name: str | None = None, address: dict[str, str] | None = None) -> str:
        return json.dumps({"name": name, "address": address})

    # The SDK derives a schema from the signature; list the raw 2020-12 one instead.
    tool = server._tool_manager.get_tool("json_schema_2020_12_tool")  # no public setter
    assert tool is not None
    tool.parameters = JSON_SCHEMA_2020_12

    # -- resources ----------------------------------------------------------------------

    @server.resource(
        "test://static-text", name="static-text", mime_type="text/plain", description="A static text resource"
    )
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource(
        "test://static-binary",
        name="static-binary",
        mime_type="image/png",
        description="A static binary resource (a PNG)",
    )
    def static_binary() -> bytes:
        return base64.b64decode(PNG_1X1)

    @server.resource(
        "test://template/{id}/data",
        name="template",
        mime_type="application/json",
        description="A template: the id is substituted",
    )
    def template(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource(
        "test://watched-resource",
        name="watched-resource",
        mime_type="text/plain",
        description="A resource clients may subscribe to",
    )
    def watched() -> str:
        return "Watched resource content"

    async def subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        subscriptions.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        subscriptions.discard(str(params.uri))
        return EmptyResult()

    async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    # MCPServer has no decorators for these 2025-11-25 methods (deprecated in 2026-07-28).
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)

    # -- prompts and completion ---------------------------------------------------------

    @server.prompt(description="A prompt without arguments")
    def test_simple_prompt() -> list[UserMessage]:
        return [UserMessage("This is a simple prompt for testing.")]

    @server.prompt(description="A prompt with two required arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @server.prompt(description="A prompt that embeds a resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        return [
            UserMessage(
                EmbeddedResource(
                    type="resource",
                    resource=TextResourceContents(
                        uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
                    ),
                )
            ),
            UserMessage("Please process the embedded resource above."),
        ]

    @server.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[UserMessage]:
        return [
            UserMessage(ImageContent(type="image", data=PNG_1X1, mime_type="image/png")),
            UserMessage("Please analyze the image above."),
        ]

    @server.completion()  # type: ignore[no-untyped-call, untyped-decorator]
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        return Completion(values=[], total=0, has_more=False)

    add_2026_features(server)  # the 2026-07-28 scenarios' tools and prompt
    return server
