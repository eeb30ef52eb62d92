"""The upstream grant check inside one process: the real token endpoint core (`grants.token`),
the real SQLite store and vault, and the real `UpstreamClient` talking to a scripted upstream
token endpoint (httpx.MockTransport), so every answer an IdP can give is tried — including
the ones oidc-provider cannot be made to give (HTTP 5xx, 429, GitHub's 200 with an error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate.config.settings import load_settings
from authgate.errors import InvalidGrant, OAuthError, ServerError, TemporarilyUnavailable
from authgate.idp.proxy.grant_check import UpstreamGrantCheck
from authgate.idp.proxy.identity import UpstreamIdentity
from authgate.idp.proxy.presets import UpstreamIdp
from authgate.idp.proxy.upstream_idp import UpstreamClient
from authgate.idp.proxy.vault import UpstreamVault
from authgate.oauth import grants, registration
from authgate.oauth.authority import Authority
from authgate.oauth.opaque import digest
from authgate.server.runtime import Runtime, open_runtime
from authgate.store.models import RefreshFamily, RefreshToken
from support import requirements as req

USER = "https://idp.test|alice"
TOKEN_URL = "https://idp.test/token"
Answer = Callable[[httpx.Request], Awaitable[httpx.Response]]


@dataclass
class Rig:
    auth: Authority
    vault: UpstreamVault
    client_id: str
    refresh_token: str
    family_id: str
    answer: Answer | None = None  # the upstream token endpoint's next answers
    calls: list[dict[str, str]] = field(default_factory=list)

    async def refresh(self, refresh_token: str | None = None) -> dict[str, Any]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token or self.refresh_token,
            "client_id": self.client_id,
        }
        return await grants.token(self.auth, form, [], None)

    async def stored(self) -> dict[str, Any]:
        data = await self.vault.tokens(USER)
        assert data is not None
        return data

    async def revoked(self) -> bool:
        family = await self.auth.store.get_family(self.family_id)
        return family is not None and family.revoked_at is not None


def answer(status: int, body: dict[str, Any], delay: float = 0.0) -> Answer:
    async def respond(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(delay)
        return httpx.Response(status, json=body)

    return respond


async def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = load_settings(None, public_url="http://127.0.0.1:9", data_dir=tmp_path)
    rt = await open_runtime(settings, create_first_user=False)
    try:
        yield rt
    finally:
        await rt.close()


@pytest.fixture
async def rig(runtime: Runtime) -> AsyncIterator[Rig]:
    """What routes.proxy_mode.open_proxy_flow installs, over a scripted upstream; alice signed in
    upstream (tokens as given by each test) and holds an authgate refresh token."""
    assert runtime.auth.hooks.refresh_check is None  # embedded mode: nothing installed
    store = runtime.auth.store
    vault = UpstreamVault(runtime.stores.upstream_tokens, b"k" * 32, "oidc")
    upstream = UpstreamIdp(
        name="oidc",
        kind="oidc",
        issuer="https://idp.test",
        authorize_url="https://idp.test/auth",
        token_url=TOKEN_URL,
        userinfo_url=None,
        scopes=("openid",),
        token_auth="basic",
        extra_params={},
    )
    now = time.time()
    client, _ = registration.register(
        {"client_name": "t", "redirect_uris": ["http://127.0.0.1:1/cb"], "token_endpoint_auth_method": "none"}, now
    )
    await store.add_client(client)
    rig = Rig(runtime.auth, vault, client.client_id, "agr_first", "fam-1")

    async def upstream_token_endpoint(request: httpx.Request) -> httpx.Response:
        rig.calls.append(dict(httpx.QueryParams(request.content.decode())))
        assert rig.answer is not None, "the upstream was called"
        return await rig.answer(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream_token_endpoint)) as http:
        runtime.auth.hooks.refresh_check = UpstreamGrantCheck(
            vault, UpstreamClient(runtime.settings, upstream, http), upstream.name
        )
        await vault.save(
            UpstreamIdentity(USER, "alice"), {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 3600}, now
        )
        await store.create_family(
            RefreshFamily(rig.family_id, client.client_id, USER, ("mcp",), runtime.auth.resources, now),
            RefreshToken(digest(rig.refresh_token), rig.family_id, now, now + 3600),
        )
        yield rig
        runtime.auth.hooks.refresh_check = None


async def _upstream_tokens(rig: Rig, tokens: dict[str, Any], *, age: float = 0.0) -> None:
    await rig.vault.save(UpstreamIdentity(USER, "alice"), tokens, time.time() - age)


async def test_a_valid_upstream_token_costs_no_upstream_call(rig: Rig) -> None:
    body = await rig.refresh()
    await rig.refresh(body["refresh_token"])
    assert rig.calls == [] and (await rig.stored())["access_token"] == "at-1"


@pytest.mark.requirement(req.RFC9700_4_14_2_ONE_SUCCESSOR)
async def test_concurrent_refreshes_share_one_upstream_refresh_and_one_successor(rig: Rig) -> None:
    await _upstream_tokens(rig, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 30})
    rig.answer = answer(200, {"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600}, delay=0.3)
    first, second, third = await asyncio.gather(rig.refresh(), rig.refresh(), rig.refresh())
    assert first == second == third
    assert [c["refresh_token"] for c in rig.calls] == ["rt-1"]  # once, though three asked
    assert (await rig.stored())["access_token"] == "at-2"


@pytest.mark.parametrize(
    "answered, kept",
    [
        ({"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 3600}, "rt-2"),  # rotated upstream
        ({"access_token": "at-2", "expires_in": 3600}, "rt-1"),  # not rotated: the old one is kept
    ],
)
async def test_an_expiring_upstream_token_is_renewed_and_sealed(rig: Rig, answered: dict[str, Any], kept: str) -> None:
    await _upstream_tokens(rig, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 10}, age=20)
    rig.answer = answer(200, answered)
    await rig.refresh()
    stored = await rig.stored()
    assert (stored["access_token"], stored["refresh_token"]) == ("at-2", kept)
    assert stored["expires_at"] > time.time() + 3000
    assert rig.calls == [{"grant_type": "refresh_token", "refresh_token": "rt-1"}]


@pytest.mark.requirement(req.RFC6749_5_2_INVALID_GRANT)
@pytest.mark.parametrize(
    "status, body",
    [
        (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),  # Google
        (200, {"error": "bad_refresh_token"}),  # GitHub apps with expiring user tokens: 200 with an error
    ],
)
async def test_an_ended_upstream_grant_revokes_the_family(rig: Rig, status: int, body: dict[str, Any]) -> None:
    await _upstream_tokens(rig, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 1}, age=5)
    rig.answer = answer(status, body)
    with pytest.raises(InvalidGrant, match="has ended.*sign in again"):
        await rig.refresh()
    assert await rig.revoked()
    with pytest.raises(InvalidGrant, match="revoked"):
        await rig.refresh()
    assert len(rig.calls) == 1


@pytest.mark.parametrize(
    "failure, error",
    [
        (unreachable, TemporarilyUnavailable),
        (answer(503, {"error": "temporarily_unavailable"}), TemporarilyUnavailable),
        (answer(502, {}), TemporarilyUnavailable),
        (answer(429, {"error": "slow_down"}), TemporarilyUnavailable),
        (answer(401, {"error": "invalid_client"}), ServerError),  # authgate's own secret: the operator's to fix
    ],
)
async def test_an_upstream_outage_or_misconfiguration_revokes_nothing(
    rig: Rig,
    failure: Answer,
    error: type[OAuthError],
) -> None:
    await _upstream_tokens(rig, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 1}, age=5)
    rig.answer = failure
    with pytest.raises(error) as caught:
        await rig.refresh()
    if isinstance(caught.value, TemporarilyUnavailable):
        assert caught.value.status == 503 and caught.value.retry_after == 30
    assert not await rig.revoked()
    rig.answer = answer(200, {"access_token": "at-2", "expires_in": 3600})  # back
    assert (await rig.refresh())["refresh_token"]  # the same authgate token was never rotated


async def test_an_expired_upstream_token_without_refresh_token_keeps_the_grant(
    rig: Rig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _upstream_tokens(rig, {"access_token": "at-1", "expires_in": 1}, age=3600)  # Google, no offline access
    with caplog.at_level(logging.DEBUG, logger="authgate.proxy"):
        assert (await rig.refresh())["refresh_token"]
    assert rig.calls == [] and not await rig.revoked()
    assert any(r.levelno == logging.DEBUG and "no refresh token" in r.getMessage() for r in caplog.records)


async def test_a_refusal_after_another_replica_renewed_is_not_an_ended_grant(rig: Rig) -> None:
    await _upstream_tokens(rig, {"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 1}, age=5)

    async def other_replica_won(_request: httpx.Request) -> httpx.Response:
        await _upstream_tokens(rig, {"access_token": "at-9", "refresh_token": "rt-9", "expires_in": 3600})
        return httpx.Response(400, json={"error": "invalid_grant"})  # rt-1 was used up by the other replica

    rig.answer = other_replica_won
    assert (await rig.refresh())["refresh_token"]
    assert not await rig.revoked() and (await rig.stored())["access_token"] == "at-9"
