"""Proxy mode's connect page: people have no password at authgate, so the page knows the person
from their upstream sign-in in that browser (the sign-in cookie set at /upstream/callback when
connections are configured). A browser that signed in through its MCP client completes the
link; a browser that never signed in is told to sign in through its app first. Two
oidc-providers: the upstream IdP (authgate's static client) and the third-party provider (DCR)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urljoin

import anyio.to_thread
import httpx
import pytest
from proxy_harness import SECRET_KEY, ProxyBrowser, proxy_gate
from test_proxy_refresh import REDIRECT_URI

from authgate.connections import ConnectionBroker, ProviderConfig
from authgate.errors import ConnectionRequired
from authgate.store.sql import sql_stores
from support import requirements as req
from support.idp_peers import PROXY_ID, PROXY_SECRET, IdpUserAgent, OidcProvider, ProviderShape, no_dcr_upstream
from support.ports import free_port


async def _link(database_url: str, public_url: str, issuer: str, user_id: str) -> str:
    stores = sql_stores(database_url)
    await stores.open()
    broker = ConnectionBroker(
        {"api": ProviderConfig("api", issuer=issuer, scopes=("openid",))},
        stores.connections,
        SECRET_KEY.encode(),
        public_url=public_url,
    )
    try:
        await broker.require(user_id, "client-1", "api")
    except ConnectionRequired as asked:
        return asked.url
    finally:
        await broker.aclose()
        await stores.close()
    raise AssertionError("already connected")


@pytest.mark.requirement(req.ISSUE15_CONNECT_PAGE_PROXY_MODE)
async def test_proxy_mode_connects_the_person_signed_in_upstream_in_this_browser(
    tmp_path: Path, idp: Callable[..., OidcProvider]
) -> None:
    api = idp(ProviderShape(port=free_port(), default_resource=None))
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}"
    gate = proxy_gate(
        tmp_path / "gate",
        idp_client_id=PROXY_ID,
        idp_client_secret=PROXY_SECRET,
        idp_preset="oidc",
        database_url=database_url,
        connection_providers={"api": {"issuer": api.issuer, "title": "Team API", "scopes": ["openid"]}},
        outbound_allow_loopback_http=True,
    )
    upstream = idp(no_dcr_upstream(free_port(), f"{gate.url}/upstream/callback"))
    gate.env["AUTHGATE_IDP_ISSUER"] = upstream.issuer
    gate.start()
    try:
        # an MCP client's authorization in this browser: consent, the upstream's sign-in, callback
        browser = ProxyBrowser("alice")
        try:
            await anyio.to_thread.run_sync(browser.authorize, _authorize_url(gate.url))
            stores = sql_stores(database_url)
            await stores.open()
            try:
                alice = next(u for u in await stores.users.list_users() if u.username == "alice")
            finally:
                await stores.close()
            link = await _link(database_url, gate.url, api.issuer, alice.user_id)
            # a browser that never signed in: told to sign in through its app (no password form)
            stranger = httpx.get(link, timeout=10)
            assert stranger.status_code == 401 and 'name="password"' not in stranger.text
            # the signed-in browser: the page, Continue, the provider, the callback
            page = browser.gate.get(link)
            assert page.status_code == 200 and "Team API" in page.text, page.text[:300]
            csrf = browser.gate.cookies.get("authgate_csrf")
            r = browser.gate.post(link, data={"csrf_token": csrf, "decision": "connect"})
            assert r.status_code == 303, r.text[:300]
            agent = IdpUserAgent("alice-at-api")
            try:
                params = await anyio.to_thread.run_sync(agent.authorize, r.headers["location"])
            finally:
                agent.close()
            done = browser.gate.get(urljoin(gate.url, "/connect/callback"), params=params)
            assert done.status_code == 200 and "Connected to" in done.text, done.text[-900:]
        finally:
            browser.close()
        listed = await asyncio.to_thread(gate.cli, "connections", "list", "--json")
        assert [json.loads(line)["provider"] for line in listed.stdout.splitlines()] == ["api"], listed.stderr
    finally:
        gate.stop()


def _authorize_url(base: str) -> str:
    """An MCP client's authorization request (a DCR public client, PKCE), as test_proxy_refresh's."""
    r = httpx.post(
        f"{base}/register",
        timeout=10.0,
        json={"client_name": "connect test", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"},
    )
    assert r.status_code == 201, r.text
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {
        "response_type": "code",
        "client_id": r.json()["client_id"],
        "redirect_uri": REDIRECT_URI,
        "state": "s-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{base}/authorize?{urlencode(query)}"
