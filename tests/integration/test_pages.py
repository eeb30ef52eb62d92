"""The sign-in and consent pages: CSRF, throttling, cookies, CSP, remembered consent, and
what happens to live tokens when a user is removed."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from support.authgate_server import AuthgateServer
from support.headless import AuthorizationResponse, HeadlessUserAgent, Page

CALLBACK = "http://127.0.0.1:53999/cb"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(
        tmp_path_factory.mktemp("pages"),
        extra_env={
            "AUTHGATE_LOGIN_ATTEMPTS_PER_MINUTE": "3",
            "AUTHGATE_TOKEN_CACHE_SECONDS": "1",
            "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000",
        },
    )
    srv.add_user()
    srv.start()
    yield srv
    srv.stop()


def start_url(server: AuthgateServer, client_id: str | None = None) -> tuple[str, str]:
    if client_id is None:
        r = httpx.post(
            server.endpoint("register"), json={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}
        )
        client_id = r.json()["client_id"]
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CALLBACK,
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{server.endpoint('authorize')}?{query}", verifier


def test_login_form_without_the_csrf_token_is_refused(server: AuthgateServer) -> None:
    url, _ = start_url(server)
    with HeadlessUserAgent() as agent:
        page = agent.open(url)
        assert isinstance(page, Page) and page.login_form is not None
        data = page.login_form.values(username=server.username, password=server.password)
        data["csrf_token"] = "forged-" + secrets.token_urlsafe(32)
        result = agent.submit_raw(page.login_form.action, data)
    assert isinstance(result, Page) and result.status == 403


def test_failed_logins_are_throttled(server: AuthgateServer) -> None:
    url, _ = start_url(server)
    with HeadlessUserAgent() as agent:
        page = agent.open(url)
        assert isinstance(page, Page)
        statuses = []
        for _ in range(4):
            assert page.login_form is not None
            step = agent.submit(page.login_form, username="throttled-user", password="wrong-password")
            assert isinstance(step, Page)
            statuses.append(step.status)
            page = step
    assert statuses == [401, 401, 401, 429]
    assert "Too many attempts" in page.text


def test_page_headers_and_cookie_flags(server: AuthgateServer) -> None:
    url, _ = start_url(server)
    r = httpx.get(url)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "form-action 'self' http://127.0.0.1:*" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # loopback http: a Secure cookie would never come back


def test_consent_is_remembered_per_user_client_and_scopes(server: AuthgateServer) -> None:
    url, _ = start_url(server)
    with HeadlessUserAgent() as agent:
        first = agent.authorize(url, server.username, server.password)
        assert first.code
        again = agent.open(url)  # same browser session, same client and scopes
    assert isinstance(again, AuthorizationResponse) and again.code and again.code != first.code


def test_removed_user_loses_access_within_the_token_cache_time(
    server: AuthgateServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    done = server.cli("users", "add", "bob", "--password-stdin", stdin="bob-password-1\n")
    assert done.returncode == 0, done.stderr
    url, verifier = start_url(server)
    with HeadlessUserAgent() as agent:
        resp = agent.authorize(url, "bob", "bob-password-1")
    client_id = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))["client_id"]
    tokens = httpx.post(
        server.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": resp.code,
            "code_verifier": verifier,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
        },
    ).json()
    headers = {
        "Authorization": f"Bearer {tokens['access_token']}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    assert httpx.post(server.mcp_url, headers=headers, json=init).status_code == 200
    assert server.cli("users", "remove", "bob").returncode == 0
    time.sleep(1.5)  # AUTHGATE_TOKEN_CACHE_SECONDS=1
    r = httpx.post(server.mcp_url, headers=headers, json=init)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    refreshed = httpx.post(
        server.endpoint("token"),
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id},
    )
    assert refreshed.json()["error"] == "invalid_grant"


def test_loopback_only_cimd_client_always_asks_and_warns(authgate_factory, loopback_app) -> None:  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    doc: dict[str, object] = {}

    async def serve_doc(request):  # type: ignore[no-untyped-def]
        return JSONResponse(doc)

    base = loopback_app(Starlette(routes=[Route("/client.json", serve_doc)]))
    client_id = f"{base}/client.json"
    doc.update(
        {
            "client_id": client_id,
            "client_name": "Local CLI",
            "redirect_uris": [CALLBACK],
            "token_endpoint_auth_method": "none",
        }
    )
    server = authgate_factory(AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP="true")
    url, _ = start_url(server, client_id)
    with HeadlessUserAgent() as agent:
        first = agent.authorize(url, server.username, server.password)
        assert first.code
        again = agent.open(url)  # consent was given, yet a loopback-only CIMD client is asked again
        assert isinstance(again, Page) and again.consent_form is not None
        assert "Any program on a computer can claim to be" in again.text
