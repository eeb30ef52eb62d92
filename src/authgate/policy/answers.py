"""How a refused operation is answered: the one place the policy layer writes a response.

403 challenge  MCP 2025-11-25 authorization, scope challenge: HTTP 403 with
               `WWW-Authenticate: Bearer error="insufficient_scope", scope="…",
               resource_metadata="…"`; clients step up and retry. The default (401 without
               a token).
tool error     OpenAI Apps SDK tool-level sign-in: HTTP 200, a `tools/call` result with
               `isError: true` and `_meta["mcp/www_authenticate"]` = [the challenge]; only for
               a single `tools/call` from a client named in `tool_error_clients`.
400 / 413      the request itself is unusable (mirror headers disagree, ambiguous JSON, no
               tool named, too large): a JSON-RPC error, as the gateway answers them.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Send

from authgate.gateway.errors import JsonRpcId
from authgate.guard.challenge import bearer_challenge

WWW_AUTHENTICATE_META_KEY = "mcp/www_authenticate"


async def _send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _header_safe(text: str, limit: int = 300) -> str:
    """RFC 6750 §3: error_description is printable ASCII without `"` or `\\`. Names in it come
    from the request body, so anything else (a CR/LF above all) is replaced."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text[:limit])


def challenge(
    resource_metadata: str, scopes: list[str], description: str, error: str | None = "insufficient_scope"
) -> str:
    # scope-tokens are NQCHAR (RFC 6749 §3.3): one from an external IdP that is not is left out
    safe = [s for s in scopes if s and all("!" <= c <= "~" and c not in '"\\' for c in s)]
    return bearer_challenge(
        resource_metadata=resource_metadata, scopes=safe, error=error, description=_header_safe(description)
    )


async def send_challenge(send: Send, value: str, description: str, *, signed_in: bool) -> None:
    """403 `insufficient_scope`, or — for a caller without a token — 401 (RFC 6750 §3.1)."""
    body = {"error": "insufficient_scope" if signed_in else "unauthorized", "error_description": description}
    await _send_json(send, 403 if signed_in else 401, body, [(b"www-authenticate", value.encode())])


async def send_tool_error(send: Send, request_id: JsonRpcId, value: str, text: str, *, stateless: bool) -> None:
    result: dict[str, Any] = {
        "content": [{"type": "text", "text": text}],
        "isError": True,
        "_meta": {WWW_AUTHENTICATE_META_KEY: [value]},
    }
    if stateless:
        result["resultType"] = "complete"  # required on every 2026-07-28 result
    await _send_json(send, 200, {"jsonrpc": "2.0", "id": request_id, "result": result}, [])


def refusal_text(needed: list[str], signed_in: bool) -> str:
    if not signed_in:
        return "Sign in to use this tool."
    return f"This tool needs the permission {' '.join(needed)}. Sign in again to grant it."
