"""The protected upstream as a connection provider (`upstream_oauth`, docs/protected-upstream.md).

`authgate serve --upstream URL` in front of an OAuth-protected MCP server: the upstream is the
broker's provider `UPSTREAM_PROVIDER`, of the MCP kind (its AS found through RFC 9728). An
operator's own `connection_providers.upstream` of kind mcp naming the same URL configures it (a
client registered there, scopes); another provider of that name is refused at start
(config/gateway.py). `broker_providers` is what every broker (app, CLI) is built with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from authgate.config.gateway import upstream_oauth_mode
from authgate.connections.providers import ProviderConfig, providers_from

if TYPE_CHECKING:
    from authgate.config.settings import Settings

__all__ = ["UPSTREAM_PROVIDER", "broker_providers", "connections_wanted", "upstream_provider"]

UPSTREAM_PROVIDER = "upstream"
TITLE = "the upstream MCP server"


def upstream_provider(settings: Settings) -> ProviderConfig | None:
    """The upstream as a provider, None when `upstream_oauth` is off in effect."""
    if upstream_oauth_mode(settings, settings.auth_mode) == "off" or settings.upstream is None:
        return None
    configured = providers_from(settings.connection_providers).get(UPSTREAM_PROVIDER)
    if configured is None:
        return ProviderConfig(name=UPSTREAM_PROVIDER, kind="mcp", title=TITLE, mcp_url=settings.upstream)
    return configured  # kind mcp, this URL: checked at start


def broker_providers(settings: Settings) -> dict[str, ProviderConfig]:
    """The configured providers and, when it may be protected, the upstream."""
    providers = providers_from(settings.connection_providers)
    if (upstream := upstream_provider(settings)) is not None:
        providers[UPSTREAM_PROVIDER] = upstream
    return providers


def connections_wanted(settings: Settings) -> bool:
    """Does this app need a broker (and the connect page)?"""
    return settings.auth_mode != "external" and bool(broker_providers(settings))
