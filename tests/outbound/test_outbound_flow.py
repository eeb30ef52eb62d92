"""The outbound client's whole flow against a small real AS on loopback: DCR, the authorization
redirect, the token, a refresh before expiry (no sleeping: the margin is above the lifetime),
and concurrent 401s sharing one authorization (issue 15)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from authgate.oauth.cimd.fetching import PinnedFetcher, system_dns
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.outbound import OutboundAuthError, OutboundClient, OutboundSettings
from authgate.outbound.registration import ClientProfile
from support import requirements as req
from support.authgate_server import serve_asgi_in_thread
from support.ports import free_port

PORT = free_port()
BASE = f"http://127.0.0.1:{PORT}"
REDIRECT = "http://127.0.0.1:9/callback"


class FakeAs:
    """Records what the client sent to each endpoint."""

    def __init__(self) -> None:
        self.registrations: list[dict[str, Any]] = []
        self.authorizations: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []

    def app(self) -> Starlette:
        async def prm(request: Request) -> Response:
            return JSONResponse({"resource": f"{BASE}/mcp", "authorization_servers": [BASE]})

        async def metadata(request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": BASE,
                    "authorization_endpoint": f"{BASE}/authorize",
                    "token_endpoint": f"{BASE}/token",
                    "registration_endpoint": f"{BASE}/register",
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_post"],
                    "scopes_supported": ["read", "offline_access"],
                    "authorization_response_iss_parameter_supported": True,
                }
            )

        async def register(request: Request) -> Response:
            self.registrations.append(await request.json())
            body = {"client_id": "c1", "client_secret": "s1", "token_endpoint_auth_method": "client_secret_post"}
            return JSONResponse(body, status_code=201)

        async def authorize(request: Request) -> Response:
            query = dict(request.query_params)
            self.authorizations.append(query)
            return RedirectResponse(f"{query['redirect_uri']}?code=code1&state={query['state']}&iss={BASE}", 302)

        async def token(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.token_requests.append(form)
            if form.get("client_secret") != "s1":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if form["grant_type"] == "authorization_code" and form.get("code") == "code1":
                return JSONResponse(
                    {"access_token": "at1", "token_type": "Bearer", "expires_in": 1, "refresh_token": "rt1"}
                )
            if form["grant_type"] == "refresh_token" and form.get("refresh_token") == "rt1":
                return JSONResponse({"access_token": "at2", "token_type": "bearer", "expires_in": 3600})
            return JSONResponse({"error": "invalid_grant"}, status_code=400)

        return Starlette(
            routes=[
                Route("/.well-known/oauth-protected-resource/mcp", prm),
                Route("/.well-known/oauth-authorization-server", metadata),
                Route("/register", register, methods=["POST"]),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ]
        )


@pytest.fixture
def fake_as() -> Iterator[FakeAs]:
    fake = FakeAs()
    with serve_asgi_in_thread(fake.app(), PORT):
        yield fake


def _client(margin: float) -> tuple[OutboundClient, PinnedFetcher]:
    fetcher = PinnedFetcher(CimdPolicy(allow_loopback_http=True, timeout=10), system_dns, None)

    async def browser(url: str) -> str:
        status, headers, _ = await fetcher.exchange("GET", url, what="authorization request")
        if status != 302:
            raise OutboundAuthError(f"authorization endpoint answered {status}")
        return str(headers["location"])

    settings = OutboundSettings(
        server_url=f"{BASE}/mcp",
        profile=ClientProfile(redirect_uri=REDIRECT),
        allow_loopback_http=True,
        refresh_margin=margin,
    )
    return OutboundClient(settings, browser, fetcher), fetcher


@pytest.mark.requirement(req.ISSUE15_OUTBOUND_REFRESH)
def test_registers_authorizes_and_refreshes_before_expiry(fake_as: FakeAs) -> None:
    async def flow() -> tuple[str, str | None]:
        client, _ = _client(margin=30.0)  # above the 1 s lifetime: the next use refreshes
        try:
            first = await client.on_unauthorized(
                f'Bearer resource_metadata="{BASE}/.well-known/oauth-protected-resource/mcp"'
            )
            return first, await client.fresh_bearer()
        finally:
            await client.aclose()

    first, second = asyncio.run(flow())
    assert (first, second) == ("at1", "at2")
    assert fake_as.registrations[0]["redirect_uris"] == [REDIRECT]
    assert fake_as.registrations[0]["application_type"] == "native"
    (asked,) = fake_as.authorizations
    assert asked["resource"] == f"{BASE}/mcp" and asked["code_challenge_method"] == "S256"
    assert "scope" not in asked  # none challenged, none in the PRM: omitted (offline_access only joins a scope)
    code, refresh = fake_as.token_requests
    assert code["grant_type"] == "authorization_code" and code["resource"] == f"{BASE}/mcp"
    assert code["client_id"] == "c1" and code["code_verifier"]
    assert refresh == {
        "grant_type": "refresh_token",
        "refresh_token": "rt1",
        "resource": f"{BASE}/mcp",
        "client_id": "c1",
        "client_secret": "s1",
    }


@pytest.mark.requirement(req.ISSUE15_OUTBOUND_REFRESH)
def test_concurrent_401s_share_one_authorization(fake_as: FakeAs) -> None:
    async def flow() -> list[str]:
        client, _ = _client(margin=0.0)
        try:
            challenge = f'Bearer resource_metadata="{BASE}/.well-known/oauth-protected-resource/mcp"'
            return list(await asyncio.gather(*(client.on_unauthorized(challenge, None) for _ in range(3))))
        finally:
            await client.aclose()

    assert asyncio.run(flow()) == ["at1", "at1", "at1"]
    assert len(fake_as.authorizations) == 1 and len(fake_as.registrations) == 1


@pytest.mark.requirement(req.ISSUE15_WWW_AUTHENTICATE_PARSER)
def test_the_bearer_challenge_after_a_dpop_one_gives_the_scope(fake_as: FakeAs) -> None:
    async def flow() -> str:
        client, _ = _client(margin=0.0)
        try:
            prm = f"{BASE}/.well-known/oauth-protected-resource/mcp"
            return await client.on_unauthorized(f'DPoP algs="ES256", Bearer scope="read", resource_metadata="{prm}"')
        finally:
            await client.aclose()

    assert asyncio.run(flow()) == "at1"
    (asked,) = fake_as.authorizations
    assert asked["scope"] == "read offline_access"  # the challenge's scope (the PRM has none), SEP-2207
