"""The doctor's headless sign-in on pages shaped like Keycloak's (the fast path of
tests/idp/keycloak/test_doctor_signin_keycloak.py, which runs against a real Keycloak 26.7.3):
its cookies say `Version=1; Secure; SameSite=None` also over plain http on 127.0.0.1 — browsers
send Secure cookies back to loopback, so must the doctor — and its consent button is
`<button name="accept">Yes</button>`, without a value."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from authgate.doctor.login import form_sign_in
from support.authgate_server import serve_asgi_in_thread

REDIRECT_URI = "https://claude.ai/api/mcp/auth_callback"  # read from Location, never followed
COOKIE = "KC_RESTART=r1;Version=1;Path=/realms/mcp/;Secure;HttpOnly;SameSite=None"
LOGIN = """<html><body><form id="kc-form-login" action="/realms/mcp/login-actions/authenticate" method="post">
<input id="username" name="username" type="text"/><input id="password" name="password" type="password"/>
<input type="hidden" name="credentialId"/><button name="login" id="kc-login" type="submit">Sign In</button>
</form></body></html>"""
CONSENT = """<html><body><p>Do you grant these access privileges?</p>
<form action="/realms/mcp/login-actions/consent" method="POST"><input type="hidden" name="code" value="c1">
<button name="accept" id="kc-login" type="submit">Yes</button>
<button name="cancel" id="kc-cancel" type="submit">No</button></form></body></html>"""


def _keycloak_like() -> Starlette:
    async def auth(request: Request) -> Response:
        page = HTMLResponse(LOGIN)
        page.headers.append("set-cookie", COOKIE)
        return page

    async def authenticate(request: Request) -> Response:
        form = await request.form()
        if request.cookies.get("KC_RESTART") != "r1":
            return HTMLResponse("<p>We are sorry...</p><p>Restart login cookie not found.</p>", status_code=400)
        if (form.get("username"), form.get("password")) != ("alice", "pw"):
            return HTMLResponse(LOGIN)
        return HTMLResponse(CONSENT)

    async def consent(request: Request) -> Response:
        form = await request.form()
        if "accept" not in form or request.cookies.get("KC_RESTART") != "r1":
            return RedirectResponse(f"{REDIRECT_URI}?error=access_denied", status_code=302)
        return RedirectResponse(f"{REDIRECT_URI}?{urlencode({'code': 'abc', 'state': 's1'})}", status_code=302)

    return Starlette(
        routes=[
            Route("/realms/mcp/protocol/openid-connect/auth", auth),
            Route("/realms/mcp/login-actions/authenticate", authenticate, methods=["POST"]),
            Route("/realms/mcp/login-actions/consent", consent, methods=["POST"]),
        ]
    )


async def test_secure_cookies_on_loopback_and_a_valueless_accept_button_sign_in() -> None:
    with serve_asgi_in_thread(_keycloak_like()) as url:
        result = await form_sign_in(f"{url}/realms/mcp/protocol/openid-connect/auth", REDIRECT_URI, "alice", "pw")
    assert result.params == {"code": "abc", "state": "s1"}
