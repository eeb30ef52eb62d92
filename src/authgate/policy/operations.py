"""Reading what a POST asks for, from the JSON-RPC body only.

The body decides; headers are only checked against it. A body whose meaning could differ
between two JSON parsers (a member given twice) is refused rather than guessed at, and the
MCP 2026-07-28 mirror headers `Mcp-Method` / `Mcp-Name` must agree with it (`Mcp-Name`
decoded from its `=?base64?…?=` form first).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from authgate import json_depth
from authgate.errors import AuthgateError
from authgate.policy.model import Operation

if TYPE_CHECKING:
    from starlette.types import Scope

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"  # MCP 2026-07-28 request _meta
CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"
STATELESS_VERSION = "2026-07-28"

_BY_NAME = {"tools/call": "tool", "prompts/get": "prompt"}
_BY_URI = ("resources/read", "resources/subscribe", "resources/unsubscribe")
_MIRRORED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}  # what Mcp-Name mirrors


class AmbiguousBody(AuthgateError, ValueError):
    """A JSON object gives one member twice: parsers disagree on which one counts. A ValueError
    too, like json.loads' own refusals of a body."""


@dataclass(frozen=True, slots=True)
class Body:
    messages: tuple[dict[str, Any], ...]  # the JSON objects of the body (a batch's elements)
    is_batch: bool
    decoded: Any = field(default=None, compare=False)  # the whole body as json.loads gives it
    # every message that names a method (requests and notifications) with its operation;
    # computed once, as every layer of the enforcer asks for it
    requests: tuple[tuple[dict[str, Any], Operation], ...] = field(init=False)

    def __post_init__(self) -> None:
        named = tuple((m, op) for m in self.messages if (op := operation_of(m)) is not None)
        object.__setattr__(self, "requests", named)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # the dict kept one of two: name the first member given twice
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise AmbiguousBody(f"the member {key!r} appears twice in one object")
            seen.add(key)
    return obj


# One decoder for every body (json.loads with a hook builds a new decoder per call).
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)


def parse_body(raw: bytes) -> Body | None:
    """The body's messages, or None when it is not JSON-RPC at all (the app answers that).
    Raises AmbiguousBody for duplicated members, json_depth.TooDeep for nesting past
    json_depth.MAX_DEPTH (never passed on: a deeper parser upstream could read what we did not)."""
    try:
        decoded = json_depth.loads(raw, decoder=_DECODER)
    except AmbiguousBody:
        raise
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(decoded, dict):
        return Body((decoded,), False, decoded)
    if isinstance(decoded, list):  # MCP 2025-03-26 batches: every element is judged
        return Body(tuple(e for e in decoded if isinstance(e, dict)), True, decoded)
    return None


def params_of(message: dict[str, Any]) -> dict[str, Any]:
    params = message.get("params")
    return params if isinstance(params, dict) else {}


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def operation_of(message: dict[str, Any]) -> Operation | None:
    method = message.get("method")
    if not isinstance(method, str):
        return None  # a response to the server's own request: nothing to authorize
    params = params_of(message)
    if method in _BY_NAME:
        return Operation(method, "tool" if method == "tools/call" else "prompt", _string(params.get("name")))
    if method in _BY_URI:
        return Operation(method, "resource", _string(params.get("uri")))
    if method == "completion/complete":
        ref = params.get("ref")
        ref = ref if isinstance(ref, dict) else {}
        if ref.get("type") == "ref/prompt":
            return Operation(method, "prompt", _string(ref.get("name")))
        if ref.get("type") == "ref/resource":
            return Operation(method, "resource", _string(ref.get("uri")))
    return Operation(method, "method")


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def decode_header_value(value: str) -> str | None:
    """MCP 2026-07-28 transports, value encoding: `=?base64?{standard Base64 of UTF-8}?=`;
    any other value is literal. None when the encoded form does not decode."""
    if value.startswith("=?base64?") and value.endswith("?=") and len(value) >= 11:
        try:
            return base64.b64decode(value[9:-2], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    return value


def header_mismatch(scope: Scope, body: Body) -> str | None:
    """Why the mirror headers disagree with the body, or None (MCP 2026-07-28: -32020)."""
    method_header = name_header = None
    for key, value in scope.get("headers", ()):  # one pass for both (the first of each)
        if key == b"mcp-method" and method_header is None:
            method_header = value.decode("latin-1")
        elif key == b"mcp-name" and name_header is None:
            name_header = value.decode("latin-1")
    if method_header is None and name_header is None:
        return None
    if body.is_batch or len(body.messages) != 1:
        return "Mcp-Method and Mcp-Name describe one message, not a batch"
    message = body.messages[0]
    method = message.get("method")
    if method_header is not None and method_header != method:
        return f"Mcp-Method {method_header!r} does not match the body's method {method!r}"
    if name_header is None:
        return None
    member = _MIRRORED.get(method) if isinstance(method, str) else None
    mirrored = params_of(message).get(member) if member else None
    if not isinstance(mirrored, str) or decode_header_value(name_header) != mirrored:
        return f"Mcp-Name does not match the body's {member or 'operation'}"
    return None


def protocol_version(scope: Scope, message: dict[str, Any]) -> str | None:
    meta = params_of(message).get("_meta")
    in_meta = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
    return _string(in_meta) or header(scope, b"mcp-protocol-version")


def is_stateless_era(scope: Scope, message: dict[str, Any]) -> bool:
    version = protocol_version(scope, message)
    return version is not None and version >= STATELESS_VERSION


def client_name(message: dict[str, Any]) -> str | None:
    """The MCP clientInfo name a message carries: in `initialize`, or in every request's
    `_meta` from 2026-07-28 on."""
    params = params_of(message)
    meta = params.get("_meta")
    info = meta.get(CLIENT_INFO_META_KEY) if isinstance(meta, dict) else None
    if not isinstance(info, dict) and message.get("method") == "initialize":
        info = params.get("clientInfo")
    return _string(info.get("name")) if isinstance(info, dict) else None
