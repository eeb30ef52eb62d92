"""`proxy_from_settings`: the `HttpUpstreamProxy` that `authgate serve --upstream URL` puts
behind the guard, built from the gateway settings (config/gateway.py); `upstream_oauth_mode` and
`upstream_provider`: whether the upstream may be OAuth-protected, and the connection provider it
then is (gateway/http/upstream_oauth.py), for the broker AuthgateApp builds."""

from __future__ import annotations

import ipaddress
import logging

from yarl import URL

from authgate.config.gateway import has_static_authorization
from authgate.config.settings import Settings
from authgate.connections.providers import ProviderConfig
from authgate.errors import ConfigError
from authgate.gateway.headers import IdentityHeaderNames
from authgate.gateway.http.proxy import HttpUpstreamProxy
from authgate.gateway.http.upstream_oauth import UPSTREAM_PROVIDER, Mode, UpstreamOAuth
from authgate.masking import masked_url

__all__ = ["check_upstream_at_start", "proxy_from_settings", "upstream_oauth_mode", "upstream_provider"]

log = logging.getLogger("authgate.gateway")


def proxy_from_settings(settings: Settings) -> HttpUpstreamProxy:
    """The proxy `authgate serve --upstream URL` puts behind the guard."""
    if settings.upstream is None:
        raise ValueError("settings.upstream is not set")
    static = dict(settings.upstream_headers)
    if settings.upstream_bearer_token is not None:
        static["Authorization"] = f"Bearer {settings.upstream_bearer_token.get_secret_value()}"
    check_upstream_at_start(settings)
    return HttpUpstreamProxy(
        settings.upstream,
        connect_timeout=settings.upstream_connect_timeout,
        first_byte_timeout=settings.upstream_first_byte_timeout,
        idle_timeout=settings.upstream_idle_timeout,
        call_timeout=settings.upstream_call_timeout,
        stream_timeout=settings.upstream_stream_timeout,
        upstream_headers=static,
        identity_headers=IdentityHeaderNames() if settings.identity_headers else None,
        upstream_token_header=settings.upstream_token_header,
        upstream_oauth=UpstreamOAuth(upstream_oauth_mode(settings)),
        mount_path=settings.urls.mcp_path,
        max_body=settings.mcp_max_body_bytes,
    )


def upstream_oauth_mode(settings: Settings) -> Mode:
    """`upstream_oauth` as it applies: off without an HTTP upstream, with the operator's own
    credential for it, or in external mode (no store to keep people's connections in)."""
    if settings.upstream is None or settings.auth_mode == "external" or has_static_authorization(settings):
        return "off"
    return settings.upstream_oauth


def upstream_provider(settings: Settings) -> ProviderConfig | None:
    """The protected upstream as a connection provider of the MCP kind, for the broker: the
    operator's own `connection_providers.upstream` when it names this upstream (a configured
    client there, scopes), else DCR/CIMD as the remote's AS allows; None when off."""
    if upstream_oauth_mode(settings) == "off" or settings.upstream is None:
        return None
    configured = settings.connection_providers.get(UPSTREAM_PROVIDER)
    if configured is None:
        return ProviderConfig(
            name=UPSTREAM_PROVIDER, kind="mcp", title="the upstream MCP server", mcp_url=settings.upstream
        )
    if configured.kind != "mcp" or configured.mcp_url != settings.upstream:
        raise ConfigError(
            "connection_providers",
            f"the provider name {UPSTREAM_PROVIDER!r} is the protected upstream's (upstream_oauth)",
            'rename that provider, or make it {"kind": "mcp", "mcp_url": "<upstream>"} to configure the '
            "upstream's client",
        )
    return ProviderConfig(
        name=UPSTREAM_PROVIDER,
        kind="mcp",
        title=configured.title or "the upstream MCP server",
        mcp_url=settings.upstream,
        client_id=configured.client_id,
        client_secret=configured.client_secret.get_secret_value() if configured.client_secret else None,
        registration=configured.registration,
        scopes=tuple(configured.scopes),
    )


def check_upstream_at_start(settings: Settings) -> None:
    """A plain-http upstream on a public address: a warning, or with `strict` a ConfigError (`authgate
    serve --strict` checks it before it opens the store, and exits 2)."""
    url = URL(settings.upstream or "")
    if url.scheme != "http" or _private_host(url.host or ""):
        return
    problem = (
        f"upstream {masked_url(settings.upstream or '')} is plain http on a public address: traffic to it "
        "(and its credential) is readable on the way"
    )
    if settings.strict:
        raise ConfigError("upstream", f"{problem} (refused: `strict` is on)", "use https or a private network")
    log.warning("%s; use https or a private network", problem)


def _private_host(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith((".internal", ".local", ".svc"))
    return address.is_private or address.is_loopback or address.is_link_local
