"""RFC 8693 token exchange toward an authorization server that trusts authgate's issuer.

For a connection provider marked `token_exchange`, the broker asks here first
(`ConnectionBroker.exchanger`): when the provider's AS is one the operator lists in
`token_exchange_issuers`, authgate signs a short-lived JWT for the person and exchanges it at
that AS's token endpoint for the person's token there, without any browser step:

    grant_type=urn:ietf:params:oauth:grant-type:token-exchange           RFC 8693 §2.1
    subject_token=<JWT>  subject_token_type=urn:ietf:params:oauth:token-type:jwt   (§3)
    requested_token_type=urn:ietf:params:oauth:token-type:access_token
    resource=<the provider's resource, when known>  audience=<the AS's issuer>  scope=<its scopes>

The subject token: `iss` authgate's issuer, `sub` the person's authgate user id, `aud` the remote
AS's issuer (so it is good at that AS only: never at authgate's own resource, whose tokens carry
the MCP URL as `aud` and `typ` at+jwt), `iat`/`exp` `subject_ttl` seconds apart, a fresh `jti`,
header `typ` JWT, signed with authgate's current key (the AS verifies it with authgate's JWKS).

Toward an AS that is not listed, nothing is sent: an oauth provider named by its issuer is
checked before any request; others (an AS metadata URL, an MCP server's AS found through RFC
9728) after discovery only, before the token request. A refused exchange (any error answer) is
logged by its error code and the person connects through the browser instead (None).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from joserfc import jwt

from authgate.oauth.keys import SigningKeys
from authgate.outbound import authorization, registration
from authgate.outbound.authorization import Tokens
from authgate.outbound.errors import OutboundAuthError

if TYPE_CHECKING:
    from authgate.connections.providers import ProviderConfig
    from authgate.connections.remote import RemoteServers

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # RFC 8693 §3
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # RFC 8693 §3
log = logging.getLogger("authgate.connections")


class TokenExchange:
    """The broker's `TokenExchanger`: one per app, built when `token_exchange_issuers` is set."""

    def __init__(
        self,
        remote: RemoteServers,
        keys: SigningKeys,
        *,
        issuer: str,
        trusted: Collection[str],
        subject_ttl: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.remote = remote
        self.keys = keys
        self.issuer = issuer
        self.trusted = frozenset(trusted)
        self.subject_ttl = subject_ttl
        self.clock = clock
        self.requests = 0  # exchange requests sent (tests, logs)

    def trusts(self, issuer: str) -> bool:
        return issuer in self.trusted  # exact string, as RFC 8414 §3.3 compares issuers

    async def exchange(self, user_id: str, provider: ProviderConfig) -> Tokens | None:
        """The person's tokens at `provider` by token exchange, or None: not marked, not trusted
        (nothing sent), or refused by the AS (the browser flow then)."""
        if not provider.token_exchange:
            return None
        if provider.kind == "oauth" and provider.issuer is not None and not self.trusts(provider.issuer):
            return None  # decided from the configuration: not even the AS metadata is fetched
        endpoint = await self.remote.endpoint(provider)
        server = endpoint.server
        if not self.trusts(server.issuer):
            return None
        form = {
            "grant_type": GRANT_TYPE,
            "subject_token": self.subject_token(user_id, server.issuer),
            "subject_token_type": JWT_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": server.issuer,
        }
        if endpoint.resource is not None:
            form["resource"] = endpoint.resource
        if provider.scopes:
            form["scope"] = " ".join(provider.scopes)
        headers: dict[str, str] = {}
        if provider.client_id is not None:  # a client configured there authenticates (RFC 8693 §2.1)
            creds = registration.preconfigured(server, provider.client_id, provider.client_secret)
            headers = authorization.client_auth(creds, form)
        self.requests += 1
        status, body = await self.remote.post_form(server.token_endpoint, form, headers, "token exchange")
        try:
            return _tokens(server.issuer, status, body, provider.scopes, self.clock())
        except OutboundAuthError as exc:
            log.warning("token exchange for %s at %s refused: %s", provider.name, server.issuer, exc.error or exc)
            return None

    def subject_token(self, user_id: str, audience: str) -> str:
        """A JWT naming the person, good for `subject_ttl` seconds at `audience` only."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user_id,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.subject_ttl,
            "jti": uuid.uuid4().hex,
        }
        kid, key = self.keys.signing_key()
        alg = "ES256" if key.key_type == "EC" else "RS256"  # the active key's (token_signing_alg)
        return jwt.encode({"alg": alg, "typ": "JWT", "kid": kid}, claims, key, algorithms=[alg])


def _tokens(issuer: str, status: int, body: bytes, asked: tuple[str, ...], now: float) -> Tokens:
    """RFC 8693 §2.2.1 (a Bearer access token) or §2.2.2 (an error): never the token in a message."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise OutboundAuthError(f"HTTP {status} without JSON")
    if status != 200 or not isinstance(answer.get("access_token"), str):
        code = answer.get("error") if isinstance(answer.get("error"), str) else None
        raise OutboundAuthError(f"HTTP {status}", error=(code or "")[:64] or None)
    issued = answer.get("issued_token_type")
    if issued is not None and issued != ACCESS_TOKEN_TYPE:
        raise OutboundAuthError("the AS issued another token type than an access token")
    if str(answer.get("token_type", "")).lower() != "bearer":
        raise OutboundAuthError("the AS gave a non-Bearer token")
    lifetime = answer.get("expires_in")
    granted = answer.get("scope")
    return Tokens(
        access_token=answer["access_token"],
        issuer=issuer,
        scopes=tuple(granted.split()) if isinstance(granted, str) else asked,
        refresh_token=answer["refresh_token"] if isinstance(answer.get("refresh_token"), str) else None,
        expires_at=now + lifetime if isinstance(lifetime, int | float) and lifetime > 0 else None,
    )
