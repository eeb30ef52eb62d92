"""A built-in MCP server with one tool, `whoami`, that reports the caller's identity: the
simplest proof that the guard hands identity through to the protected app.

Over HTTP the identity is the guard's (in the request's ASGI scope). Over stdio there is no
request: behind authgate's stdio gateway (`authgate serve -- authgate kb serve --stdio`) the
process serves one caller, and the gateway names it in the process's environment
(guard/identity.py); run directly by a local MCP client, nobody signed in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette

from authgate._version import __version__
from authgate.guard.identity import (
    CALLER_CLIENT_ID_ENV,
    CALLER_SUBJECT_ENV,
    CALLER_USERNAME_ENV,
    GATEWAY_ENV,
    current_identity,
)
from authgate.mcpapp.spec_errors import SpecErrorsServer


def build_server() -> MCPServer:
    server = SpecErrorsServer(
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
        if ctx.request_context.request is None:  # stdio
            return json.dumps(stdio_caller(os.environ))
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


def stdio_caller(environ: Mapping[str, str]) -> dict[str, Any]:
    """whoami's answer over stdio, from what authgate's stdio gateway put in the environment."""
    if environ.get(GATEWAY_ENV) != "stdio":
        return {"authenticated": False}
    subject = environ.get(CALLER_SUBJECT_ENV)
    note = (
        "over stdio authgate passes the caller's subject, client and user name, not its token's scopes or expiry"
        if subject
        else "authgate's stdio gateway let this caller in; it names the caller to this server only with "
        "identity_headers = true"
    )
    return {
        "authenticated": True,
        "subject": subject,
        "username": environ.get(CALLER_USERNAME_ENV),
        "client_id": environ.get(CALLER_CLIENT_ID_ENV),
        "scopes": None,
        "expires_at": None,
        "note": note,
    }


def build_app() -> Starlette:
    # Origin/Host checks are the guard's job (it knows the public URL); the SDK's own
    # localhost-only defaults would refuse a non-loopback public host.
    return build_server().streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
