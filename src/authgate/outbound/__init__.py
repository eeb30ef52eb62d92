"""authgate's outbound OAuth client: how authgate gets a token for an OAuth-protected server.

An MCP server behind authgate (a remote MCP server, a third-party API) answers 401 with
`WWW-Authenticate`; this package finds its authorization server and obtains a token the way
the MCP authorization spec (2025-11-25, 2026-07-28) tells a client to, framework-free. Every
URL a remote advertises is fetched through the CIMD fetcher's SSRF guard
(`oauth/cimd/fetching.py`: vetted, pinned address, bounded size and time).

errors.py         `OutboundAuthError`: a remote's metadata refused or no token obtained
challenge.py      `WWW-Authenticate: Bearer …` parameters (RFC 6750 §3)
discovery.py      RFC 9728 protected-resource metadata → RFC 8414 / OIDC AS metadata, validated
registration.py   the client id: pre-configured, else CIMD, else DCR (RFC 7591)
authorization.py  authorization code + PKCE S256 + resource + state + iss (RFC 9207); token, refresh
client.py         `OutboundClient`: one remote server's tokens, refreshed, stepped up on 403
sdk_auth.py       `OutboundAuth`: the client as the mcp SDK's httpx2 `Auth` (imports httpx2)
"""

from authgate.outbound.client import Browser, OutboundClient, OutboundSettings
from authgate.outbound.errors import OutboundAuthError
from authgate.outbound.registration import Credentials

__all__ = ["Browser", "Credentials", "OutboundAuthError", "OutboundClient", "OutboundSettings"]
