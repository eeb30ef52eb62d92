"""Access token verification for the guard, with a cache.

Verifying an RS256 signature on every request costs more than the MCP call it protects.
Verified tokens are cached (keyed by the token itself) until they expire, but the grant
behind each is re-checked against the store at least every `recheck_seconds`, so a revoked
grant or a removed user stops working within that interval — well inside the access token
lifetime, as promised — and a token's scopes are narrowed to what its user's roles allow at
that re-check (oauth/roles.py), so taking a role away takes its scopes too.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from authgate.errors import InvalidToken
from authgate.guard.identity import Identity
from authgate.oauth import access_tokens, dpop, roles
from authgate.oauth.authority import Authority


class TokenVerifier(Protocol):
    """The seam external identity providers plug into."""

    async def verify(self, token: str) -> Identity: ...


@dataclass(slots=True)
class _Entry:
    identity: Identity
    checked_at: float


class EmbeddedTokenVerifier:
    def __init__(self, auth: Authority, *, recheck_seconds: float = 30.0, max_entries: int = 50_000) -> None:
        self._auth = auth
        self._recheck = recheck_seconds
        self._max = max_entries
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    def cached(self, token: str) -> Identity | None:
        """The identity of a token verified less than `recheck_seconds` ago and not expired,
        without a coroutine or the store: what every request but the first of a token in each
        interval takes (`guard/bearer.py`). None: ask `verify`."""
        entry = self._cache.get(token)
        if entry is None:
            return None
        now = self._auth.clock()
        if now - entry.checked_at < self._recheck and entry.identity.expires_at + access_tokens.LEEWAY >= now:
            return entry.identity
        return None

    async def verify(self, token: str) -> Identity:
        now = self._auth.clock()
        entry = self._cache.get(token)
        if entry is not None:
            if entry.identity.expires_at + access_tokens.LEEWAY < now:
                del self._cache[token]
                raise InvalidToken("token has expired")
            if now - entry.checked_at < self._recheck:
                return entry.identity
        auth = self._auth
        claims = await access_tokens.verify(token, auth.keys, issuer=auth.issuer, audience=auth.resources[0], now=now)
        username, scopes = await self._live_user(claims)
        identity = Identity(
            subject=claims.subject,
            client_id=claims.client_id,
            scopes=scopes,
            audience=claims.audience,
            expires_at=claims.expires_at,
            username=username,
            claims=claims.raw,
            jkt=dpop.bound_key(claims.raw),
        )
        self._remember(token, _Entry(identity, now))
        return identity

    async def _live_user(self, claims: access_tokens.AccessTokenClaims) -> tuple[str | None, tuple[str, ...]]:
        """The token's user (None for an operator's machine client) and its scopes narrowed to
        what the user's roles allow now: a role taken away ends its scopes within the recheck
        interval, not at the access token's expiry (the next refresh narrows the grant too)."""
        store = self._auth.store
        if claims.grant_id is None:  # client_credentials: the client itself must still exist
            client = await store.get_client(claims.client_id)
            if client is None:
                raise InvalidToken("the client of this token no longer exists")
            if client.source != "operator":  # a dynamically registered one, as older versions allowed
                raise InvalidToken("tokens without a user are only for clients an operator creates")
            return None, claims.scopes
        if not await store.family_is_live(claims.grant_id):
            raise InvalidToken("the grant behind this token was revoked")
        user = await store.get_user(claims.subject)
        if user is None:
            raise InvalidToken("the user of this token no longer exists")
        return user.username, roles.limit(claims.scopes, roles.grantable_by(self._auth.config, user))

    def _remember(self, token: str, entry: _Entry) -> None:
        self._cache[token] = entry
        self._cache.move_to_end(token)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
