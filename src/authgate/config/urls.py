"""Canonical public URL and every URL derived from it.

The public URL is canonicalized once, at start: lowercase scheme and host, no default port,
no query, fragment or trailing slash. The issuer is the public URL; the protected resource is
the public URL + the MCP path. Well-known URLs are formed by path *insertion* (RFC 8414 §3.1,
RFC 9728 §3.1): `https://h/p` → `https://h/.well-known/oauth-authorization-server/p`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from authgate.masking import masked_urls
from authgate.memo import Remembered

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback_host(host: str) -> bool:
    """Remembered per host name (each redirect URI check, each browser Origin on /mcp parses
    it): host names of up to 255 characters (`memo.Remembered`)."""
    return _LOOPBACK[host]


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_LOOPBACK = Remembered(_is_loopback_host, max_length=255)


def canonicalize_public_url(raw: str) -> str:
    """Return the canonical form, or raise ValueError saying what is wrong."""
    parts = urlsplit(raw.strip())
    scheme = parts.scheme.lower()
    shown = masked_urls(raw)  # a URL with credentials is refused, and never printed with them
    if scheme not in ("http", "https"):
        raise ValueError(f"'{shown}' is not an http(s) URL")
    if not parts.hostname:
        raise ValueError(f"'{shown}' has no host")
    if parts.username or parts.password:
        raise ValueError(f"'{shown}' must not contain credentials")
    if parts.query or parts.fragment:
        raise ValueError(f"'{shown}' must not have a query or fragment")
    host = parts.hostname.lower()
    if scheme == "http" and not is_loopback_host(host):
        raise ValueError(f"'{shown}' uses http on a non-loopback host; HTTPS is required")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != _DEFAULT_PORTS[scheme]:
        netloc += f":{parts.port}"
    path = parts.path.rstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))


def insert_well_known(url: str, name: str) -> str:
    """RFC 8414 §3.1 / RFC 9728 §3.1: insert `/.well-known/<name>` between host and path."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, f"/.well-known/{name}{path}", "", ""))


@dataclass(frozen=True, slots=True)
class PublicUrls:
    """Every externally visible URL of one authgate instance."""

    base: str  # canonical public URL
    mcp_path: str = "/mcp"

    @property
    def issuer(self) -> str:
        return self.base

    @property
    def base_path(self) -> str:
        return urlsplit(self.base).path

    @property
    def origin(self) -> str:
        p = urlsplit(self.base)
        return f"{p.scheme}://{p.netloc}"

    @property
    def resource(self) -> str:
        return self.base + self.mcp_path

    def endpoint(self, name: str) -> str:
        return f"{self.base}/{name}"

    @property
    def as_metadata_url(self) -> str:
        return insert_well_known(self.issuer, "oauth-authorization-server")

    @property
    def prm_url(self) -> str:
        return insert_well_known(self.resource, "oauth-protected-resource")

    @property
    def prm_root_url(self) -> str:
        return insert_well_known(self.origin, "oauth-protected-resource")

    def local_path(self, url: str) -> str:
        """The request path at which `url` arrives (the host part stripped)."""
        return urlsplit(url).path or "/"

    @property
    def secure_cookies(self) -> bool:
        return not (urlsplit(self.base).scheme == "http" and is_loopback_host(urlsplit(self.base).hostname or ""))
