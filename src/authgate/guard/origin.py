"""MCP transport security (2025-11-25): which browsers and which `Host` may reach the MCP
endpoint. A present, non-allowlisted `Origin` gets 403; a `Host` that is neither the public
host nor loopback gets 421 (DNS rebinding). Both are parsed as URLs, so `http://[::1]` and
`http://[::1]:80` are one origin and a malformed value is refused, never guessed at.

Framework-free: `OriginCheck.refusal` takes the two header values and returns the answer's
status and JSON body, or None. Hosts are remembered once judged (a bounded map: a client
sends the same `Host` on every request).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from authgate.config.urls import is_loopback_host

__all__ = ["OriginCheck", "host_name", "origin_key"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REMEMBERED_HOSTS = 256

Refusal = tuple[int, dict[str, str]]  # status, JSON body


def origin_key(value: str) -> tuple[str, str, int] | None:
    """An RFC 6454 origin as (scheme, host, port), the default port filled in; None when the
    value is not an http(s) origin (`null`, a path, userinfo, a bad port or IPv6 literal)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    return parts.scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS[parts.scheme]


def host_name(value: str) -> str | None:
    """The host of a `Host` header (RFC 9110 §7.2), lowercased, IPv6 without brackets, the
    port dropped; None when malformed."""
    try:
        parts = urlsplit("//" + value.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if not parts.hostname or "@" in parts.netloc or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname


class OriginCheck:
    def __init__(self, *, public_host: str, allowed_origins: Iterable[str]) -> None:
        self.public_host = host_name(public_host) or public_host.lower()
        keys = [(o, origin_key(o)) for o in allowed_origins]
        self.any_origin = any(o == "*" for o, _ in keys)
        self.allowed = {k for _, k in keys if k is not None}
        self.loopback_origins = is_loopback_host(self.public_host)
        self._hosts: dict[str, bool] = {}

    def refusal(self, origin: str | None, host: str | None) -> Refusal | None:
        """The answer for a request with these `Origin` and `Host` values, or None to go on."""
        if origin is not None and not self._origin_ok(origin):
            return 403, {
                "error": "forbidden_origin",
                "error_description": f"Origin {origin} is not allowed; add it to allowed_origins",
            }
        host = host or ""
        if not self._host_ok(host):
            return 421, {
                "error": "misdirected_request",
                "error_description": f"Host {host} is not this server's public host",
            }
        return None

    def _origin_ok(self, origin: str) -> bool:
        if self.any_origin:
            return True
        key = origin_key(origin)
        if key is None:
            return False
        return key in self.allowed or (self.loopback_origins and key[0] == "http" and is_loopback_host(key[1]))

    def _host_ok(self, host: str) -> bool:
        known = self._hosts.get(host)
        if known is None:
            name = host_name(host)
            known = name is not None and (name == self.public_host or is_loopback_host(name))
            if len(self._hosts) < MAX_REMEMBERED_HOSTS:
                self._hosts[host] = known
        return known
