"""`gateway/mcp_headers.py` copies a few names and the header value codec from the `mcp` SDK so
that the HTTP gateway starts without it: they must keep agreeing with the SDK's own."""

from __future__ import annotations

import pytest
from mcp.shared import inbound
from mcp_types import PROTOCOL_VERSION_META_KEY

from authgate.gateway import mcp_headers

VALUES = ["plain", "", " edge", "tab\tinside", "ünïcode", "=?base64?aGk=?=", "line\nbreak", "x" * 300]


def test_the_constants_are_the_sdks() -> None:
    assert mcp_headers.PROTOCOL_VERSION_META_KEY == PROTOCOL_VERSION_META_KEY
    assert mcp_headers.X_MCP_HEADER_KEY == inbound.X_MCP_HEADER_KEY
    assert dict(mcp_headers.NAME_BEARING_METHODS) == dict(inbound.NAME_BEARING_METHODS)


@pytest.mark.parametrize("value", VALUES)
def test_values_are_encoded_as_the_sdk_encodes_them(value: str) -> None:
    assert mcp_headers.encode_header_value(value) == inbound.encode_header_value(value)


@pytest.mark.parametrize(
    "header", [*VALUES, "=?base64?not base64?=", "=?base64?aGl=?=", "=?base64?/w==?=", "=?base64??=", None]
)
def test_values_are_decoded_as_the_sdk_decodes_them(header: str | None) -> None:
    assert mcp_headers.decode_header_value(header) == inbound.decode_header_value(header)
