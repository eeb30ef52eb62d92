"""Who is calling: what the guard hands to the protected MCP app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCOPE_KEY = "authgate.identity"  # where the guard puts the Identity in the ASGI scope
# proxy mode: where authgate puts the caller's upstream IdP token source (idp/proxy/upstream_access.py)
UPSTREAM_ACCESS_KEY = "authgate.upstream_access"
# where authgate puts its ConnectionBroker (authgate.connections): third-party tokens per user
CONNECTION_BROKER_KEY = "authgate.connection_broker"
# where server/elicitations.py hands the HTTP gateway the caller's provider tokens (connection_tools)
CONNECTION_HEADERS_KEY = "authgate.connection_headers"
# where whoever raises the connection signal leaves the ConnectionRequired (its link) by provider,
# for server/elicitations.py to answer with (authgate.connection_token, gateway/http/upstream_oauth.py)
CONNECTION_PENDING_KEY = "authgate.connection_pending"

# What authgate's stdio gateway tells each server process it starts (a stdio server sees no
# HTTP request): GATEWAY_ENV always ("stdio": started for an authenticated caller), the
# caller's subject, client and user name only with identity_headers (docs/gateway-stdio.md).
# A process serves one caller (gateway/stdio/pool.py), so its environment names that caller.
GATEWAY_ENV = "AUTHGATE_GATEWAY"
CALLER_SUBJECT_ENV = "AUTHGATE_CALLER_SUBJECT"
CALLER_CLIENT_ID_ENV = "AUTHGATE_CALLER_CLIENT_ID"
CALLER_USERNAME_ENV = "AUTHGATE_CALLER_USERNAME"


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    client_id: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    expires_at: int
    username: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    jkt: str | None = None  # RFC 9449 §6.1 cnf.jkt: usable only with a DPoP proof by that key (guard/dpop.py)


def current_identity(request_or_scope: Any) -> Identity | None:
    """The Identity of a Starlette Request, an ASGI scope, or an `mcp` SDK tool Context."""
    scope = request_scope(request_or_scope)
    ident = scope.get(SCOPE_KEY) if scope is not None else None
    return ident if isinstance(ident, Identity) else None


def request_scope(request_or_scope: Any) -> dict[str, Any] | None:
    """The ASGI scope of a Starlette Request, an `mcp` SDK tool Context, or the scope itself."""
    obj = request_or_scope
    ctx = getattr(obj, "request_context", None)  # mcp SDK Context
    if ctx is not None:
        obj = getattr(ctx, "request", None)
    scope = getattr(obj, "scope", obj)
    return scope if isinstance(scope, dict) else None


def caller_environment(subject: str, client_id: str, username: str | None) -> dict[str, str]:
    """The variables naming the caller in a stdio server process it is the only caller of."""
    env = {CALLER_SUBJECT_ENV: subject, CALLER_CLIENT_ID_ENV: client_id}
    if username:
        env[CALLER_USERNAME_ENV] = username
    return env
