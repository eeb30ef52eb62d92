"""`authgate serve --upstream` in front of a small scripted remote on loopback (issue 15): an MCP
endpoint that answers 401 with a Bearer challenge, its PRM and its authorization server (DCR,
an authorization endpoint that redirects at once, a token endpoint) — for what a real remote
does not do on demand.

* Its metadata lies, case by case: a PRM naming another resource (RFC 9728 §3.3), AS metadata
  naming another issuer (RFC 8414 §3.3), an AS at a private address (the outbound client's SSRF
  guard). Each refusal is the outbound client's own check (authgate.outbound.discovery,
  oauth/cimd/fetching.py) reached through the broker: the person's MCP client gets a 502
  naming it, and no link to a page that would fail later.
* It refuses a person's live token (401): the broker refreshes it once and the request goes
  again with the new token; when the refresh is refused too, the connection is dropped and the
  next answer is a new connect link; when the AS cannot refresh now (500), a retryable 503 and the
  connection kept. A 403 insufficient_scope for a scope the connection holds
  is an error (403), not another consent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.flow_load import signed_in_tokens
from support.headless import AuthorizationResponse, HeadlessUserAgent, Page
from support.ports import free_port

from .mcp_wire import initialize_request, legacy_headers

PORT = free_port()
BASE = f"http://127.0.0.1:{PORT}"
PRM_URL = f"{BASE}/.well-known/oauth-protected-resource/mcp"
HIDDEN_PRM_URL = f"{BASE}/meta/prm"  # case "hidden": the PRM only where the challenge says


class Remote:
    """The scripted remote; `case` says how its metadata lies ("ok": it does not)."""

    def __init__(self) -> None:
        self.case = "resource"
        self.seen: list[str] = []  # the bearer tokens its MCP endpoint received, in order
        self.refreshes: list[str] = []  # the refresh tokens spent
        self.refresh_ok = True
        self.refuse_all = False  # refuse at-2 as well
        self.forbid: str | None = None  # answer 403 insufficient_scope for this scope
        self.token_endpoint_down = False  # the refresh answered 500

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/mcp", self.mcp, methods=["GET", "POST", "DELETE"]),
                Route("/.well-known/oauth-protected-resource/mcp", self.prm),
                Route("/meta/prm", self.prm),
                Route("/.well-known/oauth-authorization-server", self.metadata),
                Route("/register", self.register, methods=["POST"]),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )

    async def mcp(self, request: Request) -> Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.seen.append(bearer)
        if bearer != "at-2" or self.refuse_all:  # none, or at-1: refused as if revoked there
            error = 'error="invalid_token", ' if bearer else ""
            prm = HIDDEN_PRM_URL if self.case == "hidden" else PRM_URL
            challenge = f'Bearer {error}resource_metadata="{prm}"'
            return JSONResponse({"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": challenge})
        if self.forbid is not None:
            challenge = f'Bearer error="insufficient_scope", scope="{self.forbid}", resource_metadata="{PRM_URL}"'
            return JSONResponse({}, status_code=403, headers={"WWW-Authenticate": challenge})
        body = await request.json()
        return JSONResponse(
            {
                "jsonrpc": "2.0",
                "id": body.get("id"),
                "result": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "serverInfo": {"name": "remote", "version": "1"},
                },
            }
        )

    async def prm(self, request: Request) -> Response:
        if (self.case == "hidden") != (request.url.path == "/meta/prm"):
            return JSONResponse({}, status_code=404)
        resource = f"{BASE}/another-server" if self.case == "resource" else f"{BASE}/mcp"
        server = "http://10.20.30.40:8080" if self.case == "private" else BASE
        return JSONResponse({"resource": resource, "authorization_servers": [server], "scopes_supported": ["read"]})

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": f"{BASE}/somebody-else" if self.case == "issuer" else BASE,
                "authorization_endpoint": f"{BASE}/authorize",
                "token_endpoint": f"{BASE}/token",
                "registration_endpoint": f"{BASE}/register",
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def register(self, request: Request) -> Response:
        body = {
            "client_id": "front",
            "client_secret": "front-secret",
            "token_endpoint_auth_method": "client_secret_post",
        }
        return JSONResponse(body, status_code=201)

    async def authorize(self, request: Request) -> Response:  # consent at once
        query = dict(request.query_params)
        answer = urlencode({"code": "code-1", "state": query["state"], "iss": BASE})
        return RedirectResponse(f"{query['redirect_uri']}?{answer}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if form.get("client_secret") != "front-secret":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form["grant_type"] == "authorization_code" and form.get("code") == "code-1":
            return JSONResponse(
                {
                    "access_token": "at-1",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": "rt-1",
                    "scope": "read",
                }
            )
        if form["grant_type"] == "refresh_token" and self.token_endpoint_down:
            return JSONResponse({"error": "server_error"}, status_code=500)
        if form["grant_type"] == "refresh_token" and self.refresh_ok:
            self.refreshes.append(form.get("refresh_token", ""))
            return JSONResponse({"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600, "scope": "read"})
        return JSONResponse({"error": "invalid_grant"}, status_code=400)


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthgateServer, Remote, str, HeadlessUserAgent]]:
    remote = Remote()
    with serve_asgi_in_thread(remote.app(), PORT), HeadlessUserAgent() as ua:
        server = AuthgateServer(
            tmp_path_factory.mktemp("scripted-remote"),
            extra_env={
                "AUTHGATE_UPSTREAM": f"{BASE}/mcp",
                "AUTHGATE_OUTBOUND_ALLOW_LOOPBACK_HTTP": "true",  # TESTING ONLY: the remote is on loopback
            },
        )
        server.add_user()
        server.start()
        try:
            yield server, remote, _person_token(server, ua), ua
        finally:
            server.stop()


def _person_token(server: AuthgateServer, ua: HeadlessUserAgent) -> str:
    return str(signed_in_tokens(server, "remote-tests", ua=ua)["access_token"])


def _initialize(server: AuthgateServer, token: str) -> httpx.Response:
    return httpx.post(server.mcp_url, json=initialize_request(), headers=legacy_headers(token), timeout=30)


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM_REFUSALS)
@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("resource", "another-server"),  # RFC 9728 §3.3: a PRM for someone else's resource
        ("issuer", "RFC 8414 §3.3"),  # mix-up: metadata of another issuer
        ("private", "10.20.30.40"),  # SSRF: an advertised private address is never fetched
    ],
)
def test_a_remote_whose_metadata_lies_is_refused_with_the_reason(front: Any, case: str, named: str) -> None:
    server, remote, token, _ = front
    remote.case = case
    r = _initialize(server, token)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["data"] == {"source": "authgate", "reason": "upstream_oauth_failed"}, error
    assert named in error["message"] and "/connect/" not in r.text, error["message"]
    assert "refused" in error["message"] or "private" in error["message"], error["message"]


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM)
def test_the_remotes_metadata_is_found_where_its_challenge_says(front: Any) -> None:
    # a PRM only at the challenge's resource_metadata (none at the well-known URLs): the spec
    # has a client read that URL first; before, only the well-known URLs were tried (a 502)
    server, remote, token, _ = front
    remote.case = "hidden"
    try:
        r = _initialize(server, token)
    finally:
        remote.case = "ok"
    error = r.json()["error"]
    assert r.status_code == 200 and error["data"]["reason"] == "connection_required", r.text
    assert "/connect/" in error["data"]["url"]


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM)
def test_a_refused_token_is_refreshed_once_and_sent_again_else_the_person_connects_again(front: Any) -> None:
    """(and a 403 for scopes already held ends as an error: asking again would loop)"""
    server, remote, token, ua = front
    remote.case = "ok"
    r = _initialize(server, token)
    link = r.json()["error"]["data"]["url"]  # not connected: the signal naming the link
    page = ua.open(link)
    assert isinstance(page, Page), page
    form = next(f for f in page.forms if "decision" in f.buttons)
    step = ua.submit(form, decision="connect")
    assert isinstance(step, AuthorizationResponse) and step.location.startswith(f"{BASE}/authorize"), step
    back = httpx.get(step.location, follow_redirects=False, timeout=10).headers["location"]
    assert parse_qs(urlsplit(back).query)["iss"] == [BASE]
    assert ua.http.get(back).status_code == 200  # connected: at-1 and rt-1 stored

    remote.seen.clear()
    r = _initialize(server, token)  # the remote refuses at-1: refreshed (rt-1 -> at-2), sent once more
    assert r.status_code == 200 and r.json()["result"]["serverInfo"]["name"] == "remote", r.text
    assert remote.seen == ["at-1", "at-2"] and remote.refreshes == ["rt-1"], (remote.seen, remote.refreshes)
    r = _initialize(server, token)  # at-2 is kept
    assert r.status_code == 200 and remote.seen[-1] == "at-2" and remote.refreshes == ["rt-1"]

    # 403 insufficient_scope for a scope the connection holds: an error, not another consent
    remote.forbid = "read"
    r = _initialize(server, token)
    remote.forbid = None
    assert r.status_code == 403 and r.json()["error"]["data"]["reason"] == "upstream_insufficient_scope", r.text

    # at-2 refused as well and the AS cannot refresh now: 503, retryable, the connection kept
    remote.refuse_all = remote.token_endpoint_down = True
    r = _initialize(server, token)
    assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
    assert r.json()["error"]["data"] == {
        "source": "authgate",
        "reason": "upstream_oauth_unavailable",
        "retryable": True,
    }
    assert "upstream" in server.cli("connections", "list", "--json").stdout

    # ... and then refuses the refresh (invalid_grant): dropped, and a new link
    remote.seen.clear()
    remote.refresh_ok, remote.token_endpoint_down = False, False
    r = _initialize(server, token)
    error = r.json()["error"]
    assert r.status_code == 200 and error["data"]["reason"] == "connection_required", r.text
    assert error["data"]["url"] != link and remote.seen == ["at-2"], (error, remote.seen)
    listed = server.cli("connections", "list", "--json")
    assert listed.returncode == 0 and "upstream" not in listed.stdout, listed.stdout  # the connection is gone
