"""The 2026-07-28 envelope around a 2025-11-25 stdio child: what comes off a stateless request
before the child sees it, and what goes onto its answers (MCP 2026-07-28 basic §Per-request
protocol fields; `resultType`, cache hints on list results, the `serverInfo` stamp).
"""

from __future__ import annotations

from typing import Any

from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    LOG_LEVEL_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
)

from authgate.gateway.stdio.child import Exchange, StdioChild

__all__ = ["LEVELS", "complete", "status_of", "strip_envelope", "wanted"]

ENVELOPE = (PROTOCOL_VERSION_META_KEY, CLIENT_INFO_META_KEY, CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY)
# MCP 2026-07-28 (SEP-2549): results that carry ttlMs/cacheScope (server/discover is answered apart)
CACHEABLE = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read"})
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")


def strip_envelope(request: dict[str, Any]) -> dict[str, Any]:
    """The request as a 2025-11-25 child expects it: no 2026-07-28 envelope keys in `_meta`."""
    params = request.get("params")
    if not isinstance(params, dict) or not isinstance(params.get("_meta"), dict):
        return request
    meta = {k: v for k, v in params["_meta"].items() if k not in ENVELOPE}
    new_params = {k: v for k, v in params.items() if k != "_meta"}
    if meta:
        new_params["_meta"] = meta
    return {**request, "params": new_params}


def complete(response: dict[str, Any], method: str, child: StdioChild) -> dict[str, Any]:
    """A 2025-era result made a 2026-07-28 one: `resultType`, cache hints on lists, serverInfo stamp."""
    result = response.get("result")
    if not isinstance(result, dict):
        return response
    result = {"resultType": "complete", **result}
    if method in CACHEABLE:
        result = {"ttlMs": 0, "cacheScope": "private", **result}
    meta = result.get("_meta") if isinstance(result.get("_meta"), dict) else {}
    assert isinstance(meta, dict)
    result["_meta"] = {SERVER_INFO_META_KEY: (child.init_result or {}).get("serverInfo"), **meta}
    return {**response, "result": result}


def status_of(response: dict[str, Any]) -> int:
    error = response.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return ERROR_CODE_HTTP_STATUS.get(code, 200) if isinstance(code, int) else 200


def wanted(note: dict[str, Any], ex: Exchange) -> bool:
    """Progress always; log messages only at or above the request's `_meta` logLevel opt-in."""
    if note.get("method") == "notifications/progress":
        return True
    if note.get("method") != "notifications/message" or ex.log_level is None:
        return False
    level = (note.get("params") or {}).get("level")
    return level in LEVELS and LEVELS.index(level) >= LEVELS.index(ex.log_level)
