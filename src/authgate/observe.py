"""Request-scoped log fields: what any layer may add to the request's one log line.

`server/logs.py`'s `RequestLog` puts a dict in the ASGI scope under `REQUEST_KEY` and logs it
once the response is sent; the guard notes the subject and client, the policy layer the MCP
method and tool. A module of its own, importing nothing, so the core and every adapter can
note a field without importing the server.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

REQUEST_KEY = "authgate.request"  # the ASGI scope entry inner layers add fields to


def note(scope: MutableMapping[str, Any], **fields: Any) -> None:
    """Add fields to this request's log line (no-op outside a RequestLog)."""
    record = scope.get(REQUEST_KEY)
    if isinstance(record, dict):
        record.update({k: v for k, v in fields.items() if v is not None})
