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
upstream IdP, for its API (docs/idp/proxy.md#the-users-upstream-token).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from authgate.config.settings import Settings, load_settings
from authgate.errors import NoUpstreamToken
from authgate.guard.identity import UPSTREAM_ACCESS_KEY, current_identity, request_scope
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
