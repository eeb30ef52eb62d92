"""RFC 8693 token exchange toward an AS that trusts authgate's issuer (issue 15 done-when 4).

authgate (library mode: `authgate.protect` around an SDK MCPServer, uvicorn on loopback) has two
providers marked `token_exchange`; `token_exchange_issuers` lists the first one's AS only. A tool
asks for the caller's token at each (`authgate.connection_token`).

The remote AS is a small RFC 8693 authorization server in this test (TrustingAs): authgate's own
AS has no token-exchange grant, and no real AS here accepts a JWT subject token from a foreign
issuer without an identity-federation setup that cannot run in CI (Keycloak's external-to-internal
exchange is a preview feature needing an identity provider and fine-grained permissions). It does
what such an AS must: authgate's JWKS fetched over HTTP, the subject token's signature, typ, iss,
aud (its own issuer), exp, lifetime and jti checked, then a token for that subject.

Toward the listed AS: the person gets a token for their own authgate subject, no browser step,
stored as a connection (the next call reuses it). Toward the unlisted AS: no request at all (its
request count stays 0), and the person is asked to connect instead (this client declares no
elicitation.url: a tool error naming the connect page).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import authgate
from authgate.outbound.exchange import ACCESS_TOKEN_TYPE, GRANT_TYPE, JWT_TYPE
from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread
from support.flow_load import signed_in_tokens
from support.ports import free_port

SECRET = "token-exchange-" + "s" * 32
OFF = TransportSecuritySettings(enable_dns_rebinding_protection=False)


class TrustingAs:
    """An AS that accepts subject tokens from one trusted issuer (authgate), by its JWKS."""

    def __init__(self, trusted_issuer: str) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.trusted_issuer = trusted_issuer
        self.requests: list[str] = []  # every request, any path
        self.exchanges: list[dict[str, str]] = []
        self.refused: list[str] = []
        self.jtis: set[str] = set()

    def app(self) -> Starlette:
        async def metadata(request: Request) -> Response:
            self.requests.append(request.url.path)
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                    "code_challenge_methods_supported": ["S256"],
                    "grant_types_supported": ["authorization_code", GRANT_TYPE],
                }
            )

        async def token(request: Request) -> Response:
            self.requests.append(request.url.path)
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.exchanges.append(form)
            try:
                subject = await self._subject(form)
            except ValueError as exc:
                self.refused.append(str(exc))
                return JSONResponse({"error": "invalid_grant", "error_description": str(exc)}, status_code=400)
            return JSONResponse(
                {
                    "access_token": f"remote-token-of-{subject}",
                    "issued_token_type": ACCESS_TOKEN_TYPE,
                    "token_type": "Bearer",
                    "expires_in": 600,
                    "scope": form.get("scope", ""),
                }
            )

        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", metadata),
                Route("/token", token, methods=["POST"]),
            ]
        )

    async def _subject(self, form: dict[str, str]) -> str:
        if form.get("grant_type") != GRANT_TYPE or form.get("subject_token_type") != JWT_TYPE:
            raise ValueError("not a JWT token exchange")
        async with httpx.AsyncClient(timeout=10) as http:  # the trusted issuer's keys
            jwks = (await http.get(f"{self.trusted_issuer}/jwks.json")).json()
        token = jwt.decode(form["subject_token"], KeySet.import_key_set(jwks))
        claims, now = token.claims, time.time()
        if token.header.get("typ") != "JWT":
            raise ValueError("typ")
        if claims.get("iss") != self.trusted_issuer or claims.get("aud") != self.issuer:
            raise ValueError("iss or aud")
        if not claims["iat"] - 5 <= now < claims["exp"] or claims["exp"] - claims["iat"] > 300:
            raise ValueError("lifetime")
        if claims["jti"] in self.jtis:
            raise ValueError("jti replayed")
        self.jtis.add(claims["jti"])
        return str(claims["sub"])


def library_app() -> Any:
    mcp = MCPServer("exchange-tests")

    @mcp.tool()
    async def token_at(ctx: Context, provider: str) -> str:
        return await authgate.connection_token(ctx, provider)

    return mcp.streamable_http_app(transport_security=OFF)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[AuthgateServer, TrustingAs, TrustingAs]]:
    server = AuthgateServer(tmp_path / "authgate")
    trusted, untrusted = TrustingAs(server.issuer), TrustingAs(server.issuer)
    providers = {
        "partner": {"issuer": trusted.issuer, "token_exchange": True, "scopes": ["files.read"]},
        "stranger": {"issuer": untrusted.issuer, "token_exchange": True},
    }
    server.add_user()
    app = authgate.protect(
        library_app(),
        public_url=server.url,
        data_dir=server.data_dir,
        secret_key=SECRET,
        connection_providers=providers,
        token_exchange_issuers=[trusted.issuer],
        outbound_allow_loopback_http=True,
    )
    with (
        serve_asgi_in_thread(trusted.app(), trusted.port),
        serve_asgi_in_thread(untrusted.app(), untrusted.port),
        serve_asgi_in_thread(app, server.port, lifespan="on"),
    ):
        yield server, trusted, untrusted


def alice_token(server: AuthgateServer) -> tuple[str, str]:
    """alice's access token at authgate, and her authgate subject."""
    token = str(signed_in_tokens(server, "exchange-test", resource=server.mcp_url)["access_token"])
    return token, str(
        jwt.decode(token, KeySet.import_key_set(httpx.get(server.endpoint("jwks.json")).json())).claims["sub"]
    )


async def _call(server: AuthgateServer, token: str, provider: str) -> tuple[bool, str]:
    """(is_error, text) of the tool's answer; this client declares no elicitation.url."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0)) as http:
        async with Client(streamable_http_client(server.mcp_url, http_client=http), mode="legacy") as client:
            result = await client.call_tool("token_at", {"provider": provider})
    return bool(result.is_error), "".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.requirement(req.ISSUE15_TOKEN_EXCHANGE)
def test_a_trusting_as_gives_the_persons_token_by_exchange_and_no_other_as_is_asked(
    world: tuple[AuthgateServer, TrustingAs, TrustingAs],
) -> None:
    server, trusted, untrusted = world
    token, subject = alice_token(server)

    async def main() -> list[tuple[bool, str]]:
        with anyio.fail_after(60):  # the second call finds the stored connection: no second exchange
            return [await _call(server, token, provider) for provider in ("partner", "partner", "stranger")]

    first, again, asked = anyio.run(main)
    assert first == again == (False, f"remote-token-of-{subject}")
    assert trusted.refused == [] and len(trusted.exchanges) == 1
    (sent,) = trusted.exchanges
    assert sent["requested_token_type"] == ACCESS_TOKEN_TYPE and sent["audience"] == trusted.issuer
    assert sent["scope"] == "files.read" and "client_secret" not in sent
    assert untrusted.requests == []  # not listed: never asked anything, not even its metadata
    assert asked[0] and f"{server.url}/connect/" in asked[1]  # the person is asked to connect instead
    listed = server.cli("connections", "list", "--json")
    assert listed.returncode == 0 and "partner" in listed.stdout and "remote-token" not in listed.stdout
