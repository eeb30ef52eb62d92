"""Who is calling: what the guard hands to the protected MCP app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCOPE_KEY = "authgate.identity"  # where the guard puts the Identity in the ASGI scope


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    client_id: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    expires_at: int
    username: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


def current_identity(request_or_scope: Any) -> Identity | None:
    """The Identity of a Starlette Request, an ASGI scope, or an `mcp` SDK tool Context."""
    obj = request_or_scope
    ctx = getattr(obj, "request_context", None)  # mcp SDK Context
    if ctx is not None:
        obj = getattr(ctx, "request", None)
    scope = getattr(obj, "scope", obj)
    if isinstance(scope, dict):
        ident = scope.get(SCOPE_KEY)
        return ident if isinstance(ident, Identity) else None
    return None
