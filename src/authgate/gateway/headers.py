"""Which headers cross the gateway, in each direction.

Upstream, everything the client sent passes except:

* `Authorization` — the client's token is for authgate; passing it on is the "token
  passthrough" MCP forbids (2025-06-18 authorization §Access Token Privilege Restriction);
* `Cookie` (authgate's own `authgate_session` / `authgate_csrf` among them) and
  `Proxy-Authorization`;
* every `X-Authgate-*` header, the configured identity header names and
  `upstream_token_header` — only the gateway may say who is calling, and only it sends the
  caller's upstream IdP token (gateway/http/upstream_token.py);
* hop-by-hop headers (RFC 9110 §7.6.1) and those the client's `Connection` names, `Host`,
  `Content-Length`, `Expect`;
* `Origin` (the gateway enforced the Origin policy; the upstream sees the gateway as its
  client) and client-supplied `Forwarded` / `X-Forwarded-*` / `X-Real-IP`, which the
  gateway sets itself.

Then the configured credential (static headers, or `Authorization: Bearer` with the
upstream token) and, if enabled, the identity headers are added. `Mcp-Session-Id`,
`MCP-Protocol-Version`, `Last-Event-ID`, `Accept`, `Content-Type`, `Mcp-Method`,
`Mcp-Name` and `Mcp-Param-*` pass untouched.

Downstream, the upstream's hop-by-hop headers, `Set-Cookie` (it would land on authgate's
origin), `WWW-Authenticate` (it would send the client to the upstream's own authorization
server), `Date` and `Server` are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.types import Scope

from authgate.gateway.mcp_headers import encode_header_value
from authgate.guard.identity import Identity

__all__ = ["IdentityHeaderNames", "UpstreamRequestHeaders", "downstream_headers"]

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
_NEVER_UPSTREAM = HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"expect",
    b"authorization",
    b"proxy-authorization",
    b"dpop",  # RFC 9449: the proof is for authgate's URL and checked here; never passed on
    b"cookie",
    b"origin",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-host",
    b"x-forwarded-proto",
    b"x-forwarded-port",
    b"x-real-ip",
}
_NEVER_DOWNSTREAM = HOP_BY_HOP | {b"set-cookie", b"www-authenticate", b"proxy-authenticate", b"date", b"server"}
_AUTHGATE_PREFIX = b"x-authgate-"


@dataclass(frozen=True, slots=True)
class IdentityHeaderNames:
    """Headers that tell the upstream who is calling. Values that are not plain ASCII are
    sent as `=?base64?…?=` (the MCP 2026-07-28 header value encoding)."""

    subject: str = "X-Authgate-Subject"
    client_id: str = "X-Authgate-Client-Id"
    scopes: str = "X-Authgate-Scopes"
    username: str = "X-Authgate-Username"

    def names(self) -> tuple[str, ...]:
        return (self.subject, self.client_id, self.scopes, self.username)

    def values(self, identity: Identity) -> list[tuple[str, str]]:
        pairs = [
            (self.subject, identity.subject),
            (self.client_id, identity.client_id),
            (self.scopes, " ".join(identity.scopes)),
        ]
        if identity.username:
            pairs.append((self.username, identity.username))
        return [(name, encode_header_value(value)) for name, value in pairs]


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    return {token.strip().lower() for name, value in headers if name == b"connection" for token in value.split(b",")}


class UpstreamRequestHeaders:
    """Builds the header list of one upstream request from the client's."""

    def __init__(
        self, static: Mapping[str, str], identity: IdentityHeaderNames | None, token_header: str | None = None
    ) -> None:
        self.static = list(static.items())
        self.identity = identity
        owned = {name.lower().encode("latin-1") for name in static}
        owned |= {name.lower().encode("latin-1") for name in identity.names()} if identity else set()
        owned |= {token_header.lower().encode("latin-1")} if token_header else set()  # only authgate sets it
        self.drop = _NEVER_UPSTREAM | owned

    def build(self, scope: Scope, identity: Identity | None) -> list[tuple[str, str]]:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        connection = _connection_tokens(headers)
        out: list[tuple[str, str]] = []
        encoding = False
        for name, value in headers:
            if name in self.drop or name.startswith(_AUTHGATE_PREFIX) or name in connection:
                continue
            encoding = encoding or name == b"accept-encoding"
            out.append((name.decode("latin-1"), value.decode("latin-1")))
        if not encoding:
            out.append(("Accept-Encoding", "identity"))  # else the HTTP client would ask for gzip
        if client := scope.get("client"):
            out.append(("X-Forwarded-For", str(client[0])))
        out.append(("X-Forwarded-Proto", str(scope.get("scheme", "http"))))
        out.extend(self.static)
        if self.identity is not None and identity is not None:
            out.extend(self.identity.values(identity))
        return out


def downstream_headers(
    raw: Iterable[tuple[bytes, bytes]], *, sse: bool, keep_length: bool
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers as sent on to the client (ASGI: lowercase names)."""
    pairs = [(name.lower(), value) for name, value in raw]
    connection = _connection_tokens(pairs)
    out = [
        (name, value)
        for name, value in pairs
        if name not in _NEVER_DOWNSTREAM
        and name not in connection
        and (keep_length or name != b"content-length")
        and not (sse and name == b"x-accel-buffering")
    ]
    if sse:
        out.append((b"x-accel-buffering", b"no"))  # MCP 2026-07-28 transports: Receiving Messages
    return out
