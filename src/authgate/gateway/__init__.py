"""The gateway: authgate in front of an MCP server that lives somewhere else.

`HttpUpstreamProxy` is a pure ASGI app that the guard protects like any MCP app; it
forwards the MCP endpoint to a Streamable HTTP upstream (see docs/gateway.md).
`proxy_from_settings` builds it from `Settings.upstream*`.
"""

from authgate.gateway.errors import GatewayError
from authgate.gateway.headers import IdentityHeaderNames
from authgate.gateway.http_proxy import HttpUpstreamProxy, proxy_from_settings
from authgate.gateway.sessions import InMemorySessionBindings, Owner, SessionBindings

__all__ = [
    "GatewayError",
    "HttpUpstreamProxy",
    "IdentityHeaderNames",
    "InMemorySessionBindings",
    "Owner",
    "SessionBindings",
    "proxy_from_settings",
]
