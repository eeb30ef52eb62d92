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


class Body:
    """A POST's JSON-RPC body: its messages (a batch's elements), whether it is a batch, the
    whole body as json.loads gives it (`decoded`), and every message that names a method
    (requests and notifications) with its operation (`requests`), computed once. A plain
    class with slots, read-only by convention: a frozen dataclass cost ~3 µs a request to build."""

    __slots__ = ("decoded", "is_batch", "messages", "requests")

    def __init__(self, messages: tuple[dict[str, Any], ...], is_batch: bool, decoded: Any = None) -> None:
        self.messages = messages
        self.is_batch = is_batch
        self.decoded = decoded
        named = []
        for m in messages:
            op = operation_of(m)
            if op is not None:
                named.append((m, op))
        self.requests: tuple[tuple[dict[str, Any], Operation], ...] = tuple(named)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Body) and (self.messages, self.is_batch) == (other.messages, other.is_batch)

    __hash__ = None  # type: ignore[assignment]  # compared by value, as the dataclass was


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


def _members(value: Any) -> int:
    """How many members the objects in `value` (as json.loads gives it: only dict and list
    containers) have in all, without recursion."""
    count, stack = 0, [value]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            count += len(node)
            node = node.values()
        for child in node:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append(child)
    return count


def _decoded(raw: bytes) -> Any:
    """The body as JSON, refusing a member given twice. Most bodies take the fast way: the
    C parser without a hook, then a count. Every member of an object in the text has exactly
    one `:` outside strings, so when the text has no more colons than the parsed objects have
    members, no member was dropped as a duplicate; a body with a colon inside a string (a URI)
    or an object given a member twice is parsed again with the checking hook, which names it
    (and so does a body nested too deeply, so that a duplicate is named first, as before)."""
    try:
        decoded = json_depth.loads(raw)
    except json_depth.TooDeep:  # which of the two errors a body has, the checking parse says
        return json_depth.loads(raw, decoder=_DECODER)
    if isinstance(decoded, dict | list) and raw.count(b":") > _members(decoded):
        return json_depth.loads(raw, decoder=_DECODER)
    return decoded


def parse_body(raw: bytes) -> Body | None:
    """The body's messages, or None when it is not JSON-RPC at all (the app answers that).
    Raises AmbiguousBody for duplicated members, json_depth.TooDeep for nesting past
    json_depth.MAX_DEPTH (never passed on: a deeper parser upstream could read what we did not)."""
    try:
        decoded = _decoded(raw)
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


MAX_OPERATIONS = 4096  # operations remembered by (method, target); beyond, forgotten and made anew
MAX_REMEMBERED_CHARS = 256  # a longer method or target is not remembered (bounds the memory held)
_operations: dict[tuple[str, Any], Operation] = {}


def operation_of(message: dict[str, Any]) -> Operation | None:
    method = message.get("method")
    if type(method) is not str:
        return None  # a response to the server's own request: nothing to authorize
    params = message.get("params")
    if type(params) is not dict:
        params = {}
    if method in _BY_NAME:
        target = params.get("name")
    elif method in _BY_URI:
        target = params.get("uri")
    elif method == "completion/complete":
        ref = params.get("ref")
        ref = ref if isinstance(ref, dict) else {}
        if ref.get("type") == "ref/prompt":
            return Operation(method, "prompt", _string(ref.get("name")))
        if ref.get("type") == "ref/resource":
            return Operation(method, "resource", _string(ref.get("uri")))
        target = None
    else:
        target = None
    # the same few operations come again and again: one value each (immutable), not one a call
    key = (method, target if type(target) is str else None)
    op = _operations.get(key)
    if op is None:
        op = _operation(*key)
        if len(method) > MAX_REMEMBERED_CHARS or (key[1] is not None and len(key[1]) > MAX_REMEMBERED_CHARS):
            return op
        if len(_operations) >= MAX_OPERATIONS:
            _operations.clear()
        _operations[key] = op
    return op


def _operation(method: str, target: str | None) -> Operation:
    if method in _BY_NAME:
        return Operation(method, "tool" if method == "tools/call" else "prompt", target)
    if method in _BY_URI:
        return Operation(method, "resource", target)
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


def mirror_headers(scope: Scope) -> tuple[str | None, str | None]:
    """`Mcp-Method` and `Mcp-Name` (the first of each), in one pass over the headers."""
    method_header = name_header = None
    for key, value in scope.get("headers", ()):
        if key == b"mcp-method" and method_header is None:
            method_header = value.decode("latin-1")
        elif key == b"mcp-name" and name_header is None:
            name_header = value.decode("latin-1")
    return method_header, name_header


def header_mismatch(scope: Scope, body: Body, mirrored: tuple[str | None, str | None] | None = None) -> str | None:
    """Why the mirror headers disagree with the body, or None (MCP 2026-07-28: -32020).
    `mirrored`: the two headers as the caller already read them (else read from `scope`)."""
    method_header, name_header = mirror_headers(scope) if mirrored is None else mirrored
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
