"""The identity provider's signing keys, cached.

Keys come from the `jwks_uri` of the IdP's discovery document. A token naming a `kid` not in
the cache triggers a refetch (the IdP rotated), at most once every `min_refetch` seconds so
invented `kid`s cannot turn authgate into a load generator against the IdP. A failed fetch
keeps the keys already held: tokens signed with them go on working while the IdP is down.
Only when no key was ever obtained does verification fail as *temporarily unavailable* (the
guard answers 503 with Retry-After, never a 401 that would send clients to sign in again).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from authgate.errors import FetchError, InvalidToken, TemporarilyUnavailable
from authgate.idp.discovery import discover, fetch_json

log = logging.getLogger("authgate.idp")

Key = Any  # a joserfc public key (RSAKey | ECKey | OKPKey)

_KTY_FOR_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
FAILED_RETRY_SECONDS = 5.0  # after a failed fetch, try again this soon (bounded by min_refetch)


def _kty(alg: str) -> str:
    return _KTY_FOR_ALG.get(alg[:2], "?")


def _compatible(jwk: dict[str, Any], alg: str) -> bool:
    """RFC 7517 §4: a key usable to verify `alg` (type, `use`, `key_ops` and `alg` agree)."""
    if jwk.get("kty") != _kty(alg) or jwk.get("use", "sig") != "sig":
        return False
    if "key_ops" in jwk and "verify" not in jwk["key_ops"]:
        return False
    return bool(jwk.get("alg", alg) == alg)


class JwksCache:
    def __init__(
        self,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        min_refetch: float = 30.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._http = http
        self._min_refetch = min_refetch
        self._max_age = max_age
        self._clock = clock
        self._jwks_uri: str | None = None
        self._keys: list[tuple[dict[str, Any], Key]] | None = None  # None: never fetched
        self._fetched_at = -math.inf
        self._attempted_at = -math.inf
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> bool:
        return self._keys is not None

    @property
    def last_error(self) -> str | None:
        return self._last_error

    async def key(self, kid: str | None, alg: str) -> Key:
        """The key to verify a token with header (`kid`, `alg`): from the cache, or after a
        refetch when unknown or stale. InvalidToken: no such key; TemporarilyUnavailable: the
        IdP could not be asked and no cached key fits."""
        found = self._find(kid, alg)
        stale = self._clock() - self._fetched_at > self._max_age
        if found is not None and not stale:
            return found
        await self.refresh()
        found = self._find(kid, alg) if self._keys is not None else found
        if found is not None:
            return found
        if self._keys is None or self._last_error is not None:
            # the details (an address, an errno) go to the log, not to the caller
            raise TemporarilyUnavailable(
                f"the signing keys of {self.issuer} cannot be fetched right now; retry later",
                retry_after=self.retry_after(),
            )
        raise InvalidToken("token was signed by a key the identity provider does not publish")

    def retry_after(self) -> int:
        wait = self._next_attempt_at() - self._clock()
        return max(1, math.ceil(wait))

    def _next_attempt_at(self) -> float:
        gap = self._min_refetch if self._last_error is None else min(self._min_refetch, FAILED_RETRY_SECONDS)
        return self._attempted_at + gap

    async def refresh(self, *, quiet: bool = False) -> bool:
        """Fetch the JWKS unless a fetch happened too recently; True if the keys are current.
        `quiet`: no warning of a failure (the caller reports it: the start-up check)."""
        async with self._lock:  # concurrent unknown-kid tokens share one fetch
            if self._clock() < self._next_attempt_at():
                return self._last_error is None and self._keys is not None
            self._attempted_at = self._clock()
            try:
                self._keys = await self._fetch()
            except FetchError as exc:
                self._last_error = str(exc)
                if quiet:
                    return False
                log.warning(
                    "JWKS of %s not refreshed (%s); %s",
                    self.issuer,
                    exc,
                    "keeping the cached keys" if self._keys is not None else "no key cached yet",
                )
                return False
            self._fetched_at = self._clock()
            self._last_error = None
            return True

    async def _fetch(self) -> list[tuple[dict[str, Any], Key]]:
        if self._jwks_uri is None:
            document = (await discover(self._http, self.issuer)).document or {}
            uri = document.get("jwks_uri")
            if not isinstance(uri, str):
                raise FetchError(f"the discovery document of {self.issuer} has no jwks_uri")
            self._jwks_uri = uri
        status, body, error = await fetch_json(self._http, self._jwks_uri)
        if body is None or not isinstance(body.get("keys"), list):
            raise FetchError(f"JWKS at {self._jwks_uri}: {error or 'no keys array'}")
        keys = []
        for jwk in body["keys"]:
            if not isinstance(jwk, dict):
                continue
            public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth", "k")}
            try:
                keys.append((public, JWKRegistry.import_key(public)))
            except (JoseError, ValueError, TypeError):
                log.info("ignoring an unusable key (kid %r) in the JWKS of %s", jwk.get("kid"), self.issuer)
        return keys

    def _find(self, kid: str | None, alg: str) -> Key | None:
        candidates = [(jwk, key) for jwk, key in (self._keys or []) if _compatible(jwk, alg)]
        if kid is not None:
            return next((key for jwk, key in candidates if jwk.get("kid") == kid), None)
        # RFC 7515 §4.1.4: without `kid`, only an unambiguous key will do
        return candidates[0][1] if len(candidates) == 1 else None
