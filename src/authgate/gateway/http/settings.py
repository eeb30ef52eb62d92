"""`proxy_from_settings`: the `HttpUpstreamProxy` that `authgate serve --upstream URL` puts
behind the guard, built from the gateway settings (config/gateway.py)."""

from __future__ import annotations

import ipaddress
import logging

from yarl import URL

from authgate.config.gateway import upstream_oauth_mode
from authgate.config.settings import Settings
from authgate.errors import ConfigError
from authgate.gateway.headers import IdentityHeaderNames
from authgate.gateway.http.proxy import HttpUpstreamProxy
from authgate.gateway.http.upstream_oauth import UpstreamOAuth
from authgate.masking import masked_url

__all__ = ["check_upstream_at_start", "proxy_from_settings"]

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
        upstream_oauth=UpstreamOAuth(
            upstream_oauth_mode(settings, settings.auth_mode), other_providers=bool(settings.connection_providers)
        ),
        mount_path=settings.urls.mcp_path,
        max_body=settings.mcp_max_body_bytes,
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
