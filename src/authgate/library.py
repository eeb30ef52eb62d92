"""Library mode: protect an in-process ASGI MCP app with the whole authorization server
and guard, in one call.

    from mcp.server.mcpserver import MCPServer
    import authgate

    mcp = MCPServer("notes")
    app = authgate.protect(mcp.streamable_http_app(), public_url="https://notes.example.com")
    # run with: uvicorn module:app --no-proxy-headers (authgate applies trusted_proxies itself)
    #   --http authgate.server.http_protocol:BoundedHttpToolsProtocol (head size and time, connections)

The wrapped app must serve MCP at `/mcp` (the SDK's default path). Its lifespan (the SDK's
session manager) runs inside authgate's. Tools read the caller with
`authgate.current_identity(ctx)`, or the SDK's own `get_access_token()` / `request.user`; in
proxy mode, `await authgate.upstream_token(ctx)` is the caller's own access token at the
upstream IdP, for its API (docs/idp/proxy.md#the-users-upstream-token); with
`connection_providers`, `await authgate.connection_token(ctx, "github")` is the caller's own
token at that provider, or the client is asked to connect (docs/connections.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from starlette.types import ASGIApp

from authgate.config.settings import Settings, load_settings
from authgate.errors import ConfigError, ConnectionRequired, NoUpstreamToken
from authgate.guard.identity import (
    CONNECTION_BROKER_KEY,
    CONNECTION_PENDING_KEY,
    UPSTREAM_ACCESS_KEY,
    current_identity,
    request_scope,
)
from authgate.server.app import AuthgateApp, build_app


def protect(
    app: ASGIApp, settings: Settings | None = None, *, config_file: Path | None = None, **overrides: Any
) -> AuthgateApp:
    """Wrap `app` (an ASGI MCP app serving `/mcp`) with authgate. Settings come from
    `settings`, or from `config_file`, AUTHGATE_* env vars and keyword overrides."""
    if settings is None:
        settings = load_settings(config_file, **overrides)
    return build_app(settings, app)


async def upstream_token(ctx: Any) -> str:
    """Proxy mode: the calling person's access token at the upstream IdP (GitHub, Google, Entra,
    any OIDC), renewed at the IdP first when it is about to expire — one renewal per person at a
    time, across replicas. `ctx`: the `mcp` SDK tool Context, a Starlette Request or the ASGI
    scope. Raises `NoUpstreamToken` (none: not proxy mode, a machine client, expired without a
    refresh token), `UpstreamGrantEnded` (the IdP ended the grant; the caller's authgate grant
    is revoked too) or `UpstreamTokenUnavailable` (the IdP cannot renew it now: `retry_after`).
    Never the token the MCP client presented: that one is for authgate alone."""
    scope = request_scope(ctx)
    identity = current_identity(ctx)
    if scope is None or identity is None:
        raise NoUpstreamToken("no authenticated caller here: call upstream_token(ctx) inside a tool or request")
    access = scope.get(UPSTREAM_ACCESS_KEY)
    if access is None:
        raise NoUpstreamToken('authgate holds upstream IdP tokens only in proxy mode (auth_mode = "proxy")')
    token: str = await access.token(identity)
    return token


async def connection_token(ctx: Any, provider: str, *, scopes: Sequence[str] = ()) -> str:
    """The calling person's access token at `provider` (one of `connection_providers`), with at
    least `scopes` besides the provider's own, refreshed when near expiry. Never the token the
    MCP client presented. `ctx`: the `mcp` SDK tool Context, a Starlette Request or the scope.

    Not connected yet (or without those scopes): raises the `mcp` SDK's `MCPError` carrying
    authgate's signal (-32012, docs/connections.md) — let it propagate: authgate, in front of
    the app, turns the answer into a URL elicitation of the client's revision (or a tool error
    with the connect link), and the client's retry finds the connection made."""
    scope = request_scope(ctx)
    identity = current_identity(ctx)
    if scope is None or identity is None:
        raise ConfigError(
            "connection_providers", "no authenticated caller here", "call connection_token(ctx) in a tool"
        )
    broker = scope.get(CONNECTION_BROKER_KEY)
    if broker is None:
        raise ConfigError(
            "connection_providers", "no connection provider is configured", "declare it (docs/connections.md)"
        )
    if identity.username is None:  # a machine client: no person to connect (authgate answers so)
        _raise_signal(scope, None, provider, tuple(scopes))
    try:
        token: str = await broker.require(identity.subject, identity.client_id, provider, tuple(scopes))
    except ConnectionRequired as required:
        _raise_signal(scope, required, provider, tuple(scopes))
    return token


def _raise_signal(
    scope: dict[str, Any], required: ConnectionRequired | None, provider: str, scopes: tuple[str, ...]
) -> NoReturn:
    """Raise the signal as the SDK's MCPError, which its tools re-raise as a JSON-RPC error
    (an other exception would become an isError result authgate could not tell apart)."""
    from mcp.shared.exceptions import MCPError

    from authgate.connections.elicitation import signal_error

    pending = scope.get(CONNECTION_PENDING_KEY)
    if isinstance(pending, dict) and required is not None:  # the link just made: the layer answers with it
        pending[provider] = required
    error = signal_error(provider, scopes)
    raise MCPError(error["code"], error["message"], error["data"]) from None
