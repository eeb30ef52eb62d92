"""The client's address and scheme behind trusted reverse proxies: decided in one place, at
the top of `AuthgateApp`, so every part (sign-in and registration limits, the access log,
the gateway's `X-Forwarded-For`) reads the same `scope["client"]`.

`authgate serve` runs uvicorn without its own proxy-header handling, so the scope arrives
with the socket peer. Only when that peer is in `trusted_proxies` (addresses, networks, or
"*") is it replaced, from the one header the proxies are set to write (`forwarded_header`):
`X-Forwarded-For` with `X-Forwarded-Proto`, or RFC 7239 `Forwarded` (`for=`, `proto=`).
Never both: a proxy that writes one passes the other on from the client untouched, so
believing both would let any client choose its address.

Which entry: each proxy appends the peer it saw, so the list is read from the right,
skipping trusted proxies; the first entry that is not one is the client. It must be an IP
address (not "unknown", an obfuscated `_name`, or garbage a client put in front): otherwise
the peer is kept. Entries are split at every comma, quotes or not, so a client's unbalanced
quote cannot swallow what the proxies appended after it. With "*" every entry is trusted and
the leftmost (the client's own claim) wins: only for a server no one reaches but through
the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Literal

from starlette.types import Scope

from authgate.memo import Remembered

__all__ = ["TrustedProxies", "client_host"]

Header = Literal["x-forwarded-for", "forwarded"]
MAX_JUDGED = 4096
MAX_HOST = 255  # a peer's address (a Unix socket's path at most this long is remembered too)
_SCHEMES = {"http", "https"}


def client_host(scope: Scope) -> str:
    """The client's address as `TrustedProxies` left it; "-" when there is none (a Unix socket)."""
    client = scope.get("client")
    return str(client[0]) if client else "-"


class TrustedProxies:
    def __init__(self, trusted: Iterable[str], header: Header = "x-forwarded-for") -> None:
        trusted = list(trusted)
        self.header = header
        self._name = header.encode()  # the header's name as ASGI servers hand it (lowercase)
        self.trust_all = "*" in trusted
        self._networks = [ipaddress.ip_network(t, strict=False) for t in trusted if _is_network(t)]
        self._literals = {t for t in trusted if t != "*" and not _is_network(t)}  # e.g. a Unix socket path
        # peer address → trusted: parsing one costs more than the rest; bounded (memo.Remembered)
        self._judged = Remembered(self._trusts, max_length=MAX_HOST, max_items=MAX_JUDGED)

    def trusts(self, host: str) -> bool:
        return self._judged[host]

    def _trusts(self, host: str) -> bool:
        if self.trust_all or host in self._literals:
            return True
        ip = _ip(host)
        return ip is not None and any(ip in net for net in self._networks)

    def resolve(self, scope: Scope) -> None:
        """Set `scope["client"]` (and `scheme`) from the forwarding header when the peer is trusted."""
        if scope["type"] not in ("http", "websocket") or not self.trusts(client_host(scope)):
            return
        headers = scope["headers"]
        name = self._name
        for key, _value in headers:
            if key == name:
                break
        else:  # no forwarding header (a direct request from a trusted address): the peer stands
            return
        entries = self._entries(headers)  # [(for, proto)], left to right
        chosen = self._client_entry(entries)
        if chosen is None:
            return
        host, proto = chosen
        scope["client"] = (host, 0)
        if proto in _SCHEMES:
            scope["scheme"] = proto if scope["type"] == "http" else proto.replace("http", "ws")

    def _client_entry(self, entries: list[tuple[str, str | None]]) -> tuple[str, str | None] | None:
        for host, proto in reversed(entries):
            if not self.trusts(host):
                return (host, proto) if _ip(host) is not None else None
        if entries and _ip(entries[0][0]) is not None:  # every hop trusted: the first one
            return entries[0]
        return None

    def _entries(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str | None]]:
        if self.header == "forwarded":
            raw = ",".join(v.decode("latin-1") for k, v in headers if k == b"forwarded")
            return [e for e in map(_forwarded_element, raw.split(",")) if e is not None]
        raw = ",".join(v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for")
        protos = [v.decode("latin-1").strip().lower() for k, v in headers if k == b"x-forwarded-proto"]
        proto = protos[-1] if protos else None
        return [(_host(item), proto) for item in raw.split(",") if item.strip()]


def _forwarded_element(element: str) -> tuple[str, str | None] | None:
    """RFC 7239 §4: `for=…;proto=…` pairs of one element; None without `for`."""
    params: dict[str, str] = {}
    for pair in element.split(";"):
        key, eq, value = pair.partition("=")
        if eq:
            params.setdefault(key.strip().lower(), value.strip().strip('"'))
    if "for" not in params:
        return None
    return _host(params["for"]), params.get("proto", "").lower() or None


def _host(node: str) -> str:
    """`1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:80` or `2001:db8::1` → the address alone."""
    node = node.strip()
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    if node.count(":") == 1:
        return node.split(":", 1)[0]
    return node


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True
