"""MCP 2026-07-28 request metadata: `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and
`Mcp-Param-*` must agree with the JSON-RPC body (transports, "Server Validation"; else 400
with -32020 HeaderMismatch), checked before anything is forwarded.

Why a gateway checks at all: these headers exist so intermediaries can route and apply
policy on them, so one that disagrees with the body is an attack on whoever trusts the
header. The rules, per message:

* any mirrored header that is present must match the body, whatever the protocol revision;
* a *modern* request (its `_meta` carries a protocol version, or `MCP-Protocol-Version` is
  2026-07-28 or later) must also carry the required ones (`MCP-Protocol-Version`,
  `Mcp-Method`, and `Mcp-Name` for tools/call, prompts/get, resources/read) and the
  `Mcp-Param-*` headers its tool's schema asks for (when the gateway has seen the schema);
* a batch (2025-03-26) names no single method: `Mcp-Method`/`Mcp-Name` on one are refused.

Header values are compared case-sensitively; `=?base64?…?=` values are decoded first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from authgate.gateway.errors import HeaderMismatch
from authgate.gateway.jsonrpc import Body, Message
from authgate.gateway.mcp_headers import (
    NAME_BEARING_METHODS,
    PROTOCOL_VERSION_META_KEY,
    decode_header_value,
    validate_mcp_param_headers,
)
from authgate.gateway.tool_schemas import ToolSchemas

__all__ = ["MirroredHeaders", "check_param_headers", "check_request_metadata", "is_modern", "param_headers"]

MODERN_SINCE = "2026-07-28"  # the first revision with per-request metadata headers
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ROUTING = ("mcp-protocol-version", "mcp-method", "mcp-name")
_PARAM_PREFIX = "mcp-param-"


@dataclass(slots=True)
class MirroredHeaders:
    """The request's `MCP-*` headers by lowercase name, and the names sent more than once."""

    values: dict[str, str] = field(default_factory=dict)
    duplicated: list[str] = field(default_factory=list)

    @classmethod
    def from_scope(cls, headers: Iterable[tuple[bytes, bytes]]) -> MirroredHeaders:
        found = cls()
        for raw_name, raw_value in headers:
            if raw_name[:4] != b"mcp-":  # ASGI header names are lowercase
                continue
            name = raw_name.decode("latin-1")
            if name in found.values:
                found.duplicated.append(name)
            found.values[name] = raw_value.decode("latin-1")
        return found

    def params(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k.startswith(_PARAM_PREFIX)}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _mismatch(message: Message | None, text: str) -> HeaderMismatch:
    return HeaderMismatch(f"Header mismatch: {text}", request_id=message.id if message else None)


def is_modern(message: Message, version_header: str | None) -> bool:
    """A 2026-07-28 (or later) request, by its `_meta` or its `MCP-Protocol-Version` header."""
    return _is_modern(message, version_header)


def _is_modern(message: Message, version_header: str | None) -> bool:
    if not message.is_request:
        return False  # 2026-07-28 defines no header rules for notification POSTs
    meta = message.params.get("_meta")
    if isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta:
        return True
    return version_header is not None and _DATE.fullmatch(version_header) is not None and version_header >= MODERN_SINCE


def check_request_metadata(body: Body, headers: MirroredHeaders, schemas: ToolSchemas) -> None:
    """Raise HeaderMismatch when the mirrored headers and the body disagree."""
    message = body.single
    if duplicated := [n for n in headers.duplicated if n in _ROUTING or n.startswith(_PARAM_PREFIX)]:
        raise _mismatch(message, f"the {duplicated[0]} header appears more than once")
    if message is None:
        if any(n in headers.values for n in ("mcp-method", "mcp-name")):
            raise _mismatch(None, "Mcp-Method / Mcp-Name name one message but the body is a batch")
        return
    modern = _is_modern(message, headers.values.get("mcp-protocol-version"))
    _check_version(message, headers, modern)
    _check_method_and_name(message, headers, modern)
    if message.method == "tools/call":
        _check_params(message, headers, schemas, modern)


def _check_version(message: Message, headers: MirroredHeaders, modern: bool) -> None:
    header = headers.values.get("mcp-protocol-version")
    meta = message.params.get("_meta")
    body_version = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
    if header is None:
        if modern:
            raise _mismatch(message, "the MCP-Protocol-Version header is missing")
    elif body_version is not None and header != body_version:
        raise _mismatch(
            message,
            f"MCP-Protocol-Version header value {_shown(header)} does not match "
            f"the body's _meta protocol version {_shown(body_version)}",
        )


def _check_method_and_name(message: Message, headers: MirroredHeaders, modern: bool) -> None:
    method = headers.values.get("mcp-method")
    if method is None:
        if modern:
            raise _mismatch(message, "the Mcp-Method header is missing")
    elif method != message.method:
        raise _mismatch(
            message, f"Mcp-Method header value {_shown(method)} does not match body value {_shown(message.method)}"
        )
    key = NAME_BEARING_METHODS.get(message.method or "")
    name = headers.values.get("mcp-name")
    if key is None or (name is None and not modern):
        return
    body_value = message.params.get(key)
    if name is None:
        if body_value is not None:
            raise _mismatch(message, "the Mcp-Name header is missing")
        return
    decoded = decode_header_value(name)
    if decoded is None:
        raise _mismatch(message, "the Mcp-Name header carries a malformed =?base64?…?= value")
    if decoded != body_value:
        raise _mismatch(
            message, f"Mcp-Name header value {_shown(decoded)} does not match body value {_shown(body_value)}"
        )


def _check_params(message: Message, headers: MirroredHeaders, schemas: ToolSchemas, modern: bool) -> None:
    present = param_headers(message, headers)
    if modern:  # otherwise an unknown annotation is forwarded and ignored (transports: Server Behavior)
        check_param_headers(schemas, message, present)


def param_headers(message: Message, headers: MirroredHeaders) -> dict[str, str]:
    """A `tools/call`'s `Mcp-Param-*` headers (lowercase names), checked for what needs no
    schema: one sent twice (first-copy and last-copy readers would disagree) or a malformed
    `=?base64?…?=` value (it never matches) is a mismatch."""
    if duplicated := [n for n in headers.duplicated if n.startswith(_PARAM_PREFIX)]:
        raise _mismatch(message, f"the {duplicated[0]} header appears more than once")
    present = headers.params()
    for name, value in present.items():
        if decode_header_value(value) is None:
            raise _mismatch(message, f"the {name} header carries a malformed =?base64?…?= value")
    return present


def check_param_headers(schemas: ToolSchemas, message: Message, present: dict[str, str]) -> None:
    """Raise HeaderMismatch unless the headers mirror the body's arguments as the tool's schema
    asks: present and equal (after decoding) exactly when the argument is present."""
    tool = message.params.get("name")
    schema = schemas.get(tool) if isinstance(tool, str) else None
    if schema is None:
        return  # no x-mcp-header in the tool's schema, or a tool not listed yet
    arguments = message.params.get("arguments")
    rejection = validate_mcp_param_headers(schema, arguments if isinstance(arguments, dict) else {}, present)
    if rejection is not None:
        raise _mismatch(message, rejection.message)
