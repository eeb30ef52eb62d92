"""The JWKS cache against the real IdP, on a fake clock: refetches on unknown `kid`s are
rate-limited, cached keys survive an IdP outage, and only a cache that never held a key
reports the IdP as temporarily unavailable.

The Keycloak-like shape (`support.idp_peers.keycloak_like`) is the fast path, without Java: it
stands in for Keycloak's issuer path, endpoint paths and DCR endpoint only — it honours `resource`
instead of an audience mapper, has no registration policies or client scopes, and types its tokens
`at+jwt`. The same things against a real Keycloak: tests/idp/keycloak/test_external_keycloak.py
(Keycloak's own keys).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from authgate.errors import InvalidToken, TemporarilyUnavailable
from authgate.idp.jwks import JwksCache
from support import requirements as req
from support.idp_peers import OidcProvider, keycloak_like
from support.ports import free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.requirement(req.RFC7517_4_5_KID_REFETCH)
async def test_unknown_kids_refetch_at_most_once_per_interval_and_cached_keys_outlive_the_idp(
    idp: Callable[..., OidcProvider],
    mcp_port: int,
) -> None:
    provider = idp(keycloak_like(free_port(), f"http://127.0.0.1:{mcp_port}/mcp"))
    clock, jwks_fetches = FakeClock(), []

    async def count(request: httpx.Request) -> None:
        if request.url.path.endswith("/certs"):
            jwks_fetches.append(clock.now)

    async with httpx.AsyncClient(timeout=5.0, event_hooks={"request": [count]}) as http:
        cache = JwksCache(provider.issuer, http, min_refetch=30.0, max_age=3600.0, clock=clock)
        assert await cache.key("k1", "RS256") is not None
        with pytest.raises(InvalidToken):
            await cache.key("k1", "ES256")  # the key is RSA: no algorithm confusion
        for _ in range(5):
            with pytest.raises(InvalidToken, match="does not publish"):
                await cache.key("invented", "RS256")
        assert len(jwks_fetches) == 1
        clock.now += 31
        with pytest.raises(InvalidToken):
            await cache.key("invented", "RS256")
        assert len(jwks_fetches) == 2  # one refetch per interval, however many unknown kids

        provider.stop()
        clock.now += 31
        assert await cache.key("k1", "RS256") is not None  # known: no fetch needed
        with pytest.raises(TemporarilyUnavailable) as down:
            await cache.key("rotated", "RS256")  # might be real: the IdP cannot be asked
        assert 1 <= down.value.retry_after <= 5
        clock.now += 3601  # stale, the refresh fails: the cached key still verifies
        assert await cache.key("k1", "RS256") is not None
        assert cache.loaded and cache.last_error is not None


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_NO_SIGN_IN_LOOP)
async def test_a_cache_that_never_held_a_key_is_temporarily_unavailable() -> None:
    clock = FakeClock()
    async with httpx.AsyncClient(timeout=2.0) as http:
        cache = JwksCache(f"http://127.0.0.1:{free_port()}/realms/gone", http, min_refetch=30.0, clock=clock)
        with pytest.raises(TemporarilyUnavailable, match="cannot be fetched") as first:
            await cache.key("k1", "RS256")
        clock.now += 2
        with pytest.raises(TemporarilyUnavailable) as second:
            await cache.key("k1", "RS256")  # not retried yet: Retry-After says when
    assert first.value.retry_after == 5 and second.value.retry_after == 3
