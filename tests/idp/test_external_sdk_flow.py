"""The official MCP SDK client (`mcp` 2.3.0) signs in at a real external IdP (oidc-provider) and
calls `whoami` through authgate in external mode, in two IdP shapes:

* Auth0-like: issuer ending in '/', only OIDC discovery (no RFC 8414 document), `resource`
  ignored for a fixed default audience (the MCP URL), DCR at /oidc/register;
* Keycloak-like: issuer /realms/<realm>, DCR at .../clients-registrations/openid-connect.

authgate is only the resource guard: its PRM names the IdP, the client registers (DCR) and
gets its token at the IdP, and authgate's own authorization server routes answer 404.

The Keycloak-like shape (`support.idp_peers.keycloak_like`) is the fast path, without Java: it
stands in for Keycloak's issuer path, endpoint paths and DCR endpoint only — it honours `resource`
instead of an audience mapper, has no registration policies or client scopes, and types its tokens
`at+jwt`. The same things against a real Keycloak: tests/idp/keycloak/test_external_keycloak.py
(the SDK signs in on Keycloak's own login page).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, TextContent

from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.idp_peers import IdpBrowser, OidcProvider, ProviderShape, auth0_like, keycloak_like
from support.ports import free_port
from support.sdk_oauth import MemoryTokenStorage, public_client

REDIRECT_URI = "http://127.0.0.1:38972/oauth/callback"  # never listened on
FLOW_TIMEOUT = 60.0
SHAPES: dict[str, tuple[Callable[[int, str], ProviderShape], str]] = {
    "auth0-like": (auth0_like, "auth0"),
    "keycloak-like": (keycloak_like, "keycloak"),
}


def _whoami(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    text = next(c.text for c in result.content if isinstance(c, TextContent))
    payload: dict[str, Any] = json.loads(text)
    return payload


async def _sign_in_and_whoami(
    gate: ExternalAuthgate,
    browser: IdpBrowser,
    storage: MemoryTokenStorage,
    mode: str,
    seen: list[tuple[str, str, int]],
) -> tuple[list[str], dict[str, Any]]:
    provider = public_client(
        gate.mcp_url,
        "sdk external-mode test",
        REDIRECT_URI,
        storage,
        browser.redirect_handler,
        browser.callback_handler,
    )

    async def log(response: httpx2.Response) -> None:
        seen.append((response.request.method, str(response.request.url), response.status_code))

    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0), event_hooks={"response": [log]}) as http:
        with anyio.fail_after(FLOW_TIMEOUT):
            async with Client(streamable_http_client(gate.mcp_url, http_client=http), mode=mode) as client:
                tools = await client.list_tools()
                return [t.name for t in tools.tools], _whoami(await client.call_tool("whoami", {}))


@pytest.mark.requirement(req.RFC9728_2_AUTHORIZATION_SERVERS)
@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_OIDC_DISCOVERY)
@pytest.mark.requirement(req.RFC7591_3_REGISTRATION)
@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_PKCE_S256)
@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("shape_id", list(SHAPES))
async def test_sdk_client_signs_in_at_the_idp_and_calls_whoami_through_authgate(
    idp: Callable[..., OidcProvider],
    external_authgate: Callable[..., ExternalAuthgate],
    mcp_port: int,
    shape_id: str,
    mode: str,
) -> None:
    make_shape, profile = SHAPES[shape_id]
    mcp_url = f"http://127.0.0.1:{mcp_port}/mcp"
    provider = idp(make_shape(free_port(), mcp_url))
    gate = external_authgate(issuer=provider.issuer, idp_profile=profile)
    browser, storage, seen = IdpBrowser("alice"), MemoryTokenStorage(), []
    try:
        tools, who = await _sign_in_and_whoami(gate, browser, storage, mode, seen)
    finally:
        browser.agent.close()

    assert "whoami" in tools
    assert who["authenticated"] is True and who["subject"] == "alice"  # the IdP's subject
    assert storage.client_info is not None and who["client_id"] == storage.client_info.client_id
    assert "mcp" in who["scopes"]
    # The whole AS leg happened at the IdP: DCR at its endpoint, PKCE S256, the code from it.
    registrations = [u for m, u, s in seen if m == "POST" and s == 201]
    expected_dcr = "/oidc/register" if shape_id == "auth0-like" else "/realms/mcp/clients-registrations/openid-connect"
    assert [urlsplit(u).path for u in registrations] == [expected_dcr]
    query = parse_qs(urlsplit(browser.urls[0]).query)
    assert query["code_challenge_method"] == ["S256"] and query["resource"] == [mcp_url]
    assert browser.params.get("iss") == provider.issuer  # RFC 9207, exact (trailing slash included)
    at_idp = [(m, urlsplit(u).path, s) for m, u, s in seen if urlsplit(u).netloc == urlsplit(provider.issuer).netloc]
    if shape_id == "auth0-like":  # no RFC 8414 document: the client fell back to OIDC discovery
        assert ("GET", "/.well-known/oauth-authorization-server", 404) in at_idp
        assert ("GET", "/.well-known/openid-configuration", 200) in at_idp
    assert not any(
        urlsplit(u).netloc == urlsplit(gate.url).netloc and urlsplit(u).path in ("/token", "/register")
        for _, u, _ in seen
    )


@pytest.mark.requirement(req.RFC9728_3_2_RESPONSE)
@pytest.mark.parametrize("shape_id", list(SHAPES))
def test_external_mode_serves_prm_naming_the_idp_and_no_authorization_server(
    idp: Callable[..., OidcProvider],
    external_authgate: Callable[..., ExternalAuthgate],
    mcp_port: int,
    shape_id: str,
) -> None:
    make_shape, profile = SHAPES[shape_id]
    provider = idp(make_shape(free_port(), f"http://127.0.0.1:{mcp_port}/mcp"))
    gate = external_authgate(issuer=provider.issuer, idp_profile=profile)
    with httpx.Client(base_url=gate.url, timeout=10.0) as http:
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            prm = http.get(path).json()
            assert prm["resource"] == gate.mcp_url
            assert prm["authorization_servers"] == [provider.issuer]
        for method, path in (
            ("GET", "/.well-known/oauth-authorization-server"),
            ("GET", "/authorize"),
            ("POST", "/token"),
            ("POST", "/register"),
            ("POST", "/revoke"),
            ("POST", "/login"),
            ("POST", "/consent"),
            ("GET", "/jwks.json"),
        ):
            assert http.request(method, path).status_code == 404, path
        assert http.get("/health/ready").json() == {"status": "ready", "idp": "ok"}
        challenge = http.post("/mcp", json={}).headers["www-authenticate"]
        assert 'resource_metadata="' + gate.url + '/.well-known/oauth-protected-resource/mcp"' in challenge


@pytest.mark.requirement(req.RFC8414_3_3_ISSUER_IDENTICAL)
def test_mirror_serves_the_idp_metadata_under_authgates_own_issuer(
    idp: Callable[..., OidcProvider],
    external_authgate: Callable[..., ExternalAuthgate],
    mcp_port: int,
) -> None:
    provider = idp(auth0_like(free_port(), f"http://127.0.0.1:{mcp_port}/mcp"))
    gate = external_authgate(issuer=provider.issuer, idp_profile="auth0", mirror_as_metadata=True)
    upstream = provider.discovery()
    with httpx.Client(base_url=gate.url, timeout=10.0) as http:
        mirrored = http.get("/.well-known/oauth-authorization-server").json()
        assert http.get("/.well-known/oauth-protected-resource").json()["authorization_servers"] == [provider.issuer]
        assert http.post("/token").status_code == 404
    assert mirrored["issuer"] == gate.url  # the URL it is served under, not the IdP's
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "registration_endpoint",
        "jwks_uri",
        "code_challenge_methods_supported",
    ):
        assert mirrored[name] == upstream[name]
    assert "authorization_response_iss_parameter_supported" not in mirrored  # RFC 9207: iss names the IdP
