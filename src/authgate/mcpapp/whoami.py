"""A built-in MCP server with one tool, `whoami`, that reports the caller's identity: the
simplest proof that the guard hands identity through to the protected app."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from authgate._version import __version__
from authgate.guard.identity import current_identity


def build_server() -> MCPServer:
    server = MCPServer(
        "authgate",
        version=__version__,
        instructions="authgate's built-in server: call whoami to see who you are signed in as.",
    )
    add_whoami_tool(server)
    return server


def add_whoami_tool(server: MCPServer[Any]) -> None:
    """Register `whoami` on `server` (this one, and the knowledge-base server, share it)."""

    @server.tool(description="Who am I signed in as? Returns the subject, username, client and scopes.")
    def whoami(ctx: Context) -> str:
        identity = current_identity(ctx)
        if identity is None:
            return json.dumps({"authenticated": False})
        return json.dumps(
            {
                "authenticated": True,
                "subject": identity.subject,
                "username": identity.username,
                "client_id": identity.client_id,
                "scopes": list(identity.scopes),
                "expires_at": identity.expires_at,
            }
        )


def build_app() -> Starlette:
    # Origin/Host checks are the guard's job (it knows the public URL); the SDK's own
    # localhost-only defaults would refuse a non-loopback public host.
    return build_server().streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
