"""`ElicitationLayer`: the pure-ASGI layer in front of the protected app (library mode's app,
the HTTP gateway, the stdio bridge) that asks MCP clients for connections (docs/connections.md).

For each `tools/call` (`prompts/get`, `resources/read`) of a signed-in caller, when a
`ConnectionBroker` is in the scope (`CONNECTION_BROKER_KEY`), `ConnectionAsks.before`
(connections/asks.py) decides first: answer now (a URL elicitation, a refusal of a bad
`requestState`), or forward — the body rewritten when authgate's own `requestState` and
`inputResponses` come off it, the provider token headers handed to the gateway in the scope
(`CONNECTION_HEADERS_KEY`). The answer to every request of a signed-in caller is then watched
for the signal (JSON-RPC error -32012, connections/elicitation.py), which becomes the
elicitation of the client's revision (with the link already made when the app left it in
`PENDING_KEY`, as `authgate.connection_token` and the protected upstream do); every other
answer passes untouched.

The client's capabilities come from each request's `_meta` (2026-07-28), or for 2025-era
sessions from the `initialize` this layer saw, kept by `Mcp-Session-Id` in this process
(SessionCapabilities); a session this process never saw initialize gets the tool error with
the link, which every client can show.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.connections.asks import RERUN, Call, ConnectionAsks, connection_header
from authgate.connections.elicitation import (
    MRTR_METHODS,
    read_signal,
    request_capabilities,
    request_version,
    retry_result,
    url_declared,
)
from authgate.connections.request_state import RequestStates
from authgate.errors import ConnectionRequired
from authgate.gateway.body import PARSED_BODY_KEY, read_body, replaying
from authgate.guard.identity import (
    CONNECTION_BROKER_KEY,
    CONNECTION_HEADERS_KEY,
    CONNECTION_PENDING_KEY,
    SCOPE_KEY,
    Identity,
)
from authgate.observe import note

__all__ = ["PENDING_KEY", "ElicitationLayer", "SessionCapabilities"]

PENDING_KEY = CONNECTION_PENDING_KEY  # the links already made for this request, by provider (guard/identity.py)
MAX_HELD = 8 * 1024 * 1024  # an answer held whole to look for the signal; larger ones stream on
_EVENT_ENDS = (b"\r\n\r\n", b"\n\n", b"\r\r")


class SessionCapabilities:
    """Whether each 2025-era session's client declared `elicitation.url` at `initialize`, by
    the SHA-256 of its session id (a flag each, whatever the size of what the client sent); the
    oldest forgotten past `limit`."""

    URL: ClassVar[dict[str, Any]] = {"elicitation": {"url": {}}}  # what a remembered "yes" reads as

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._known: OrderedDict[bytes, bool] = OrderedDict()

    @staticmethod
    def _key(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode()).digest()

    def remember(self, session_id: str, capabilities: Any) -> None:
        self._known[self._key(session_id)] = url_declared(capabilities)
        while len(self._known) > self.limit:
            self._known.popitem(last=False)

    def get(self, session_id: str | None) -> dict[str, Any] | None:
        known = self._known.get(self._key(session_id)) if session_id else None
        return self.URL if known else None


class ElicitationLayer:
    def __init__(
        self, app: ASGIApp, *, secret: bytes, ttl: int, tools: dict[str, str], max_body: int, gateway: bool = False
    ) -> None:
        """`gateway`: the app is the HTTP gateway, which takes provider tokens in headers."""
        self.app = app
        self.states = RequestStates(secret, ttl)
        self.tools = tools
        self.max_body = max_body
        self.gateway = gateway
        self.sessions = SessionCapabilities()
        self._asks: ConnectionAsks | None = None

    def _asks_for(self, broker: Any) -> ConnectionAsks:
        if self._asks is None or self._asks.broker is not broker:
            self._asks = ConnectionAsks(broker, self.states, self.tools, headers=self.gateway)
        return self._asks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parsed = scope.get(PARSED_BODY_KEY) if scope["type"] == "http" and scope["method"] == "POST" else None
        broker = scope.get(CONNECTION_BROKER_KEY)
        message = parsed[1] if parsed is not None else None
        if broker is None or not isinstance(message, dict) or "id" not in message:
            await self.app(scope, receive, send)
            return
        identity = scope.get(SCOPE_KEY)
        if not isinstance(identity, Identity):
            await self.app(scope, receive, send)
            return
        if message.get("method") == "initialize":
            send = self._initialize_tap(message, send)
        await self._request(scope, receive, send, self._call(scope, message, identity), broker)

    def _call(self, scope: Scope, message: dict[str, Any], identity: Identity) -> Call:
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        version = request_version(params, _header(scope, b"mcp-protocol-version"))
        capabilities = request_capabilities(params)
        if capabilities is None:
            capabilities = self.sessions.get(_header(scope, b"mcp-session-id"))
        method = message.get("method")
        method = method if isinstance(method, str) else ""
        person = identity.username is not None  # the guard names a person; a machine client has none
        return Call(message["id"], params, version, capabilities, identity.subject, identity.client_id, method, person)

    async def _request(self, scope: Scope, receive: Receive, send: Send, call: Call, broker: Any) -> None:
        asks = self._asks_for(broker)
        if call.method in MRTR_METHODS:
            before = await asks.before(call)
            if before.answer is not None:
                note(scope, outcome="connection_asked")
                await _send_json(send, before.answer)
                return
            if before.params is not None:
                receive = await self._rewritten(scope, receive, before.params)
                call.params = before.params
            if before.headers:
                scope[CONNECTION_HEADERS_KEY] = before.headers
        pending: dict[str, ConnectionRequired] = {}
        scope[PENDING_KEY] = pending
        sent = {name.lower() for name, _ in scope.get(CONNECTION_HEADERS_KEY, ())}

        async def rewrite(error: dict[str, Any], held: bool) -> dict[str, Any] | None:
            signal = read_signal(error)
            if signal is None:
                return None
            carried = (
                not self.gateway or call.method != "tools/call" or connection_header(signal.provider).lower() in sent
            )
            answer = await asks.after(call, signal, pending.get(signal.provider), carried)
            if answer is RERUN and not held:  # the answer's stream already began: the client calls again
                answer = retry_result(call.request_id, signal.provider, call.version)
            if answer is not None and answer is not RERUN:
                note(scope, outcome="connection_asked")
            return answer

        tap = SignalTap(send, call.request_id, rewrite)
        await self.app(scope, receive, tap)
        if tap.rerun:  # connected, but the call went without the token: once more, with it (nothing sent yet)
            again = await asks.before(call)
            if again.answer is not None:
                await _send_json(send, again.answer)
                return
            scope[CONNECTION_HEADERS_KEY] = again.headers
            await self.app(scope, replaying(scope[PARSED_BODY_KEY][0], receive), send)

    async def _rewritten(self, scope: Scope, receive: Receive, params: dict[str, Any]) -> Receive:
        """The body without authgate's own requestState/inputResponses (never forwarded)."""
        await read_body(receive, self.max_body)  # the gate's replayed copy: nothing from the network
        decoded = dict(scope[PARSED_BODY_KEY][1])
        decoded["params"] = params
        raw = json.dumps(decoded).encode()
        scope[PARSED_BODY_KEY] = (raw, decoded)
        length = str(len(raw)).encode()
        scope["headers"] = [(k, length if k == b"content-length" else v) for k, v in scope["headers"]]
        return replaying(raw, receive)

    def _initialize_tap(self, message: dict[str, Any], send: Send) -> Send:
        """2025-era: remember the client's capabilities under the session id the app hands out."""
        params = message.get("params")
        capabilities = params.get("capabilities") if isinstance(params, dict) else None

        async def tapped(sent: Message) -> None:
            if sent["type"] == "http.response.start" and isinstance(capabilities, dict):
                for key, value in sent.get("headers", []):
                    if key.lower() == b"mcp-session-id":
                        self.sessions.remember(value.decode("latin-1"), capabilities)
            await send(sent)

        return tapped


Rewrite = Callable[[dict[str, Any], bool], Awaitable[dict[str, Any] | None]]  # (error, answer held whole)


class SignalTap:
    """Watches one `tools/call`'s answer (JSON, or SSE events) for its JSON-RPC error, which
    `rewrite` may replace; everything else goes on as it came."""

    def __init__(self, send: Send, request_id: Any, rewrite: Rewrite) -> None:
        self._send = send
        self.request_id = request_id
        self.rewrite = rewrite
        self._mode = "pass"
        self._start: Message | None = None
        self._buffer = bytearray()
        self.rerun = False  # the rewrite asked for the call again: this answer was dropped unsent

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            kind = _content_type(message.get("headers", []))
            if message["status"] == 200 and kind == "application/json":
                self._mode, self._start = "json", message
                return
            if message["status"] == 200 and kind == "text/event-stream":
                self._mode = "sse"
                message = {**message, "headers": _without_length(message.get("headers", []))}
        elif message["type"] == "http.response.body" and self._mode == "json":
            await self._json(message)
            return
        elif message["type"] == "http.response.body" and self._mode == "sse":
            await self._sse(message)
            return
        await self._send(message)

    async def _answer(self, payload: bytes, held: bool = False) -> bytes | None:
        """The rewritten response, when `payload` is this call's error and `rewrite` replaced it."""
        if b'"error"' not in payload:
            return None
        try:
            response = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(response, dict) or response.get("id") != self.request_id or "error" not in response:
            return None
        answer = await self.rewrite(response["error"], held)
        if answer is RERUN:
            self.rerun = True
            return b""
        return None if answer is None else json.dumps(answer).encode()

    async def _json(self, message: Message) -> None:
        self._buffer += message.get("body", b"")
        more = bool(message.get("more_body", False))
        if more and len(self._buffer) <= MAX_HELD:
            return
        body = bytes(self._buffer)
        answer = None if more else await self._answer(body, held=True)
        if self.rerun:
            return  # dropped: the layer sends the call again
        headers = _without_length(self._start["headers"] if self._start else [])
        if not more:
            headers.append((b"content-length", str(len(answer or body)).encode()))
        self._mode, self._buffer = "pass", bytearray()
        await self._send({**(self._start or {}), "headers": headers})
        await self._send({"type": "http.response.body", "body": answer or body, "more_body": more})

    async def _sse(self, message: Message) -> None:
        self._buffer += message.get("body", b"")
        more = bool(message.get("more_body", False))
        out = bytearray()
        while self._mode == "sse" and (end := _event_end(self._buffer)) >= 0:
            event = bytes(self._buffer[:end])
            del self._buffer[:end]
            out += await self._event(event)
        if self._mode != "sse" or not more or len(self._buffer) > MAX_HELD:
            out += self._buffer
            self._buffer = bytearray()
            self._mode = "pass"
        if out or not more:
            await self._send({"type": "http.response.body", "body": bytes(out), "more_body": more})

    async def _event(self, event: bytes) -> bytes:
        lines = event.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        data = b"\n".join(line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:"))
        if not data or (b'"result"' not in data and b'"error"' not in data):
            return event
        answer = await self._answer(data)
        if answer is None:
            if _answers(data, self.request_id):
                self._mode = "pass"  # this call's answer went by: the rest streams untouched
            return event
        self._mode = "pass"
        kept = [line for line in lines if line and not line.startswith(b"data:")]
        return b"\n".join([*kept, b"data: " + answer]) + b"\n\n"


def _answers(data: bytes, request_id: Any) -> bool:
    try:
        response = json.loads(data)
    except ValueError:
        return False
    return isinstance(response, dict) and response.get("id") == request_id and "method" not in response


def _event_end(buffer: bytearray) -> int:
    ends = [(i, len(sep)) for sep in _EVENT_ENDS if (i := buffer.find(sep)) >= 0]
    if not ends:
        return -1
    i, n = min(ends)
    return i + n


def _content_type(headers: Any) -> str:
    for key, value in headers:
        if key.lower() == b"content-type":
            return str(value.decode("latin-1").split(";")[0].strip().lower())
    return ""


def _without_length(headers: Any) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() != b"content-length"]


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


async def _send_json(send: Send, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
