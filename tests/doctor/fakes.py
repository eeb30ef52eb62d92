"""A small MCP deployment (authorization server + resource server + the SDK's MCP server) that
can be broken one way at a time, to check that the doctor names exactly the broken step.

The authorization server approves every request at once (no sign-in page): it redirects
straight to the client's redirect URI with `code`, `state` and `iss`. Access tokens are HS256
JWTs; the resource server checks signature, expiry and `aud`. Client ID metadata documents
are accepted without fetching them (any https client_id), which is all the doctor and the SDK
need from this stand-in.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from support.authgate_server import serve_asgi_in_thread


@dataclass(frozen=True)
class Breakage:
    """One deliberate fault (defaults: a correct deployment)."""

    prm_at: frozenset[str] = frozenset({"path", "root"})
    prm_resource: str | None = None  # "{url}" / "{base}" are filled in
    header_metadata: Literal["path", "root", "none"] = "path"
    issuer: str | None = None  # "{base}" is filled in
    s256: bool = True
    registration: bool = True
    cimd: bool = True
    token_aud: str | None = None
    open_without_token: bool = False
    strict_accept: bool = False
    cors_on_mcp: bool = True
    rfc7592: bool = False  # not a fault: offer registration management (DELETE)


HEALTHY = Breakage()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeDeployment:
    port: int
    breakage: Breakage = HEALTHY
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def issuer(self) -> str:
        return (self.breakage.issuer or "{base}").format(base=self.base)

    @property
    def prm_url(self) -> dict[str, str]:
        return {
            "path": f"{self.base}/.well-known/oauth-protected-resource/mcp",
            "root": f"{self.base}/.well-known/oauth-protected-resource",
        }

    # -- tokens ------------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any]) -> str:
        head = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt"}).encode())
        body = _b64(json.dumps(claims).encode())
        mac = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(mac)}"

    def verify(self, token: str) -> dict[str, Any] | None:
        try:
            head, body, mac = token.split(".")
            good = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            claims = json.loads(_unb64(body)) if hmac.compare_digest(good, _unb64(mac)) else None
        except ValueError:
            return None
        if not isinstance(claims, dict) or claims.get("exp", 0) < time.time() or claims.get("aud") != self.url:
            return None
        return claims

    # -- the authorization server --------------------------------------------------------------

    async def as_metadata(self, request: Request) -> Response:
        doc: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "scopes_supported": ["mcp"],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": self.breakage.cimd,
        }
        if self.breakage.s256:
            doc["code_challenge_methods_supported"] = ["S256"]
        if self.breakage.registration:
            doc["registration_endpoint"] = f"{self.base}/register"
        return JSONResponse(doc)

    async def register(self, request: Request) -> Response:
        body = await request.json()
        client_id = secrets.token_hex(8)
        record = {**body, "client_id": client_id}
        if body.get("token_endpoint_auth_method", "client_secret_basic") != "none":
            record["client_secret"] = secrets.token_urlsafe(16)
        self.clients[client_id] = record
        if self.breakage.rfc7592:  # RFC 7592 §3: where and how to manage the registration
            record = {
                **record,
                "registration_client_uri": f"{self.base}/register/{client_id}",
                "registration_access_token": f"rat-{client_id}",
            }
        return JSONResponse(record, status_code=201)

    async def unregister(self, request: Request) -> Response:
        client_id = request.path_params["client_id"]
        if request.headers.get("authorization") != f"Bearer rat-{client_id}" or client_id not in self.clients:
            return Response(status_code=401)
        del self.clients[client_id]
        return Response(status_code=204)

    def _redirect_ok(self, client_id: str, redirect_uri: str) -> bool:
        if client_id.startswith("https://") and self.breakage.cimd:
            return True  # a CIMD client: trusted without fetching (test stand-in)
        uris = self.clients.get(client_id, {}).get("redirect_uris", [])
        loose = urlsplit(redirect_uri)._replace(netloc=urlsplit(redirect_uri).hostname or "").geturl()
        return redirect_uri in uris or any(
            urlsplit(u)._replace(netloc=urlsplit(u).hostname or "").geturl() == loose
            for u in uris
            if urlsplit(u).hostname in ("127.0.0.1", "localhost")
        )

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        if not self._redirect_ok(q.get("client_id", ""), q.get("redirect_uri", "")):
            return Response("unknown client or redirect_uri", status_code=400)
        answer: dict[str, str] = {"state": q.get("state", ""), "iss": self.issuer}
        if q.get("resource", self.url) != self.url:
            answer |= {"error": "invalid_target", "error_description": f"unknown resource {q.get('resource')}"}
        elif q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            answer |= {"error": "invalid_request", "error_description": "PKCE S256 required"}
        else:
            code = secrets.token_urlsafe(16)
            self.codes[code] = dict(q)
            answer["code"] = code
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(answer)}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = dict(await request.form())
        grant = self.codes.pop(str(form.get("code", "")), None)
        verifier = str(form.get("code_verifier", ""))
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if grant is None or grant["code_challenge"] != challenge or grant["redirect_uri"] != form.get("redirect_uri"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        claims = {
            "iss": self.issuer,
            "sub": "alice",
            "client_id": grant["client_id"],
            "scope": "mcp",
            "aud": self.breakage.token_aud or grant.get("resource", self.url),
            "iat": int(time.time()),
            "exp": int(time.time()) + 600,
        }
        return JSONResponse(
            {"access_token": self.sign(claims), "token_type": "Bearer", "expires_in": 600, "scope": "mcp"},
            headers={"Cache-Control": "no-store"},
        )

    # -- the resource server ------------------------------------------------------------------

    async def prm(self, request: Request) -> Response:
        resource = (self.breakage.prm_resource or "{url}").format(url=self.url, base=self.base)
        return JSONResponse(
            {
                "resource": resource,
                "authorization_servers": [self.base],
                "scopes_supported": ["mcp"],
                "bearer_methods_supported": ["header"],
            }
        )

    def challenge(self, error: str | None) -> str:
        parts = [f'error="{error}"'] if error else []
        parts.append('scope="mcp"')
        if self.breakage.header_metadata != "none":
            parts.append(f'resource_metadata="{self.prm_url[self.breakage.header_metadata]}"')
        return "Bearer " + ", ".join(parts)

    def routes(self) -> list[Route]:
        routes = [
            Route("/.well-known/oauth-authorization-server", self.as_metadata),
            Route("/authorize", self.authorize),
            Route("/token", self.token, methods=["POST"]),
        ]
        if self.breakage.registration:
            routes.append(Route("/register", self.register, methods=["POST"]))
            routes.append(Route("/register/{client_id}", self.unregister, methods=["DELETE"]))
        if "path" in self.breakage.prm_at:
            routes.append(Route("/.well-known/oauth-protected-resource/mcp", self.prm))
        if "root" in self.breakage.prm_at:
            routes.append(Route("/.well-known/oauth-protected-resource", self.prm))
        return routes


def _cors(app: ASGIApp) -> ASGIApp:
    return CORSMiddleware(
        app,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "MCP-Protocol-Version",
            "Mcp-Session-Id",
            "Mcp-Method",
            "Mcp-Name",
            "Last-Event-ID",
        ],
        expose_headers=["WWW-Authenticate", "Mcp-Session-Id"],
    )


class Guard:
    """Pure ASGI bearer check in front of the MCP app (or no check, when broken that way)."""

    def __init__(self, deployment: FakeDeployment, app: ASGIApp) -> None:
        self.d, self.app = deployment, app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if scope["type"] == "http" and scope["method"] != "OPTIONS" and not self.d.breakage.open_without_token:
            auth = headers.get("authorization", "")
            claims = self.d.verify(auth[7:]) if auth.lower().startswith("bearer ") else None
            if claims is None:
                error = "invalid_token" if auth else None
                await JSONResponse(
                    {"error": error or "unauthorized"},
                    status_code=401,
                    headers={"WWW-Authenticate": self.d.challenge(error)},
                )(scope, receive, send)
                return
        if scope["type"] == "http" and self.d.breakage.strict_accept and headers.get("accept") != "application/json":
            await Response("Not Acceptable: use Accept: application/json", status_code=406)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(deployment: FakeDeployment) -> ASGIApp:
    server = MCPServer("fake-mcp")

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        return text

    mcp_app = server.streamable_http_app(
        streamable_http_path="/mcp", transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    guarded: ASGIApp = Guard(deployment, mcp_app)
    if deployment.breakage.cors_on_mcp:
        guarded = _cors(guarded)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with mcp_app.router.lifespan_context(mcp_app):
            yield

    router = Starlette(routes=deployment.routes(), lifespan=lifespan)
    public = _cors(router)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            deployment.requests.append((scope["method"], scope["path"]))
        target = guarded if scope["type"] == "http" and scope["path"].startswith("/mcp") else public
        await (router if scope["type"] == "lifespan" else target)(scope, receive, send)

    return app


@contextlib.contextmanager
def serve(breakage: Breakage, port: int) -> Iterator[FakeDeployment]:
    """Run the fake under uvicorn (lifespan on) on 127.0.0.1:`port` in a thread."""
    deployment = FakeDeployment(port=port, breakage=breakage)
    with serve_asgi_in_thread(build_app(deployment), port, lifespan="on"):
        yield deployment


def broken(**changes: Any) -> Breakage:
    return replace(HEALTHY, **changes)
