"""The gateway: authgate in front of an MCP server that lives somewhere else.

http/   `HttpUpstreamProxy`, a pure ASGI app that the guard protects like any MCP app; it
        forwards the MCP endpoint to a Streamable HTTP upstream (see docs/gateway.md).
        `proxy_from_settings` builds it from `Settings.upstream*`.
stdio/  `StdioBridge`: a stdio MCP server (any command) served as Streamable HTTP
        (see docs/gateway-stdio.md).
What both use stays here: body.py, errors.py, headers.py, jsonrpc.py, request_metadata.py,
tool_schemas.py, sse.py (events, and how a stream cut short ends), drain.py (a stop),
streams.py.

The public names are resolved on first use (PEP 562), so importing the shared modules does not
load the HTTP proxy and its client library.
"""

import typing as _typing

from authgate import _lazy_exports

if _typing.TYPE_CHECKING:
    from authgate.gateway.errors import GatewayError
    from authgate.gateway.headers import IdentityHeaderNames
    from authgate.gateway.http.proxy import HttpUpstreamProxy
    from authgate.gateway.http.sessions import InMemorySessionBindings, Owner, SessionBindings
    from authgate.gateway.http.settings import proxy_from_settings

__all__ = [
    "GatewayError",
    "HttpUpstreamProxy",
    "IdentityHeaderNames",
    "InMemorySessionBindings",
    "Owner",
    "SessionBindings",
    "proxy_from_settings",
]

# public name -> the module that defines it
_LAZY = {
    "GatewayError": "authgate.gateway.errors",
    "IdentityHeaderNames": "authgate.gateway.headers",
    "HttpUpstreamProxy": "authgate.gateway.http.proxy",
    "proxy_from_settings": "authgate.gateway.http.settings",
    "InMemorySessionBindings": "authgate.gateway.http.sessions",
    "Owner": "authgate.gateway.http.sessions",
    "SessionBindings": "authgate.gateway.http.sessions",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, globals())
