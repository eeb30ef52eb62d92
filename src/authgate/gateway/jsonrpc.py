"""Reading a POST body as JSON-RPC 2.0: one message, or (MCP 2025-03-26 only) a batch.

The gateway reads the body to check the mirrored headers, to know the request id for its
own errors, and to learn tool schemas; it forwards the bytes it received, untouched, unless
a batch held malformed elements (those are answered here, JSON-RPC 2.0 §6, and the rest is
forwarded re-serialized).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from authgate.gateway.errors import InvalidJsonRpcRequest, JsonRpcId, ParseError, error_object

__all__ = [
    "LISTEN",
    "REPLAYABLE_METHODS",
    "Body",
    "Message",
    "cancelled_notification",
    "listen_closed",
    "parse_body",
    "readable_id",
]

LISTEN = "subscriptions/listen"  # MCP 2026-07-28: its answer is a stream that stays open
# Requests that change nothing a second copy could change again: sent twice (once on a kept-alive
# connection the upstream closed as it was reused, once on a fresh one) they cost the upstream a
# second answer and nothing else. `initialize` makes a session, but one nobody holds is reaped
# like any abandoned one. Never tools/call, whose tool may act in the world.
REPLAYABLE_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/list",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "completion/complete",
    }
)
SUBSCRIPTION_ID_META_KEY = "io.modelcontextprotocol/subscriptionId"


@dataclass(frozen=True, slots=True)
class Message:
    """One well-formed JSON-RPC message (request, notification or response)."""

    obj: dict[str, Any]

    @property
    def method(self) -> str | None:
        method = self.obj.get("method")
        return method if isinstance(method, str) else None

    @property
    def id(self) -> JsonRpcId:
        return readable_id(self.obj)

    @property
    def is_request(self) -> bool:
        return self.method is not None and "id" in self.obj

    @property
    def params(self) -> dict[str, Any]:
        params = self.obj.get("params")
        return params if isinstance(params, dict) else {}


@dataclass(frozen=True, slots=True)
class Body:
    """A parsed POST body. `rejected` holds the error responses owed for malformed batch
    elements; `messages` what goes upstream."""

    raw: bytes
    messages: tuple[Message, ...]
    is_batch: bool = False
    rejected: tuple[dict[str, Any], ...] = ()

    @property
    def single(self) -> Message | None:
        return None if self.is_batch else self.messages[0]

    @property
    def replayable(self) -> bool:
        """Every message a request safe to send twice (REPLAYABLE_METHODS)."""
        return all(m.is_request and m.method in REPLAYABLE_METHODS for m in self.messages)

    def upstream_bytes(self) -> bytes:
        if not self.rejected:
            return self.raw  # byte for byte
        return json.dumps([m.obj for m in self.messages], separators=(",", ":")).encode()


def cancelled_notification(request_id: JsonRpcId, reason: str) -> dict[str, Any]:
    """The request's answer is no longer wanted (MCP basic/utilities/cancellation)."""
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": reason},
    }


def listen_closed(listen_id: JsonRpcId) -> dict[str, Any]:
    """The graceful end of a listen stream, whose client listens again (MCP 2026-07-28
    subscriptions: SubscriptionsListenResult)."""
    result = {"resultType": "complete", "_meta": {SUBSCRIPTION_ID_META_KEY: listen_id}}
    return {"jsonrpc": "2.0", "id": listen_id, "result": result}


def readable_id(obj: Any) -> JsonRpcId:
    """The `id` to echo in an error, or None when it cannot be read (JSON-RPC 2.0 §5)."""
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            return value
    return None


def _problem(obj: Any) -> str | None:
    """Why `obj` is not a JSON-RPC 2.0 message, or None when it is one."""
    if not isinstance(obj, dict):
        return "a JSON-RPC message must be an object"
    if obj.get("jsonrpc") != "2.0":
        return 'the "jsonrpc" member must be "2.0"'
    if "id" in obj and obj["id"] is not None and readable_id(obj) is None:
        return 'the "id" member must be a string or an integer'
    if "method" in obj:
        if not isinstance(obj["method"], str):
            return 'the "method" member must be a string'
        if "params" in obj and not isinstance(obj["params"], dict | list):
            return 'the "params" member must be an object or an array'
        return None
    if "id" not in obj or ("result" in obj) == ("error" in obj):
        return (
            'a message needs a "method" (request, notification) or an "id" with exactly one of "result" '
            'and "error" (response)'
        )
    return None


_UNPARSED: Any = object()


def parse_body(raw: bytes, decoded: Any = _UNPARSED) -> Body:
    """Parse a POST body (or take `decoded`, what json.loads already made of `raw`); raises
    ParseError / InvalidJsonRpcRequest for a body nothing can be done with."""
    if decoded is _UNPARSED:
        try:
            decoded = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"Parse error: the request body is not JSON ({exc})") from None
        except RecursionError:
            raise ParseError("Parse error: the request body is nested too deeply") from None
    if isinstance(decoded, list):
        return _parse_batch(raw, decoded)
    if (problem := _problem(decoded)) is not None:
        raise InvalidJsonRpcRequest(f"Invalid Request: {problem}", request_id=readable_id(decoded))
    return Body(raw, (Message(decoded),))


def _parse_batch(raw: bytes, elements: list[Any]) -> Body:
    # JSON-RPC 2.0 §6: an empty array is one Invalid Request; each malformed element gets its own.
    if not elements:
        raise InvalidJsonRpcRequest("Invalid Request: an empty batch")
    messages: list[Message] = []
    rejected: list[dict[str, Any]] = []
    for element in elements:
        if (problem := _problem(element)) is None:
            messages.append(Message(element))
        else:
            rejected.append(error_object(-32600, f"Invalid Request: {problem}", readable_id(element)))
    return Body(raw, tuple(messages), is_batch=True, rejected=tuple(rejected))
