"""A `private_key_jwt` client's public keys (RFC 7523 §2.2, RFC 7591 §2 `jwks` / `jwks_uri`):
checked when a client registers, and fetched from `jwks_uri` through the CIMD fetcher (the
same SSRF guard, size and time bounds: oauth/cimd/fetching.py), kept by HTTP caching rules.

    registration / CIMD document ──> validate_key_metadata: one of jwks | jwks_uri, public keys only
    client assertion ──> ClientKeys.key_for(client, kid) ──> jwks (stored) | jwks_uri (cache → fetch)
                                                            an unknown kid refetches at most every 10 s
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from authgate.errors import FetchError, InvalidClientMetadata
from authgate.oauth.cimd.caching import cache_seconds
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.store.models import Client

if TYPE_CHECKING:
    from authgate.oauth.cimd.fetching import DnsResolver, PinnedFetcher

# RFC 8725 §3.1/§3.2: asymmetric algorithms only (no `none`, no HS*: a public key is no MAC secret)
# Advertised: asymmetric, fully specified (RFC 9864: `Ed25519`, not the deprecated polymorphic
# `EdDSA`). Accepted: those and `EdDSA`, which existing clients and IdPs still send.
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "Ed25519")
ACCEPTED_SIGNING_ALGS = (*SIGNING_ALGS, "EdDSA")
MAX_KEYS = 10
MAX_URI = 2048
REFETCH_AFTER = 10.0  # an unknown kid refetches a jwks_uri at most this often (key rotation)
_PUBLIC_KTY = frozenset({"RSA", "EC", "OKP"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def parse_key_set(jwks: Any, where: str) -> KeySet:
    """A JWK Set of at most MAX_KEYS public asymmetric keys (RFC 7517 §5); InvalidClientMetadata otherwise."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS:
        raise InvalidClientMetadata(f"{where} must be a JWK Set with 1 to {MAX_KEYS} keys")
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in _PUBLIC_KTY:
            raise InvalidClientMetadata(f"{where}: every key must be an RSA, EC or OKP public key")
        if _PRIVATE_MEMBERS & key.keys():
            raise InvalidClientMetadata(f"{where}: a key holds private or symmetric key material")
    try:
        return KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidClientMetadata(f"{where}: a key cannot be read ({type(exc).__name__})") from None


def validate_key_metadata(body: dict[str, Any]) -> dict[str, Any]:
    """What a `private_key_jwt` client registers besides its method: exactly one of `jwks` and
    `jwks_uri` (RFC 7591 §2), and `token_endpoint_auth_signing_alg` if given."""
    jwks, uri = body.get("jwks"), body.get("jwks_uri")
    if (jwks is None) == (uri is None):
        raise InvalidClientMetadata("private_key_jwt needs exactly one of jwks and jwks_uri")
    kept: dict[str, Any] = {}
    if jwks is not None:
        parse_key_set(jwks, "jwks")
        kept["jwks"] = {"keys": list(jwks["keys"])}
    else:
        if not isinstance(uri, str) or len(uri) > MAX_URI:
            raise InvalidClientMetadata(f"jwks_uri must be a URL of at most {MAX_URI} characters")
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc or parts.fragment:
            raise InvalidClientMetadata("jwks_uri must be an https URL without user information or fragment")
        kept["jwks_uri"] = uri
    alg = body.get("token_endpoint_auth_signing_alg")
    if alg is not None:
        if alg not in ACCEPTED_SIGNING_ALGS:
            raise InvalidClientMetadata(f"token_endpoint_auth_signing_alg must be one of {', '.join(SIGNING_ALGS)}")
        kept["token_endpoint_auth_signing_alg"] = alg
    return kept


@dataclass(slots=True)
class _Cached:
    keys: KeySet | None
    until: float
    fetched_at: float
    error: str = ""


class ClientKeys:
    """Fetches and caches `jwks_uri` key sets. One per process; `aclose()` on shutdown."""

    def __init__(
        self, policy: CimdPolicy, *, clock: Callable[[], float] = time.time,
        ssl_context: ssl.SSLContext | None = None, resolver: DnsResolver | None = None,
    ) -> None:  # fmt: skip
        self._policy = policy
        self._clock = clock
        self._ssl_context = ssl_context
        self._dns = resolver
        self._pinned: PinnedFetcher | None = None  # made on the first fetch: httpx loads then
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key_set(self, client: Client, *, refresh: bool = False) -> KeySet:
        """The client's keys: its registered `jwks`, else its `jwks_uri`'s (cached; `refresh`
        refetches unless fetched within REFETCH_AFTER). Raises FetchError or InvalidClientMetadata."""
        jwks = client.metadata.get("jwks")
        if jwks is not None:
            return parse_key_set(jwks, "the client's jwks")
        uri = client.metadata.get("jwks_uri")
        if not isinstance(uri, str):
            raise InvalidClientMetadata("the client has neither jwks nor jwks_uri")
        return await self.uri_key_set(uri, refresh=refresh)

    async def uri_key_set(self, uri: str, *, refresh: bool = False) -> KeySet:
        """The key set at `uri` (a client's jwks_uri, or a trusted issuer's: oauth/jwt_bearer.py),
        cached as key_set says."""
        lock = self._locks.setdefault(uri, asyncio.Lock())
        async with lock:  # concurrent assertions of one client share one fetch
            now = self._clock()
            cached = self._cache.get(uri)
            stale = cached is None or cached.until <= now
            if refresh and cached is not None and now - cached.fetched_at >= REFETCH_AFTER:
                stale = True
            if stale:
                cached = await self._load(uri, now)
        assert cached is not None
        if cached.keys is None:
            raise FetchError(cached.error)
        return cached.keys

    async def _load(self, uri: str, now: float) -> _Cached:
        try:
            document, headers = await self._fetcher().fetch(uri, what="jwks_uri")
            keys = parse_key_set(document, f"jwks_uri {uri[:200]}")
            entry = _Cached(keys, now + cache_seconds(headers, now, self._policy), now)
        except (FetchError, InvalidClientMetadata) as exc:
            entry = _Cached(None, now + self._policy.negative_cache_seconds, now, str(exc))
        if len(self._cache) >= self._policy.max_cache_entries and uri not in self._cache:
            oldest = min(self._cache, key=lambda k: self._cache[k].fetched_at)
            del self._cache[oldest]
            self._locks.pop(oldest, None)
        self._cache[uri] = entry
        return entry

    def _fetcher(self) -> PinnedFetcher:
        if self._pinned is None:
            from authgate.oauth.cimd.fetching import PinnedFetcher, system_dns

            self._pinned = PinnedFetcher(self._policy, self._dns or system_dns, self._ssl_context)
        return self._pinned

    async def aclose(self) -> None:
        if self._pinned is not None:
            await self._pinned.aclose()
