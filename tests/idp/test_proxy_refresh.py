"""Proxy mode: an authgate refresh first checks the upstream grant behind it, against the real
upstream (oidc-provider 9.13.3, no DCR, one static client; its access tokens live a few seconds
here so a test can wait for them to expire) and the GitHub stand-in.

Upstream token expired + refresh token held → refreshed at the upstream and sealed again;
upstream grant revoked → invalid_grant and the authgate family revoked; upstream down →
temporarily_unavailable, nothing revoked, the same refresh token works once it is back; GitHub
OAuth app (no refresh token, no expiry) → no call to GitHub at all.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import secrets
import sqlite3
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
import pytest
from proxy_harness import ProxyBrowser, proxy_gate
from proxy_standins import FakeGitHub
from test_proxy_flow import REDIRECT_URI, _stored_upstream_tokens

from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.idp_peers import PROXY_ID, PROXY_SECRET, OidcProvider, no_dcr_upstream
from support.ports import free_port

UPSTREAM_TTL = 5  # seconds an upstream access token lives
EXPIRY_WAIT = 20.0


def _start(
    tmp_path: Path, idp: Callable[..., OidcProvider], *, persist: bool = False
) -> tuple[AuthgateServer, OidcProvider]:
    gate = proxy_gate(
        tmp_path / "gate",
        idp_client_id=PROXY_ID,
        idp_client_secret=PROXY_SECRET,
        idp_preset="oidc",
        token_cache_seconds=0,
    )  # the guard re-checks the grant of every token
    shape = dataclasses.replace(
        no_dcr_upstream(free_port(), f"{gate.url}/upstream/callback"),
        access_token_ttl=UPSTREAM_TTL,
        store_file=str(tmp_path / "upstream-state.json") if persist else None,
    )
    provider = idp(shape)
    gate.env["AUTHGATE_IDP_ISSUER"] = provider.issuer
    gate.start()
    return gate, provider


async def _sign_in(gate: AuthgateServer, account: str) -> tuple[str, dict[str, Any]]:
    """An MCP client (public, DCR) signs `account` in through the upstream: its client_id and
    authgate's token response."""
    r = httpx.post(
        f"{gate.url}/register",
        timeout=10.0,
        json={
            "client_name": "upstream refresh test",
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "none",
        },
    )
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "state": "s-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    browser = ProxyBrowser(account)
    try:
        params = await anyio.to_thread.run_sync(browser.authorize, f"{gate.url}/authorize?{query}")
    finally:
        browser.close()
    assert "code" in params, params
    r = httpx.post(
        f"{gate.url}/token",
        timeout=10.0,
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "code_verifier": verifier,
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
        },
    )
    assert r.status_code == 200, r.text
    return client_id, r.json()


def _refresh(gate: AuthgateServer, client_id: str, refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{gate.url}/token",
        timeout=30.0,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
    )


def _wait_until_expired(opened: dict[str, Any]) -> None:
    deadline = time.monotonic() + EXPIRY_WAIT
    while time.time() <= float(opened["expires_at"]) + 0.5:
        assert time.monotonic() < deadline, "the upstream access token did not expire in time"
        time.sleep(0.2)


def _family_revoked(gate: AuthgateServer) -> list[tuple[bool, str | None]]:
    with sqlite3.connect(gate.data_dir / "authgate.db") as conn:
        rows = conn.execute("SELECT revoked_at IS NOT NULL, revoked_reason FROM refresh_families").fetchall()
    return [(bool(revoked), reason) for revoked, reason in rows]


def _mcp_status(gate: AuthgateServer, access_token: str) -> int:
    r = httpx.post(
        gate.mcp_url,
        timeout=10.0,
        headers={
            "Authorization": f"Bearer {access_token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
    )
    return r.status_code


@pytest.mark.requirement(req.OAUTH21_4_3_1_REFRESH_ROTATES)
async def test_an_expired_upstream_token_is_refreshed_at_the_upstream_before_authgate_rotates(
    tmp_path: Path,
    idp: Callable[..., OidcProvider],
) -> None:
    gate, provider = _start(tmp_path, idp)
    try:
        client_id, tokens = await _sign_in(gate, "alice")
        subject = f"{provider.issuer}|alice"
        before, _ = _stored_upstream_tokens(gate, subject)
        assert "refresh_token" in before
        _wait_until_expired(before)

        # two concurrent refreshes of one authgate token: one upstream refresh, one successor
        first, second = await asyncio.gather(
            *(anyio.to_thread.run_sync(_refresh, gate, client_id, tokens["refresh_token"]) for _ in range(2))
        )
        assert first.status_code == second.status_code == 200, (first.text, second.text)
        assert first.json()["refresh_token"] == second.json()["refresh_token"] != tokens["refresh_token"]

        after, raw = _stored_upstream_tokens(gate, subject)
        assert after["access_token"] != before["access_token"] and after["expires_at"] > time.time()
        assert after["refresh_token"]  # the upstream's new one, or the old one kept when it did not rotate
        for secret in (after["access_token"], after["refresh_token"], before["access_token"]):
            assert secret.encode() not in raw  # sealed at rest
        userinfo = httpx.get(
            provider.discovery()["userinfo_endpoint"],
            timeout=10.0,
            headers={"Authorization": f"Bearer {after['access_token']}"},
        )
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == "alice"  # a real upstream token
        assert _mcp_status(gate, first.json()["access_token"]) == 200
    finally:
        gate.stop()


@pytest.mark.requirement(req.RFC6749_5_2_INVALID_GRANT)
@pytest.mark.requirement(req.RFC9700_4_14_2_REUSE_REVOKES_FAMILY)
async def test_a_grant_revoked_at_the_upstream_ends_the_authgate_grant(
    tmp_path: Path,
    idp: Callable[..., OidcProvider],
) -> None:
    gate, provider = _start(tmp_path, idp)
    try:
        client_id, tokens = await _sign_in(gate, "alice")
        opened, _ = _stored_upstream_tokens(gate, f"{provider.issuer}|alice")
        assert _mcp_status(gate, tokens["access_token"]) == 200
        # the person removes authgate at the IdP: RFC 7009 revocation of its refresh token ends the grant
        r = httpx.post(
            provider.discovery()["revocation_endpoint"],
            timeout=10.0,
            auth=(PROXY_ID, PROXY_SECRET),
            data={"token": opened["refresh_token"], "token_type_hint": "refresh_token"},
        )
        assert r.status_code == 200, r.text
        _wait_until_expired(opened)

        r = _refresh(gate, client_id, tokens["refresh_token"])
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
        assert "has ended" in r.json()["error_description"] and "sign in again" in r.json()["error_description"]
        [(revoked, reason)] = _family_revoked(gate)
        assert revoked and reason is not None and "has ended" in reason
        assert _mcp_status(gate, tokens["access_token"]) == 401  # its access token is dead too
        again = _refresh(gate, client_id, tokens["refresh_token"])
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    finally:
        gate.stop()


async def test_an_unreachable_upstream_is_a_retry_later_and_revokes_nothing(
    tmp_path: Path,
    idp: Callable[..., OidcProvider],
) -> None:
    gate, provider = _start(tmp_path, idp, persist=True)
    try:
        client_id, tokens = await _sign_in(gate, "alice")
        subject = f"{provider.issuer}|alice"
        before, _ = _stored_upstream_tokens(gate, subject)
        _wait_until_expired(before)
        provider.stop()

        r = _refresh(gate, client_id, tokens["refresh_token"])
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable", r.text
        assert int(r.headers["retry-after"]) > 0  # RFC 9110 §10.2.3: when to come back
        assert "stays valid" in r.json()["error_description"]
        assert _family_revoked(gate) == [(False, None)]
        assert _stored_upstream_tokens(gate, subject)[0] == before

        provider.start()  # back, with the grants it had issued
        r = _refresh(gate, client_id, tokens["refresh_token"])  # the very same authgate refresh token
        assert r.status_code == 200, r.text
        assert _stored_upstream_tokens(gate, subject)[0]["access_token"] != before["access_token"]
        assert _mcp_status(gate, r.json()["access_token"]) == 200
    finally:
        gate.stop()


async def test_github_without_refresh_token_or_expiry_refreshes_with_no_call_to_github(tmp_path: Path) -> None:
    client_id, secret = "Iv1.standin", "standin-secret-" + "g" * 24
    github = FakeGitHub(client_id, secret)
    with ExitStack() as stack:
        port = free_port()
        github.url = base = stack.enter_context(serve_asgi_in_thread(github.app(), port))
        gate = proxy_gate(
            tmp_path / "gate",
            idp_preset="github",
            idp_client_id=client_id,
            idp_client_secret=secret,
            idp_authorize_url=f"{base}/login/oauth/authorize",
            idp_token_url=f"{base}/login/oauth/access_token",
            idp_userinfo_url=base,
        )
        gate.start()
        stack.callback(gate.stop)
        mcp_client, tokens = await _sign_in(gate, "-")
        stored, _ = _stored_upstream_tokens(gate, "github|4242")
        assert "refresh_token" not in stored and "expires_at" not in stored
        seen = len(github.requests)

        for _ in range(2):
            r = _refresh(gate, mcp_client, tokens["refresh_token"])
            assert r.status_code == 200, r.text
            tokens = r.json()
        assert github.requests[seen:] == []  # neither the token endpoint nor the API was asked
        assert _stored_upstream_tokens(gate, "github|4242")[0] == stored
