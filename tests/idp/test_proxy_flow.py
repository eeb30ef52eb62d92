"""Proxy mode (seed 004) against a real upstream: oidc-provider 9.13.3 with DCR off and one
static confidential client, authgate's. The `mcp` 2.3.0 SDK client registers at authgate (DCR),
the person consents at authgate *before* any redirect to the upstream, signs in there, and the
client gets authgate's own tokens; `whoami` shows the mapped upstream identity.

Also: upstream tokens are sealed at rest (the raw database bytes never hold them), clients and
grants survive a SIGKILL (refresh works after the restart), and a person outside the allow-list
is refused at the upstream callback: the MCP client gets access_denied and no code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthToken
from mcp_types import TextContent
from proxy_harness import SECRET_KEY, ProxyBrowser, proxy_gate

from authgate.oauth.sealing import derive_key, unseal
from support import requirements as req
from support.authgate_server import AuthgateServer
from support.idp_peers import PROXY_ID, PROXY_SECRET, OidcProvider, no_dcr_upstream
from support.ports import free_port
from support.sdk_oauth import MemoryTokenStorage, public_client

REDIRECT_URI = "http://127.0.0.1:38973/oauth/callback"  # never listened on
FLOW_TIMEOUT = 60.0


def _start(tmp_path: Path, idp: Callable[..., OidcProvider], **settings: Any) -> tuple[AuthgateServer, OidcProvider]:
    gate = proxy_gate(
        tmp_path / "gate", idp_client_id=PROXY_ID, idp_client_secret=PROXY_SECRET, idp_preset="oidc", **settings
    )
    provider = idp(no_dcr_upstream(free_port(), f"{gate.url}/upstream/callback"))
    gate.env["AUTHGATE_IDP_ISSUER"] = provider.issuer
    gate.start()
    return gate, provider


class SdkBrowser:
    def __init__(self, account: str) -> None:
        self.browser = ProxyBrowser(account)
        self.params: dict[str, str] = {}

    async def redirect_handler(self, url: str) -> None:
        self.params = await anyio.to_thread.run_sync(self.browser.authorize, url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert "code" in self.params, f"authorization failed: {self.params}"
        return AuthorizationCodeResult(
            code=self.params["code"], state=self.params.get("state"), iss=self.params.get("iss")
        )


async def _whoami(gate: AuthgateServer, storage: MemoryTokenStorage, browser: SdkBrowser) -> dict[str, Any]:
    provider = public_client(
        gate.mcp_url, "sdk proxy-mode test", REDIRECT_URI, storage, browser.redirect_handler, browser.callback_handler
    )
    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0)) as http:
        with anyio.fail_after(FLOW_TIMEOUT):
            async with Client(streamable_http_client(gate.mcp_url, http_client=http), mode="legacy") as client:
                result = await client.call_tool("whoami", {})
    assert not result.is_error, result.content
    payload: dict[str, Any] = json.loads(next(c.text for c in result.content if isinstance(c, TextContent)))
    return payload


def _stored_upstream_tokens(gate: AuthgateServer, user_id: str) -> tuple[dict[str, Any], bytes]:
    """What the vault holds (opened with the test's own secret_key), and the raw database bytes."""
    db = gate.data_dir / "authgate.db"
    with sqlite3.connect(db) as conn:
        (blob,) = conn.execute("SELECT sealed_tokens FROM upstream_tokens WHERE user_id = ?", (user_id,)).fetchone()
    opened = json.loads(unseal(derive_key(SECRET_KEY.encode(), "upstream-tokens"), blob, user_id.encode()))
    raw = b"".join(p.read_bytes() for p in gate.data_dir.glob("authgate.db*"))
    return opened, raw


@pytest.mark.requirement(req.MCP_2025_11_25_CONFUSED_DEPUTY)
@pytest.mark.requirement(req.RFC7591_3_REGISTRATION)
async def test_sdk_client_signs_in_through_the_proxy_and_survives_a_sigkill(
    tmp_path: Path,
    idp: Callable[..., OidcProvider],
) -> None:
    gate, provider = _start(tmp_path, idp)
    browser, storage = SdkBrowser("alice"), MemoryTokenStorage()
    try:
        who = await _whoami(gate, storage, browser)
        subject = f"{provider.issuer}|alice"
        assert who["authenticated"] is True and who["subject"] == subject and who["username"] == "alice"
        assert storage.client_info is not None and who["client_id"] == storage.client_info.client_id
        # consent came first: the page named the upstream, and the browser met the upstream's
        # authorization endpoint only after POST /consent
        log = browser.browser.log
        consent_at = log.index((urlsplit(gate.url).netloc, "POST", "/consent", 303))
        upstream_host = urlsplit(provider.issuer).netloc
        assert all(host != upstream_host for host, *_ in log[:consent_at])
        assert log[consent_at + 1][:3] == (upstream_host, "GET", "/auth")
        assert "sign in at" in browser.browser.consent_page and upstream_host not in browser.browser.consent_page
        upstream_query = dict(p.split("=", 1) for p in urlsplit(browser.browser.upstream_url).query.split("&"))
        assert upstream_query["client_id"] == PROXY_ID and upstream_query["code_challenge_method"] == "S256"

        # the upstream tokens: sealed at rest, real (the upstream accepts them), never the client's
        opened, raw = _stored_upstream_tokens(gate, subject)
        assert opened["access_token"].encode() not in raw and opened["refresh_token"].encode() not in raw
        assert storage.tokens is not None and storage.tokens.access_token != opened["access_token"]
        userinfo = httpx.get(
            provider.discovery()["userinfo_endpoint"],
            timeout=10.0,
            headers={"Authorization": f"Bearer {opened['access_token']}"},
        )
        assert userinfo.status_code == 200 and userinfo.json()["sub"] == "alice"

        # SIGKILL, restart: the client and its grant survived; refresh works
        gate.kill(signal.SIGKILL)
        gate.start()
        assert storage.tokens.refresh_token
        r = httpx.post(
            f"{gate.url}/token",
            timeout=10.0,
            data={
                "grant_type": "refresh_token",
                "refresh_token": storage.tokens.refresh_token,
                "client_id": storage.client_info.client_id,
            },
        )
        assert r.status_code == 200, r.text
        storage.tokens = OAuthToken(**r.json())
        again = await _whoami(gate, storage, SdkBrowser("nobody"))  # no new sign-in needed
        assert again["subject"] == subject and again["client_id"] == who["client_id"]
    finally:
        browser.browser.close()
        gate.stop()


def _register_and_authorize_url(gate: AuthgateServer) -> tuple[str, str]:
    r = httpx.post(
        f"{gate.url}/register",
        timeout=10.0,
        json={"client_name": "allow-list test", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"},
    )
    assert r.status_code == 201, r.text
    client_id = r.json()["client_id"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(secrets.token_bytes(32)).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "state": "s-123",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return client_id, f"{gate.url}/authorize?{query}"


@pytest.mark.requirement(req.RFC6749_4_1_2_1_ACCESS_DENIED)
async def test_a_user_outside_the_allow_list_is_refused_at_the_callback(
    tmp_path: Path,
    idp: Callable[..., OidcProvider],
) -> None:
    gate, provider = _start(tmp_path, idp, allowed_users=["alice"], allowed_email_domains=["corp.test"])
    browser = ProxyBrowser("mallory")
    try:
        _, url = _register_and_authorize_url(gate)
        params = await anyio.to_thread.run_sync(browser.authorize, url)
        assert params["error"] == "access_denied" and "code" not in params
        assert params["state"] == "s-123" and params["iss"] == gate.url
        assert any(host == urlsplit(provider.issuer).netloc for host, *_ in browser.log)  # refused after sign-in
        with sqlite3.connect(gate.data_dir / "authgate.db") as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM authorization_codes").fetchone() == (0,)
        # the connection timeline (issue 13) names the step and why; written in the background
        failed = _failed_attempts(gate)
        assert [f for f, _ in failed] == ["sign-in"] and failed[0][1].startswith("sign-in refused:"), failed
    finally:
        browser.close()
        gate.stop()


def _failed_attempts(gate: Any) -> list[tuple[str, str]]:
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(gate.data_dir / "authgate.db", timeout=10) as conn:
            rows = conn.execute("SELECT failed_step, reason FROM attempts WHERE failed_step IS NOT NULL").fetchall()
        if rows or time.monotonic() > deadline:
            return [(str(f), str(r)) for f, r in rows]
        time.sleep(0.05)


async def test_denying_consent_never_reaches_the_upstream(tmp_path: Path, idp: Callable[..., OidcProvider]) -> None:
    gate, provider = _start(tmp_path, idp)
    browser = ProxyBrowser("alice", decision="deny")
    try:
        _, url = _register_and_authorize_url(gate)
        params = await anyio.to_thread.run_sync(browser.authorize, url)
        assert params["error"] == "access_denied" and "code" not in params
        assert not any(host == urlsplit(provider.issuer).netloc for host, *_ in browser.log)
    finally:
        browser.close()
        gate.stop()


async def test_a_forged_callback_without_this_browsers_state_is_refused(
    tmp_path: Path,
    idp: Callable[..., OidcProvider],
) -> None:
    gate, _ = _start(tmp_path, idp)
    try:
        r = httpx.get(f"{gate.url}/upstream/callback", params={"code": "x", "state": "y"}, timeout=10.0)
        assert r.status_code == 400 and "not started here" in r.text
    finally:
        gate.stop()
