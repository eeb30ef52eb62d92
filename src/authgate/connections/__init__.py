"""Connections: each user's tokens for third-party OAuth APIs and OAuth-protected MCP servers.

Framework-free core (no Starlette): the connect page (server/routes/connect.py), the CLI
(`authgate connections`), the admin page, library tools and the gateway call it.

providers.py  `ProviderConfig` (one configured provider), `ConnectionInfo` (a connection as listed)
broker.py     `ConnectionBroker`: token (refreshed once per user and provider across replicas),
              require (else `authgate.errors.ConnectionRequired` with a connect link), revoke, list
links.py      connect links: made by `require`, opened by their user (PKCE, state bound to the
              session), completed by the callback (state, session, iss checked; single use)
remote.py     each provider's AS (discovered, cached) and authgate's client there (configured,
              else stored, else CIMD or DCR, stored sealed: one registration for every replica)
renewal.py    `SingleFlight`: one renewal per key in this process (also the proxy's vault)
errors.py     `ConnectLinkError`: what the connect page refuses
upstream.py   the protected upstream (`serve --upstream`, upstream_oauth) as the provider `upstream`
"""

from authgate.connections.broker import ConnectionBroker, TokenExchanger
from authgate.connections.errors import ConnectLinkError
from authgate.connections.providers import ConnectionInfo, ProviderConfig, providers_from
from authgate.errors import ConnectionRequired

__all__ = [
    "ConnectLinkError",
    "ConnectionBroker",
    "ConnectionInfo",
    "ConnectionRequired",
    "ProviderConfig",
    "TokenExchanger",
    "providers_from",
]
