"""`upstream_token_header` (proxy mode): the caller's own access token at the upstream IdP, sent
to the upstream MCP server in the header the operator named (docs/gateway.md#the-users-upstream-idp-token).

It is not the token the MCP client presented — that one is for authgate, and passing it on is
the token passthrough MCP forbids (authorization §Access Token Privilege Restriction). It is
the IdP's token for the person (GitHub, Google, Graph, an OIDC userinfo), which the upstream
uses to call that API *as the person*; the client never sees it. A client's own header of
that name is dropped with the others (gateway/headers.py), so the value the upstream reads is
always authgate's.

| the caller's upstream token                  | the upstream request                        |
| -------------------------------------------- | ------------------------------------------- |
| live (renewed first when near expiry)        | carries it in the header                    |
| none (a machine client, no refresh possible) | goes without the header                     |
| the IdP ended the grant                      | not sent: 401, sign in again (grant revoked)|
| the IdP cannot renew it now                  | not sent: 503 with Retry-After              |
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from starlette.types import Scope

from authgate.errors import NoUpstreamToken, UpstreamGrantEnded, UpstreamTokenUnavailable
from authgate.gateway.errors import GatewayError, JsonRpcId
from authgate.guard.identity import CONNECTION_HEADERS_KEY, UPSTREAM_ACCESS_KEY, Identity

__all__ = ["UpstreamIdpGrantEnded", "UpstreamIdpUnavailable", "UpstreamTokenHeader"]

log = logging.getLogger("authgate.gateway")


class _Access(Protocol):  # idp/proxy/upstream_access.py's UpstreamAccess, put in the scope by AuthgateApp
    async def token(self, identity: Identity) -> str: ...


class UpstreamIdpGrantEnded(GatewayError):
    """The IdP ended the caller's grant: authgate revoked its own grant too; sign in again."""

    status = 401
    code = -32603

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": "upstream_idp_grant_ended"}

    def headers(self) -> list[tuple[bytes, bytes]]:  # RFC 6750 §3.1: the token's grant is gone
        return [(b"www-authenticate", b'Bearer error="invalid_token", error_description="sign in again"')]


class UpstreamIdpUnavailable(GatewayError):
    """The IdP cannot renew the caller's token now: retryable."""

    status = 503
    code = -32603

    def __init__(self, message: str, *, retry_after: int, request_id: JsonRpcId) -> None:
        super().__init__(message, request_id=request_id)
        self.retry_after = retry_after

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": "upstream_idp_unavailable", "retryable": True}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after).encode())]


class UpstreamTokenHeader:
    """`await header(scope, identity, request_id)`: the header pair to add, none when off or
    when the caller has no upstream token."""

    def __init__(self, name: str | None) -> None:
        self.name = name

    async def __call__(self, scope: Scope, identity: Identity | None, request_id: JsonRpcId) -> list[tuple[str, str]]:
        # a tool configured to need a provider (connection_tools): its token, in X-Authgate-Connection-<provider>,
        # put there by server/elicitations.py (whose X-Authgate- prefix keeps any client copy out)
        connections: list[tuple[str, str]] = list(scope.get(CONNECTION_HEADERS_KEY, ()))
        if self.name is None or identity is None:
            return connections
        access: _Access | None = scope.get(UPSTREAM_ACCESS_KEY)
        if access is None:  # not proxy mode: settings refuse the header there (config/gateway.py)
            return connections
        try:
            return [(self.name, await access.token(identity)), *connections]
        except NoUpstreamToken:
            return connections
        except UpstreamGrantEnded as exc:
            raise UpstreamIdpGrantEnded(f"authgate: {exc}", request_id=request_id) from None
        except UpstreamTokenUnavailable as exc:
            raise UpstreamIdpUnavailable(
                f"authgate: {exc}", retry_after=exc.retry_after, request_id=request_id
            ) from None
