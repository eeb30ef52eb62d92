"""RFC 7662 token introspection, for identity providers that issue opaque access tokens.

authgate authenticates as a client of the IdP (RFC 7662 §2.1, `client_secret_basic`). Answers
are cached for a short time, keyed by a hash of the token (never the token itself), so a
burst of MCP requests costs one round trip; a revoked token stops working within that time.
An IdP that cannot be asked is *temporarily unavailable* (503), not a reason to send the
client back to sign in.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from authgate.errors import InvalidToken, TemporarilyUnavailable, Unreachable
from authgate.guard.identity import Identity
from authgate.httpx_errors import translated
from authgate.idp.claims import TokenPolicy, identity_from_claims

log = logging.getLogger("authgate.idp")

RETRY_AFTER = 5


@dataclass(frozen=True, slots=True)
class IntrospectionClient:
    endpoint: str
    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class _Answer:
    identity: Identity | None  # None: inactive or refused
    reason: str
    until: float


class IntrospectionVerifier:
    def __init__(
        self,
        client: IntrospectionClient,
        policy: TokenPolicy,
        http: httpx.AsyncClient,
        *,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        max_entries: int = 50_000,
    ) -> None:
        self._client = client
        self._policy = policy
        self._http = http
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._max = max_entries
        self._cache: OrderedDict[str, _Answer] = OrderedDict()

    async def verify(self, token: str) -> Identity:
        now = self._clock()
        key = hashlib.sha256(token.encode()).hexdigest()
        answer = self._cache.get(key)
        if answer is None or answer.until < now:
            answer = await self._ask(token, now)
            self._cache[key] = answer
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        if answer.identity is None:
            raise InvalidToken(answer.reason)
        if answer.identity.expires_at + self._policy.leeway < now:
            raise InvalidToken("token has expired")
        return answer.identity

    async def _ask(self, token: str, now: float) -> _Answer:
        c = self._client
        try:
            with translated(f"POST {c.endpoint}"):
                response = await self._http.post(
                    c.endpoint,
                    data={"token": token, "token_type_hint": "access_token"},
                    auth=(c.client_id, c.client_secret),
                    headers={"Accept": "application/json"},
                )
        except Unreachable as exc:
            raise TemporarilyUnavailable(
                f"the introspection endpoint is unreachable ({exc.kind})", retry_after=RETRY_AFTER
            ) from None
        if response.status_code != 200:
            # Our own credentials refused, or the IdP failing: either way not the caller's fault.
            log.error(
                "introspection at %s answered HTTP %s: check introspection_client_id/secret",
                c.endpoint,
                response.status_code,
            )
            raise TemporarilyUnavailable(
                f"the introspection endpoint answered HTTP {response.status_code}", retry_after=RETRY_AFTER
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TemporarilyUnavailable("the introspection endpoint did not answer JSON", retry_after=RETRY_AFTER)
        return self._judge(body, now)

    def _judge(self, body: dict[str, object], now: float) -> _Answer:
        until = now + self._cache_seconds
        if body.get("active") is not True:  # RFC 7662 §2.2: nothing else is meaningful then
            return _Answer(None, "token is not active (revoked, expired or unknown)", until)
        if body.get("token_type") not in (None, "access_token", "Bearer", "bearer"):
            return _Answer(None, f"a {body.get('token_type')} is not an access token", until)
        claims = dict(body)
        claims.setdefault("iss", self._policy.issuer)  # §2.2: `iss` is optional in the answer
        if "sub" not in claims and isinstance(claims.get("client_id"), str):
            claims["sub"] = claims["client_id"]  # a client_credentials token: the client is the subject
        try:
            identity = identity_from_claims(claims, self._policy, now)
        except InvalidToken as exc:
            return _Answer(None, exc.description, until)
        return _Answer(identity, "", min(until, identity.expires_at))
