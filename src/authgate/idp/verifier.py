"""`ExternalJwtVerifier`: the guard's `TokenVerifier` when an external IdP issues the tokens.

RFC 9068 JWT access tokens are verified locally against the IdP's JWKS: the algorithm must be
on the allow-list (never `none`, never HS*: the token does not get to choose), the `kid` must
name a published key, the signature must hold, and then the claims pass `claims.py`. Tokens
that are not JWTs go to RFC 7662 introspection when it is configured. Verified identities are
cached until the token expires: a JWT cannot be revoked at the IdP anyway, and introspection
keeps its own short cache.
"""

from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import JoseError

from authgate.errors import InvalidToken
from authgate.guard.identity import Identity
from authgate.idp.claims import TokenPolicy, identity_from_claims
from authgate.idp.jwks import JwksCache

_AT_JWT = ("at+jwt", "application/at+jwt")  # RFC 9068 §2.1
_NOT_ACCESS_TOKEN_TYPES = ("id_token+jwt", "logout+jwt", "secevent+jwt", "dpop+jwt", "jwt-bearer")


class OpaqueTokenVerifier(Protocol):
    async def verify(self, token: str) -> Identity: ...


def _decode_header(token: str) -> dict[str, Any]:
    head = token.split(".", 1)[0]
    try:
        parsed = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("token is not a JWT") from None
    if not isinstance(parsed, dict):
        raise InvalidToken("token is not a JWT")
    return parsed


def check_header(header: dict[str, Any], policy: TokenPolicy) -> tuple[str, str | None]:
    """(alg, kid) of a header authgate is willing to verify."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in policy.algorithms:
        raise InvalidToken(f"token algorithm {alg!r} is not accepted (jwt_algorithms)")
    if "crit" in header:  # RFC 7515 §4.1.11: no extension is understood here
        raise InvalidToken("token header has critical extensions authgate does not understand")
    typ = str(header.get("typ", "")).lower()
    if policy.require_at_jwt_typ and typ not in _AT_JWT:
        raise InvalidToken("token is not an RFC 9068 access token (typ must be at+jwt)")
    if typ.removeprefix("application/") in _NOT_ACCESS_TOKEN_TYPES:
        raise InvalidToken(f"a {typ} token is not an access token")
    kid = header.get("kid")
    return alg, kid if isinstance(kid, str) else None


class ExternalJwtVerifier:
    def __init__(
        self,
        policy: TokenPolicy,
        jwks: JwksCache,
        *,
        opaque: OpaqueTokenVerifier | None = None,
        clock: Callable[[], float] = time.time,
        max_entries: int = 50_000,
    ) -> None:
        self.policy = policy
        self.jwks = jwks
        self._opaque = opaque
        self._clock = clock
        self._max = max_entries
        self._cache: OrderedDict[str, Identity] = OrderedDict()

    async def verify(self, token: str) -> Identity:
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + self.policy.leeway >= now:
                return cached
            del self._cache[token]
        dots = token.count(".")
        if dots != 2:
            if self._opaque is not None:
                return await self._opaque.verify(token)
            if dots == 4:
                raise InvalidToken(
                    "token is encrypted (JWE): the IdP issued it for no audience authgate "
                    "can read; see the profile's audience advice (docs/idp/)"
                )
            raise InvalidToken("token is not a JWT; for an IdP that issues opaque tokens set introspection_endpoint")
        identity = await self._verify_jwt(token, now)
        self._remember(token, identity)
        return identity

    async def _verify_jwt(self, token: str, now: float) -> Identity:
        alg, kid = check_header(_decode_header(token), self.policy)
        key = await self.jwks.key(kid, alg)
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except (JoseError, ValueError):
            raise InvalidToken("token signature is invalid") from None
        return identity_from_claims(claims, self.policy, now)

    def _remember(self, token: str, identity: Identity) -> None:
        self._cache[token] = identity
        self._cache.move_to_end(token)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
