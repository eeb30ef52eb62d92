"""The MCP 2026-07-28 header vocabulary the HTTP gateway needs on every request, without
importing the `mcp` SDK: `authgate serve --upstream` starts without the SDK and its types
(35 MB and 0.6 s of imports; docs/benchmarks.md).

What is here is the SDK's own (`mcp.shared.inbound`, `mcp_types`), copied because it is small
and a constant or two: the header value codec (`=?base64?…?=`, transports "Value Encoding"),
the methods whose target `Mcp-Name` mirrors, the `_meta` key of the protocol version and the
schema annotation of `Mcp-Param-*` headers. tests/gateway/test_mcp_headers.py checks that they
still agree with the SDK's. The schema rules of `Mcp-Param-*` are longer, and needed only once
an upstream lists a tool that carries `x-mcp-header` annotations: for those the SDK's own
functions are imported then, on first use.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.shared.inbound import InboundLadderRejection

__all__ = [
    "NAME_BEARING_METHODS",
    "PROTOCOL_VERSION_META_KEY",
    "X_MCP_HEADER_KEY",
    "decode_header_value",
    "encode_header_value",
    "find_invalid_x_mcp_header",
    "validate_mcp_param_headers",
]

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"  # a request's _meta
X_MCP_HEADER_KEY = "x-mcp-header"  # the inputSchema annotation naming an Mcp-Param-* header
NAME_BEARING_METHODS: Mapping[str, str] = MappingProxyType(
    {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
)  # method → the params member `Mcp-Name` mirrors

_B64_SENTINEL = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")
_HEADER_SAFE = re.compile(r"^[\x20-\x7E]*$")


def encode_header_value(value: str) -> str:
    """`value` verbatim when it survives an HTTP field as is (printable ASCII, no edge
    whitespace, not itself sentinel-shaped); otherwise its UTF-8 in `=?base64?…?=`."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _B64_SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def decode_header_value(value: str | None) -> str | None:
    """The inverse of `encode_header_value`; None for a malformed sentinel (bad or
    non-canonical base64, bad UTF-8), so a corrupt header never matches a body value."""
    if value is None:
        return None
    match = _B64_SENTINEL.fullmatch(value)
    if match is None:
        return value
    payload = match.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
    except binascii.Error:
        return None
    if base64.b64encode(decoded).decode("ascii") != payload:  # non-canonical: never what an encoder sends
        return None
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None


def find_invalid_x_mcp_header(input_schema: Any) -> str | None:
    """The SDK's check of a tool's `x-mcp-header` annotations (imports the SDK on first use)."""
    from mcp.shared.inbound import find_invalid_x_mcp_header as check

    return check(input_schema)


def validate_mcp_param_headers(
    input_schema: Any, arguments: Mapping[str, Any], headers: Mapping[str, str]
) -> InboundLadderRejection | None:
    """The SDK's `Mcp-Param-*` check against a tool's annotated schema (imports the SDK on
    first use: only tools whose schema carries annotations get here)."""
    from mcp.shared.inbound import validate_mcp_param_headers as validate

    return validate(input_schema, arguments, headers)
