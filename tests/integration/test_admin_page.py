"""/admin (issue 13): the operator's page, on one real authgate (alice, its first user, is an
admin; bob is not), with the token cache time set to 0 so a revocation shows at once.

Without a browser (httpx): who is sent to sign in, who gets 403, the methods, the CSRF token,
the headers, escaping, the actions. In headless Chromium (Playwright, marked `browser`): an
admin signs in, sees the clients, revokes one (its refresh token then fails with
`invalid_grant`, its access token with 401), and a non-admin gets the 403 page. Screenshots:
test-artifacts/admin.png, admin-revoked.png, admin-denied.png.

/admin is mounted only in the embedded mode; in external and proxy mode it is a 404
(`test_admin_is_a_404_outside_the_embedded_mode`).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.flow_load import pkce_pair
from support.headless import HeadlessUserAgent, parse_forms
from support.needs import unavailable

CALLBACK = "http://127.0.0.1:53998/cb"
EVIL_NAME = '<img src=x onerror="document.title=1"><b>Evil</b> & co'
BOB_PASSWORD = "bob-password-" + secrets.token_urlsafe(8)
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
STEP_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(
        tmp_path_factory.mktemp("admin"),
        extra_env={
            "AUTHGATE_TOKEN_CACHE_SECONDS": "0",
            "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000",
            "AUTHGATE_LOGIN_ATTEMPTS_PER_MINUTE": "100",
        },
    )
    srv.add_user()  # alice: the first user, so an admin
    done = srv.cli("users", "add", "bob", "--password-stdin", stdin=BOB_PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    srv.start()
    yield srv
    srv.stop()


# -- helpers ----------------------------------------------------------------------------------


def register(server: AuthgateServer, name: str) -> str:
    r = httpx.post(
        server.endpoint("register"),
        json={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": name},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["client_id"])


def connect(server: AuthgateServer, client_id: str, username: str, password: str) -> dict[str, str]:
    """A whole code flow for `client_id` as `username`: its token response."""
    verifier, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    with HeadlessUserAgent() as agent:
        code = agent.authorize(f"{server.endpoint('authorize')}?{urlencode(query)}", username, password).code
    form = {
        "grant_type": "authorization_code",
        "code": code or "",
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
    }
    tokens = httpx.post(server.endpoint("token"), data=form)
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def refresh(server: AuthgateServer, client_id: str, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return httpx.post(server.endpoint("token"), data=form)


def mcp_status(server: AuthgateServer, access_token: str) -> int:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json, text/event-stream"}
    return httpx.post(server.mcp_url, headers=headers, json=init).status_code


@contextmanager
def signed_in(server: AuthgateServer, username: str, password: str) -> Iterator[httpx.Client]:
    """A cookie-keeping client signed in through /admin/login, the way a browser is sent there."""
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        first = http.get("/admin")
        assert first.status_code == 303, first.text
        login = http.get(first.headers["location"])
        assert login.status_code == 200, login.text
        (form,) = parse_forms(login.text, str(login.url))
        done = http.post(form.action, data=form.values(username=username, password=password))
        assert done.status_code == 303 and urlsplit(done.headers["location"]).path == "/admin", done.text
        yield http


def action_form(html: str, base: str, path: str, field: str, value: str) -> dict[str, str]:
    for form in parse_forms(html, base):
        if urlsplit(form.action).path == path and form.fields.get(field) == value:
            return form.values()
    raise AssertionError(f"no form posting {field}={value} to {path}")


def assert_page_headers(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"


# -- without a browser ------------------------------------------------------------------------


@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_ADMINS_ONLY)
def test_an_anonymous_visitor_is_sent_to_sign_in_and_back(server: AuthgateServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        r = http.get("/admin?clients=2")
        assert r.status_code == 303 and r.headers["cache-control"] == "no-store"
        location = urlsplit(r.headers["location"])
        assert location.path == "/admin/login" and parse_qs(location.query) == {"next": ["/admin?clients=2"]}
        login = http.get(r.headers["location"])
        assert login.status_code == 200
        assert_page_headers(login)
        (form,) = parse_forms(login.text, str(login.url))
        assert form.fields["next"] == "/admin?clients=2" and form.fields["csrf_token"]
        wrong = http.post(form.action, data=form.values(username=server.username, password="not-the-password"))
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
        done = http.post(form.action, data=form.values(username=server.username, password=server.password))
        assert done.status_code == 303 and done.headers["location"] == f"{server.url}/admin?clients=2"
        page = http.get(done.headers["location"])
        assert page.status_code == 200 and "authgate admin" in page.text
        assert_page_headers(page)


def test_the_login_page_never_sends_anyone_elsewhere(server: AuthgateServer) -> None:
    """`next` is an admin page or nothing: no open redirect through the sign-in."""
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        for bad in ("https://evil.example/admin", "//evil.example/admin", "/admin/../token", "/adminx", "/admin?a=<b>"):
            login = http.get("/admin/login", params={"next": bad})
            (form,) = parse_forms(login.text, str(login.url))
            assert form.fields["next"] == "/admin", bad


@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_ADMINS_ONLY)
def test_a_signed_in_user_without_the_admin_role_gets_403(server: AuthgateServer) -> None:
    client_id = register(server, "Bob's target")
    with signed_in(server, "bob", BOB_PASSWORD) as http:
        page = http.get("/admin")
        assert page.status_code == 403 and "Not an administrator" in page.text
        assert_page_headers(page)
        assert "Bob&#39;s target" not in page.text and client_id not in page.text  # nothing listed
        token = http.cookies["authgate_csrf"]
        refused = http.post("/admin/clients/remove", data={"csrf_token": token, "client_id": client_id})
        assert refused.status_code == 403
        # the connections action (issue 15) goes through the same check: a person's connection is
        # not revoked by another signed-in non-admin
        refused = http.post("/admin/connections/revoke", data={"csrf_token": token, "connection": "idp:uid-x"})
        assert refused.status_code == 403
    assert httpx.post(server.endpoint("register"), json={}).status_code == 400  # still serving
    with signed_in(server, server.username, server.password) as admin:
        assert client_id in admin.get("/admin").text  # not removed by bob


@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_CSRF)
def test_actions_are_posts_with_the_csrf_token(server: AuthgateServer) -> None:
    client_id = register(server, "CSRF target")
    tokens = connect(server, client_id, server.username, server.password)
    with signed_in(server, server.username, server.password) as http:
        page = http.get("/admin")
        data = action_form(page.text, str(page.url), "/admin/clients/revoke", "client_id", client_id)
        for forged in ({**data, "csrf_token": "wrong-" + secrets.token_urlsafe(32)}, {"client_id": client_id}):
            refused = http.post("/admin/clients/revoke", data=forged)
            assert refused.status_code == 403 and "Session check failed" in refused.text
            assert_page_headers(refused)
        # the cookie alone is not enough either: a cross-site form cannot read it to copy it
        assert http.post("/admin/clients/revoke", data={**data, "csrf_token": ""}).status_code == 403
        # wrong methods
        assert http.get("/admin/clients/revoke", params=data).status_code == 405
        assert http.post("/admin", data=data).status_code == 405
        assert http.put("/admin/login").status_code == 405
    assert refresh(server, client_id, tokens["refresh_token"]).status_code == 200  # nothing was revoked
    with httpx.Client(base_url=server.url, timeout=10.0) as anonymous:
        assert anonymous.post("/admin/users/remove", data={"user_id": "x"}).status_code == 403
        anonymous.get("/admin/login")  # a CSRF cookie, but no sign-in: sent to sign in, nothing done
        token = anonymous.cookies["authgate_csrf"]
        r = anonymous.post("/admin/clients/remove", data={"csrf_token": token, "client_id": client_id})
        assert r.status_code == 303 and urlsplit(r.headers["location"]).path == "/admin/login"


@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_ESCAPED)
def test_what_a_client_names_itself_is_shown_as_text(server: AuthgateServer) -> None:
    register(server, EVIL_NAME)
    with signed_in(server, server.username, server.password) as http:
        html = http.get("/admin").text
    assert "<img" not in html and "<b>Evil" not in html
    assert "&lt;img src=x onerror=&#34;document.title=1&#34;&gt;&lt;b&gt;Evil&lt;/b&gt; &amp; co" in html


def test_an_admin_removes_a_client_and_a_user(server: AuthgateServer) -> None:
    carol_password = "carol-" + secrets.token_urlsafe(8)
    assert server.cli("users", "add", "carol", "--password-stdin", stdin=carol_password + "\n").returncode == 0
    client_id = register(server, "Carol's app")
    tokens = connect(server, client_id, "carol", carol_password)
    other = connect(server, register(server, "Carol's other app"), "carol", carol_password)
    with signed_in(server, server.username, server.password) as http:
        page = http.get("/admin")
        removals = [
            f for f in parse_forms(page.text, str(page.url)) if urlsplit(f.action).path == "/admin/users/remove"
        ]
        assert len(removals) == 2  # bob and carol: no button to remove yourself
        form = action_form(page.text, str(page.url), "/admin/clients/remove", "client_id", client_id)
        removed = http.post("/admin/clients/remove", data=form)
        assert removed.status_code == 303
        after = http.get(removed.headers["location"])
        assert "Removed the client and revoked its grants." in after.text and client_id not in after.text
        assert refresh(server, client_id, tokens["refresh_token"]).status_code in (400, 401)
        (row,) = [r for r in after.text.split("<tr>") if "<bdi>carol</bdi>" in r and 'name="user_id"' in r]
        (carol_id,) = re.findall(r'name="user_id" value="([^"]+)"', row)
        form = action_form(after.text, str(after.url), "/admin/users/remove", "user_id", carol_id)
        gone = http.get(http.post("/admin/users/remove", data=form).headers["location"])
        assert "Removed the user and revoked their grants." in gone.text and "<bdi>carol</bdi>" not in gone.text
        again = http.get(http.post("/admin/users/remove", data=form).headers["location"])
        assert "Nothing to do: it was already gone." in again.text
        listed = server.cli("users", "list", "--json")
        (me,) = [u["user_id"] for u in map(json.loads, listed.stdout.splitlines()) if u["username"] == server.username]
        mine = http.get(http.post("/admin/users/remove", data={**form, "user_id": me}).headers["location"])
        assert "You cannot remove yourself" in mine.text and f"<bdi>{server.username}</bdi>" in mine.text
    assert mcp_status(server, other["access_token"]) == 401  # token_cache_seconds = 0


def test_an_admin_revokes_one_grant(server: AuthgateServer) -> None:
    """A live grant is listed with its client and user, and revoked alone."""
    client_id = register(server, "Grant holder")
    tokens = connect(server, client_id, server.username, server.password)
    with signed_in(server, server.username, server.password) as http:
        page = http.get("/admin")
        (row,) = [r for r in page.text.split("<tr>") if "Grant holder" in r and 'name="family_id"' in r]
        assert f"<bdi>{server.username}</bdi>" in row
        (family_id,) = re.findall(r'name="family_id" value="([^"]+)"', row)
        form = action_form(page.text, str(page.url), "/admin/grants/revoke", "family_id", family_id)
        done = http.get(http.post("/admin/grants/revoke", data=form).headers["location"])
        assert "Revoked the grant." in done.text and family_id not in done.text
    assert refresh(server, client_id, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_the_page_shows_a_failed_connection_attempt(server: AuthgateServer) -> None:
    """A connection broken on purpose (an unregistered redirect URI) is listed with the step it
    failed at, the reason and the fix."""
    broken = register(server, "Broken redirect")
    query = {"response_type": "code", "client_id": broken, "redirect_uri": "http://127.0.0.1:1/elsewhere"}
    query |= {"code_challenge": "x" * 43, "code_challenge_method": "S256", "state": "s"}
    assert httpx.get(server.endpoint("authorize"), params=query).status_code == 400
    rows: list[str] = []
    with signed_in(server, server.username, server.password) as http:
        deadline = time.monotonic() + 10  # the recorder writes its notes a moment after the answer
        while not rows and time.monotonic() < deadline:
            page = http.get("/admin")
            rows = [r for r in page.text.split("<tr>") if "<bdi>Broken redirect</bdi>" in r and "Fix:" in r]
            time.sleep(0.1 if not rows else 0)
    (attempt,) = rows
    assert "authorization request refused: redirect_uri is not registered for this client" in attempt, attempt
    assert f"it registered {CALLBACK}" in attempt, attempt


@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_NO_FRAMING)
def test_every_admin_page_refuses_framing_and_caching(server: AuthgateServer) -> None:
    with signed_in(server, server.username, server.password) as http:
        assert_page_headers(http.get("/admin"))
        assert_page_headers(http.get("/admin/login"))
        assert_page_headers(http.post("/admin/grants/revoke", data={"family_id": "x"}))  # the 403 page
    with signed_in(server, "bob", BOB_PASSWORD) as http:
        assert_page_headers(http.get("/admin"))  # the 403 page


@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_EMBEDDED_ONLY)
@pytest.mark.parametrize(
    "mode",
    [
        {"auth_mode": "external", "issuer": "https://idp.example.com"},
        {"auth_mode": "proxy", "idp_preset": "github", "idp_client_id": "Iv1.x", "idp_client_secret": "s" * 20},
    ],
    ids=["external", "proxy"],
)
async def test_admin_is_a_404_outside_the_embedded_mode(mode: dict[str, Any], tmp_path: Path) -> None:
    """External mode holds no users or grants; proxy mode's people sign in upstream, with no
    password here: neither mounts /admin (the routes are decided before any store is opened)."""
    await _assert_no_admin_routes(mode, tmp_path)


async def test_admin_is_a_404_when_turned_off(tmp_path: Path) -> None:
    """`admin_page = false`: an operator who wants no admin sign-in page on a public host."""
    await _assert_no_admin_routes({"auth_mode": "embedded", "admin_page": False}, tmp_path)
    from starlette.responses import PlainTextResponse

    from authgate.config.settings import load_settings
    from authgate.server.app import AuthgateApp

    on = AuthgateApp(
        load_settings(None, data_dir=tmp_path, public_url="http://127.0.0.1:8000"), PlainTextResponse("mcp")
    )
    assert "/admin" in {getattr(r, "path", "") for r in on.router.routes}  # the default mounts it


async def _assert_no_admin_routes(mode: dict[str, Any], tmp_path: Path) -> None:
    from starlette.responses import PlainTextResponse

    from authgate.config.settings import load_settings
    from authgate.server.app import AuthgateApp

    settings = load_settings(None, data_dir=tmp_path, public_url="http://127.0.0.1:8000", **mode)
    app = AuthgateApp(settings, PlainTextResponse("mcp"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
        for method, path in [("GET", "/admin"), ("GET", "/admin/login"), ("POST", "/admin/clients/revoke")]:
            assert (await http.request(method, path)).status_code == 404, (mode["auth_mode"], path)


# -- in Chromium ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module's browser tests (each opens its own context)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium; or run `bash scripts/test.sh`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the python package playwright is not installed (pip install -e '.[test]')")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def browser_sign_in(page: Any, server: AuthgateServer, username: str, password: str) -> Any:
    """Open /admin, land on its sign-in page, sign in: the response the browser ends on."""
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(f"{server.url}/admin")
    assert urlsplit(page.url).path == "/admin/login", page.url
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    with page.expect_navigation() as navigation:
        page.locator("form:has(input[name=password]) button").click()
    assert urlsplit(page.url).path == "/admin", page.url
    return navigation.value


def framing_attempt(context: Any, server: AuthgateServer) -> str:
    """Another site (http://localhost:PORT is another origin than http://127.0.0.1:PORT) puts
    /admin in an iframe: the URL the frame ends on (Chromium's error page when refused)."""
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "frame-ancestors" in m.text else None)
    page.goto(server.url.replace("127.0.0.1", "localhost") + "/health")
    with page.expect_response(lambda r: urlsplit(r.url).path == "/admin"):
        page.set_content(f'<iframe id="admin" src="{server.url}/admin"></iframe>')
    frame = page.locator("#admin").element_handle().content_frame()
    frame.wait_for_load_state()
    assert frame.locator("form").count() == 0
    return f"{frame.url} ({'; '.join(blocked)})"


@pytest.mark.browser
@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_REVOKES)
@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_CSRF)
@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_ESCAPED)
@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_NO_FRAMING)
def test_an_admin_revokes_a_client_in_chromium(server: AuthgateServer, chromium: Any) -> None:
    name = "Revoke me (Chromium)"
    client_id = register(server, name)
    register(server, EVIL_NAME)
    tokens = connect(server, client_id, server.username, server.password)
    assert mcp_status(server, tokens["access_token"]) == 200  # an audit event to list
    console: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        landed = browser_sign_in(page, server, server.username, server.password)
        assert landed.status == 200 and landed.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in landed.headers["content-security-policy"]
        row = page.locator("tr", has=page.locator(f'input[name="client_id"][value="{client_id}"]')).first
        assert row.locator("td.name").inner_text() == name
        assert row.locator("td").nth(6).inner_text() == "1"  # its live grant
        evil = page.locator("td.name", has_text="<b>Evil</b>")
        assert evil.count() >= 1 and evil.first.inner_text() == EVIL_NAME  # as text
        assert page.locator("main img, td.name b").count() == 0 and page.title() == "Admin · authgate"
        page.screenshot(path=str(ARTIFACTS / "admin.png"), full_page=True)

        # the browser's own cookies, but a form without the page's token: refused, nothing revoked
        action = f"{server.url}/admin/clients/revoke"
        assert page.request.post(action, form={"client_id": client_id}).status == 403
        forged = {"client_id": client_id, "csrf_token": "forged-" + secrets.token_urlsafe(32)}
        assert page.request.post(action, form=forged).status == 403
        refreshed = refresh(server, client_id, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        tokens = refreshed.json()

        with page.expect_navigation():
            row.get_by_role("button", name="Revoke grants").click()
        notice = page.locator(".notice").inner_text()
        assert notice.startswith("Revoked 1 grant(s) of the client"), notice
        row = page.locator("tr", has=page.locator(f'input[name="client_id"][value="{client_id}"]')).first
        assert row.locator("td").nth(6).inner_text() == "0"
        page.screenshot(path=str(ARTIFACTS / "admin-revoked.png"), full_page=True)
        framed = framing_attempt(context, server)
    finally:
        context.close()
    after = refresh(server, client_id, tokens["refresh_token"])
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant", after.text
    assert mcp_status(server, tokens["access_token"]) == 401  # token_cache_seconds = 0
    assert not [line for line in console if "Content Security Policy" in line], console
    assert framed.startswith("chrome-error://"), f"another site framed /admin: {framed}"


@pytest.mark.browser
@pytest.mark.requirement(req.ISSUE13_ADMIN_PAGE_ADMINS_ONLY)
def test_a_user_without_the_admin_role_gets_403_in_chromium(server: AuthgateServer, chromium: Any) -> None:
    client_id = register(server, "Not bob's to remove")
    context = chromium.new_context(viewport={"width": 1024, "height": 700})
    try:
        page = context.new_page()
        landed = browser_sign_in(page, server, "bob", BOB_PASSWORD)
        assert landed.status == 403 and page.locator("h1").inner_text() == "Not an administrator"
        assert "Not bob" not in page.content()
        page.screenshot(path=str(ARTIFACTS / "admin-denied.png"), full_page=True)
        token = next(c["value"] for c in context.cookies() if c["name"] == "authgate_csrf")
        form = {"client_id": client_id, "csrf_token": token}  # a valid token: the role still decides
        assert page.request.post(f"{server.url}/admin/clients/remove", form=form).status == 403
        with page.expect_navigation():
            page.get_by_role("button", name="Sign out").click()
        assert urlsplit(page.url).path == "/admin/login"
    finally:
        context.close()
    with signed_in(server, server.username, server.password) as http:
        assert client_id in http.get("/admin").text  # still there
