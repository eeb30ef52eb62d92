"""A protected upstream whose metadata lies is refused before any connect link (issue 15): the
front (`authgate serve --upstream`, upstream_oauth auto) in front of a small remote on loopback
that answers 401 with a Bearer challenge and serves, case by case, a PRM naming another
resource (RFC 9728 §3.3), AS metadata naming another issuer (RFC 8414 §3.3), or an AS at a
private address (the outbound client's SSRF guard). Each refusal is the outbound client's own
check (authgate.outbound.discovery, oauth/cimd/fetching.py), reached through the broker: the
person's MCP client gets a 502 naming it, and no link to a page that would fail later.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.flow_load import CALLBACK, auth_url, pkce_pair
from support.headless import HeadlessUserAgent
from support.ports import free_port

from .mcp_wire import initialize_request, legacy_headers

PORT = free_port()
BASE = f"http://127.0.0.1:{PORT}"
CASE = {"now": "resource"}


def _remote() -> Starlette:
    async def mcp(request: Request) -> Response:
        challenge = f'Bearer resource_metadata="{BASE}/.well-known/oauth-protected-resource/mcp"'
        return JSONResponse({"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": challenge})

    async def prm(request: Request) -> Response:
        resource = f"{BASE}/another-server" if CASE["now"] == "resource" else f"{BASE}/mcp"
        server = "http://10.20.30.40:8080" if CASE["now"] == "private" else BASE
        return JSONResponse({"resource": resource, "authorization_servers": [server], "scopes_supported": ["read"]})

    async def metadata(request: Request) -> Response:
        issuer = f"{BASE}/somebody-else" if CASE["now"] == "issuer" else BASE
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{BASE}/authorize",
                "token_endpoint": f"{BASE}/token",
                "registration_endpoint": f"{BASE}/register",
                "code_challenge_methods_supported": ["S256"],
            }
        )

    return Starlette(
        routes=[
            Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]),
            Route("/.well-known/oauth-protected-resource/mcp", prm),
            Route("/.well-known/oauth-authorization-server", metadata),
        ]
    )


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthgateServer, str]]:
    with serve_asgi_in_thread(_remote(), PORT):
        server = AuthgateServer(
            tmp_path_factory.mktemp("lying-remote"),
            extra_env={
                "AUTHGATE_UPSTREAM": f"{BASE}/mcp",
                "AUTHGATE_OUTBOUND_ALLOW_LOOPBACK_HTTP": "true",  # TESTING ONLY: the remote is on loopback
            },
        )
        server.add_user()
        server.start()
        try:
            yield server, _person_token(server)
        finally:
            server.stop()


def _person_token(server: AuthgateServer) -> str:
    r = httpx.post(
        server.endpoint("register"),
        json={"client_name": "refusals", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"},
        timeout=10,
    )
    client_id = r.json()["client_id"]
    verifier, challenge = pkce_pair()
    with HeadlessUserAgent() as ua:
        answer = ua.authorize(auth_url(server.url, client_id, challenge), server.username, server.password)
    form = {
        "grant_type": "authorization_code",
        "code": answer.code or "",
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
    }
    r = httpx.post(server.endpoint("token"), data=form, timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


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
    server, token = front
    CASE["now"] = case
    r = httpx.post(server.mcp_url, json=initialize_request(), headers=legacy_headers(token), timeout=30)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["data"] == {"source": "authgate", "reason": "upstream_oauth_failed"}, error
    assert named in error["message"] and "/connect/" not in r.text, error["message"]
    assert "refused" in error["message"] or "private" in error["message"] or "loopback" in error["message"]
