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
`authgate.current_identity(ctx)`, or the SDK's own `get_access_token()` / `request.user`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from authgate.config.settings import Settings, load_settings
from authgate.server.app import AuthgateApp, build_app


def protect(
    app: ASGIApp, settings: Settings | None = None, *, config_file: Path | None = None, **overrides: Any
) -> AuthgateApp:
    """Wrap `app` (an ASGI MCP app serving `/mcp`) with authgate. Settings come from
    `settings`, or from `config_file`, AUTHGATE_* env vars and keyword overrides."""
    if settings is None:
        settings = load_settings(config_file, **overrides)
    return build_app(settings, app)
