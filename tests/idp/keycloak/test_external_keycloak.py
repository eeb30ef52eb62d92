"""External mode in front of a real Keycloak (issue 17, item 2): the `mcp` SDK's OAuthClientProvider
registers at the realm (DCR through the Trusted Hosts policy), a person signs in on Keycloak's own
login page in headless Chromium, and the SDK calls `whoami` through authgate with Keycloak's token
(its `aud` from the realm's audience mapper, seed 003 §2.3). A token for another audience → 401; a
token without the `mcp` scope → 403 insufficient_scope.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.keycloak import CHECKER_ID, KeycloakSession
from support.keycloak_login import KeycloakBrowser, require_chromium
from support.sdk_oauth import MemoryTokenStorage, public_client

pytestmark = pytest.mark.keycloak

REDIRECT_URI = "http://127.0.0.1:38973/oauth/callback"  # caught by the browser; nothing listens
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
FLOW_TIMEOUT = 120.0
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def service_token(keycloak: KeycloakSession, client_id: str, scope: str | None) -> str:
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    answer = httpx.post(
        f"{keycloak.issuer()}/protocol/openid-connect/token",
        data=data,
        auth=(client_id, keycloak.checker_secret),
        timeout=30.0,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.mark.browser
@pytest.mark.requirement(req.ISSUE17_EXTERNAL_MODE_REAL_KEYCLOAK)
@pytest.mark.requirement(req.RFC9207_ISS)
async def test_sdk_client_registers_signs_in_on_keycloaks_page_and_calls_whoami(
    keycloak: KeycloakSession, external_authgate: Callable[..., ExternalAuthgate]
) -> None:
    require_chromium()
    gate = external_authgate(issuer=keycloak.issuer(), idp_profile="keycloak")
    assert gate.mcp_url == keycloak.mcp_url  # the URL the realm's audience mapper names
    ARTIFACTS.mkdir(exist_ok=True)
    browser = KeycloakBrowser("alice", keycloak.user_password, REDIRECT_URI, ARTIFACTS / "keycloak-login.png")
    storage, seen = MemoryTokenStorage(), []
    provider = public_client(
        gate.mcp_url, "sdk via keycloak", REDIRECT_URI, storage, browser.redirect_handler, browser.callback_handler
    )

    async def log(response: httpx2.Response) -> None:
        seen.append((response.request.method, urlsplit(str(response.request.url)).path, response.status_code))

    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(60.0), event_hooks={"response": [log]}) as http:
        with anyio.fail_after(FLOW_TIMEOUT):
            async with Client(streamable_http_client(gate.mcp_url, http_client=http)) as client:
                tools = [t.name for t in (await client.list_tools()).tools]
                result = await client.call_tool("whoami", {})
    assert "whoami" in tools and not result.is_error, result.content
    who: dict[str, Any] = json.loads(next(c.text for c in result.content if isinstance(c, TextContent)))

    assert who["authenticated"] is True and who["username"] == "alice"  # Keycloak's preferred_username
    assert storage.client_info is not None and who["client_id"] == storage.client_info.client_id
    assert "mcp" in who["scopes"]
    # The whole authorization-server leg happened at the realm.
    assert ("POST", "/realms/mcp/clients-registrations/openid-connect", 201) in seen
    assert ("POST", "/realms/mcp/protocol/openid-connect/token", 200) in seen
    query = parse_qs(urlsplit(browser.urls[0]).query)
    assert browser.urls[0].startswith(f"{keycloak.issuer()}/protocol/openid-connect/auth?")
    assert query["code_challenge_method"] == ["S256"] and query["resource"] == [gate.mcp_url]
    assert browser.params.get("iss") == keycloak.issuer()  # RFC 9207, from Keycloak
    assert "/realms/mcp/protocol/openid-connect/auth" in browser.pages[0]  # Keycloak's login page
    assert len(browser.pages) >= 2  # then its consent page (the anonymous Consent Required policy)


@pytest.mark.requirement(req.ISSUE17_EXTERNAL_MODE_REAL_KEYCLOAK)
@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
def test_another_audience_is_401_and_a_missing_scope_403(
    keycloak: KeycloakSession, external_authgate: Callable[..., ExternalAuthgate]
) -> None:
    gate = external_authgate(issuer=keycloak.issuer(), idp_profile="keycloak")
    other = service_token(keycloak, "other-app", None)  # aud: https://other.example.com/mcp, account
    no_scope = service_token(keycloak, CHECKER_ID, None)  # aud: the MCP URL; scope without mcp
    good = service_token(keycloak, CHECKER_ID, "mcp")
    with httpx.Client(timeout=15.0) as http:

        def call(token: str) -> httpx.Response:
            return http.post(gate.mcp_url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {token}"})

        refused = call(other)
        assert refused.status_code == 401
        challenge = refused.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge and "audience" in challenge
        short = call(no_scope)
        assert short.status_code == 403
        assert 'error="insufficient_scope"' in short.headers["www-authenticate"]
        assert 'scope="mcp' in short.headers["www-authenticate"]
        assert call(good).status_code == 200
