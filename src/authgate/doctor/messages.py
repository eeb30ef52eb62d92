"""The MCP messages and headers each client sends, byte for byte where it matters.

Captured from the `mcp` 2.3.0 client against authgate: a legacy client POSTs `initialize`
with only `Accept` and `Content-Type`, then `MCP-Protocol-Version` (+ `Mcp-Session-Id`) on
every later request; a 2026-07-28 client sends `MCP-Protocol-Version` and `Mcp-Method` on
every POST and repeats version, client info and capabilities in `params._meta`.
"""

from __future__ import annotations

import itertools
from typing import Any

from authgate._version import __version__
from authgate.doctor.profiles import ClientProfile
from authgate.doctor.wire import ACCEPT_MCP

MODERN_VERSION = "2026-07-28"
_META = "io.modelcontextprotocol/"
_ids = itertools.count(1)


def client_info(profile: ClientProfile) -> dict[str, str]:
    return {"name": f"authgate-doctor ({profile.name})", "version": __version__}


def initialize(profile: ClientProfile) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "initialize",
        "params": {"protocolVersion": profile.legacy_version, "capabilities": {}, "clientInfo": client_info(profile)},
    }


def initialized() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/initialized"}


def legacy_request(method: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": {}}


def modern_request(profile: ClientProfile, method: str) -> dict[str, Any]:
    meta = {
        f"{_META}protocolVersion": MODERN_VERSION,
        f"{_META}clientInfo": client_info(profile),
        f"{_META}clientCapabilities": {},
    }
    return {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": {"_meta": meta}}


def first_message(profile: ClientProfile) -> dict[str, Any]:
    """What the client sends first, before it holds a token."""
    return modern_request(profile, "server/discover") if profile.modern else initialize(profile)


def headers(
    profile: ClientProfile,
    message: dict[str, Any],
    *,
    token: str | None = None,
    version: str | None = None,
    session_id: str | None = None,
) -> dict[str, str]:
    """The HTTP headers of one POST to the MCP endpoint."""
    out = {"Accept": ACCEPT_MCP, "Content-Type": "application/json"}
    if profile.browser_origin:
        out["Origin"] = profile.browser_origin
    method = str(message.get("method", ""))
    modern = isinstance(message.get("params"), dict) and "_meta" in message["params"]
    if modern:
        out["MCP-Protocol-Version"] = MODERN_VERSION
        out["Mcp-Method"] = method
    elif version and method != "initialize":
        out["MCP-Protocol-Version"] = version
    if session_id:
        out["Mcp-Session-Id"] = session_id
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out
