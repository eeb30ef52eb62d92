"""Small local stand-ins for GitHub and Google, for proxy mode's preset tests.

They are stand-ins because github.com and accounts.google.com cannot be reached from here (and
no test should depend on a real account there). Each serves only what authgate's preset uses,
shaped like the real service's documented answers, signs in one fixed person without a page,
and records every request so a test can check what authgate asked for.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


class _StandIn:
    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, query or form)
        self.codes: dict[str, dict[str, str]] = {}
        self.tokens: set[str] = set()
        self.url = ""  # set once served

    async def _record(self, request: Request) -> dict[str, str]:
        data = (
            dict(request.query_params)
            if request.method == "GET"
            else {k: str(v) for k, v in (await request.form()).items()}
        )
        self.requests.append((request.method, request.url.path, data))
        return data

    async def authorize(self, request: Request) -> Response:
        q = await self._record(request)
        code = "code-" + secrets.token_urlsafe(8)
        self.codes[code] = q
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

    def _bearer(self, request: Request) -> bool:
        return request.headers.get("authorization", "").removeprefix("Bearer ") in self.tokens


class FakeGitHub(_StandIn):
    """Stand-in for github.com + api.github.com (an OAuth app): /login/oauth/authorize,
    /login/oauth/access_token (JSON with Accept: application/json; no refresh token, as for
    OAuth apps), and the REST API's /user, /user/emails, /user/orgs."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        user_id: int = 4242,
        login: str = "octocat",
        email: str = "octo@corp.test",
        orgs: tuple[str, ...] = ("acme",),
    ) -> None:
        super().__init__(client_id, client_secret)
        self.user = {"id": user_id, "login": login, "name": "The Octocat"}
        self.emails = [
            {"email": "old@elsewhere.test", "primary": False, "verified": True},
            {"email": email, "primary": True, "verified": True},
        ]
        self.orgs = [{"login": o, "id": i} for i, o in enumerate(orgs)]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login/oauth/authorize", self.authorize),
                Route("/login/oauth/access_token", self.token, methods=["POST"]),
                Route("/user", self.api),
                Route("/user/emails", self.api),
                Route("/user/orgs", self.api),
            ]
        )

    async def token(self, request: Request) -> Response:
        form = await self._record(request)
        ok = form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret
        if not ok or self.codes.pop(form.get("code", ""), None) is None:
            return JSONResponse({"error": "bad_verification_code"})  # GitHub: 200 with an error
        token = "gho_" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email,read:org"})

    async def api(self, request: Request) -> Response:
        await self._record(request)
        if not self._bearer(request):
            return JSONResponse({"message": "Bad credentials"}, 401)
        body: Any = {"/user": self.user, "/user/emails": self.emails, "/user/orgs": self.orgs}[request.url.path]
        return JSONResponse(body)


class FakeGoogle(_StandIn):
    """Stand-in for accounts.google.com: OIDC discovery (issuer = its own URL), the
    authorization endpoint, the token endpoint (client_secret_post; an ID token and, with
    access_type=offline, a refresh token) and the userinfo endpoint."""

    def __init__(self, client_id: str, client_secret: str, *, sub: str = "1077", email: str = "ann@corp.test") -> None:
        super().__init__(client_id, client_secret)
        self.sub, self.email = sub, email

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/o/oauth2/v2/auth", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/v1/userinfo", self.userinfo),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/o/oauth2/v2/auth",
                "token_endpoint": f"{self.url}/token",
                "userinfo_endpoint": f"{self.url}/v1/userinfo",
                "code_challenge_methods_supported": ["plain", "S256"],
            }
        )

    async def token(self, request: Request) -> Response:
        form = await self._record(request)
        asked = self.codes.pop(form.get("code", ""), None)
        if form.get("client_secret") != self.client_secret or asked is None:
            return JSONResponse({"error": "invalid_grant"}, 400)
        token = "ya29." + secrets.token_urlsafe(24)
        self.tokens.add(token)
        claims = {
            "iss": self.url,
            "aud": self.client_id,
            "sub": self.sub,
            "email": self.email,
            "email_verified": True,
            "nonce": asked.get("nonce"),
        }
        body = {"access_token": token, "expires_in": 3599, "token_type": "Bearer", "id_token": _unsigned(claims)}
        if asked.get("access_type") == "offline":
            body["refresh_token"] = "1//" + secrets.token_urlsafe(24)
        return JSONResponse(body)

    async def userinfo(self, request: Request) -> Response:
        await self._record(request)
        if not self._bearer(request):
            return JSONResponse({"error": "invalid_token"}, 401)
        return JSONResponse({"sub": self.sub, "email": self.email, "email_verified": True, "name": "Ann"})


def _unsigned(claims: dict[str, Any]) -> str:
    """A JWS-shaped ID token; authgate reads ID tokens from the token endpoint's back channel
    (OIDC Core §3.1.3.7), so the stand-in's signature is not checked."""

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'RS256', 'kid': 'standin'})}.{b64(claims)}.c2ln"
