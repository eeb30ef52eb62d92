"""Login and consent in a real browser: headless Debian Chromium driven by Playwright.

What a scripted HTTP client cannot show: that the pages render and work in a browser, and
that the browser actually *follows* the final 303 to the client's redirect URI. Chromium
enforces a CSP `form-action` directive on the redirect that follows a form submission, so a
`form-action 'self'` on the consent page would silently strand the user on authgate; here a
real loopback listener must receive `code`, `state` and `iss`. The code is then redeemed at
/token to prove it is genuine.

Screenshots of both pages go to test-artifacts/ (login.png, consent.png), and of the consent page
for a self-registered client to consent-unverified.png.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.needs import unavailable

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
STEP_TIMEOUT_MS = 15_000


def _require_chromium() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium; or run `bash scripts/test.sh`)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the python package playwright is not installed (pip install -e '.[test]')"
    if problem is not None:
        unavailable(problem)


@pytest.fixture(autouse=True)
def _needs_chromium() -> None:
    """Checked before any server starts (autouse fixtures are set up first)."""
    _require_chromium()


class _Callback:
    """A real loopback HTTP listener standing in for the client's redirect URI."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.event = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path == "/callback":
                    outer.received.append({k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()})
                    outer.event.set()
                body = b"<!doctype html><title>client</title><p>Signed in. You can close this tab.</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Callback:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def callback() -> Iterator[_Callback]:
    with _Callback() as cb:
        yield cb


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def test_login_and_consent_in_chromium(authgate: Any, callback: _Callback) -> None:
    from playwright.sync_api import sync_playwright

    http = httpx.Client(timeout=10.0)
    meta = http.get(f"{authgate.url}/.well-known/oauth-authorization-server")
    assert meta.status_code == 200, meta.text
    metadata = meta.json()
    issuer = metadata["issuer"]

    reg = http.post(
        metadata.get("registration_endpoint", authgate.endpoint("register")),
        json={
            "redirect_uris": [callback.redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "Browser Flow Test",
            "scope": "mcp",
        },
    )
    assert reg.status_code == 201, f"POST /register -> {reg.status_code} {reg.text}"
    client_id = reg.json()["client_id"]

    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    resource = authgate.mcp_url
    auth_url = (
        metadata["authorization_endpoint"]
        + "?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": callback.redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": state,
                "resource": resource,
                "scope": "mcp",
            }
        )
    )

    ARTIFACTS.mkdir(exist_ok=True)
    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1024, "height": 768})
            page = context.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

            resp = page.goto(auth_url)
            assert resp is not None and resp.status == 200, f"GET authorize -> {resp and resp.status}"
            page.wait_for_selector('input[name="password"]')
            page.fill('input[name="username"]', authgate.username)
            page.fill('input[name="password"]', authgate.password)
            page.screenshot(path=str(ARTIFACTS / "login.png"), full_page=True)

            login_form = page.locator("form:has(input[name=password])")
            submit = login_form.locator("button:not([type]), button[type=submit], input[type=submit]")
            assert submit.count() >= 1, "login form has no submit button"
            with page.expect_navigation():
                submit.first.click()

            allow = page.locator('button[name="decision"][value="allow"], input[name="decision"][value="allow"]')
            allow.first.wait_for(state="visible")
            assert page.locator('[name="decision"][value="deny"]').count() == 1, "no Deny button"
            page.screenshot(path=str(ARTIFACTS / "consent.png"), full_page=True)

            allow.first.click()
            delivered = callback.event.wait(STEP_TIMEOUT_MS / 1000)
            final_url = page.url
        finally:
            browser.close()

    assert delivered, (
        "the browser never reached the client's redirect URI after Allow "
        f"(stuck at {final_url}; a CSP form-action that blocks the redirect?)\nconsole:\n" + "\n".join(console)
    )
    params = callback.received[0]
    assert params.get("state") == state, params
    assert params.get("iss") == issuer, params
    assert params.get("code"), params
    assert "error" not in params, params
    csp_errors = [line for line in console if "Content Security Policy" in line]
    assert not csp_errors, "CSP violations on authgate's pages:\n" + "\n".join(csp_errors)

    token = http.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": callback.redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": resource,
        },
    )
    assert token.status_code == 200, f"POST /token -> {token.status_code} {token.text}"
    body = token.json()
    assert body["access_token"], body
    assert body["token_type"].lower() == "bearer", body
    http.close()


def test_consent_page_for_a_self_registered_client_in_chromium(authgate: Any, callback: _Callback) -> None:
    """What a person sees for a DCR client that claims a famous name and hides another name in
    its redirect path: the name in quotes as the app's own claim, "Not verified by this server",
    and the redirect host alone. Screenshot: test-artifacts/consent-unverified.png."""
    from playwright.sync_api import sync_playwright

    redirect_uri = callback.redirect_uri.replace("/callback", "/claude.ai/callback") + "?next=claude.ai"
    http = httpx.Client(timeout=10.0)
    refused = http.post(
        authgate.endpoint("register"),
        json={
            "redirect_uris": [redirect_uri.replace("http://", "http://claude.ai@")],
            "token_endpoint_auth_method": "none",
        },
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_redirect_uri", refused.text
    reg = http.post(
        authgate.endpoint("register"),
        json={"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none", "client_name": "Claude"},
    )
    assert reg.status_code == 201, reg.text
    _, challenge = _pkce()
    auth_url = (
        authgate.endpoint("authorize")
        + "?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": reg.json()["client_id"],
                "redirect_uri": redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "s",
                "scope": "mcp",
            }
        )
    )
    http.close()

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "consent-unverified.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(auth_url)
            page.fill('input[name="username"]', authgate.username)
            page.fill('input[name="password"]', authgate.password)
            with page.expect_navigation():
                page.locator("form:has(input[name=password]) button").first.click()
            page.locator('button[name="decision"][value="allow"]').wait_for(state="visible")
            page.screenshot(path=str(shot), full_page=True)
            heading = page.locator("h1").inner_text()
            badge = page.locator(".badge").inner_text()
            hosts = page.locator(".host").all_inner_texts()
            shown = page.locator("main").inner_text()
        finally:
            browser.close()
    print(f"consent page screenshot: {shot}")
    assert heading == "Allow “Claude”?", heading
    assert badge.strip().lower() == "not verified by this server", badge
    assert hosts == ["127.0.0.1"], hosts
    assert "claude.ai" not in shown.lower(), shown
