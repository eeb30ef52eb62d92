"""Keycloak's own CIMD in external mode (issue 17, item 4): Claude's pinned client ID metadata
document, served by the session's stand-in over HTTPS (a test CA Keycloak trusts), is the client id
of an authorization request at the realm. Keycloak fetches it (client policy: condition
client-id-uri, executor client-id-metadata-document), shows its login and consent pages, redeems
the code for the public client (PKCE), and authgate accepts the token: aud from the `mcp` scope's
audience mapper, azp the document's URL.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from urllib.parse import urlencode

import anyio.to_thread
import httpx
import pytest

from authgate.doctor.profiles import PROFILES, mapped_cimd_url
from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.flow_load import pkce_pair
from support.keycloak import KeycloakSession
from support.keycloak_login import KeycloakBrowser, require_chromium

pytestmark = [pytest.mark.keycloak, pytest.mark.browser]

CLAUDE_CALLBACK = "https://claude.ai/api/mcp/auth_callback"  # seen as a request; never reached offline


@pytest.mark.requirement(req.ISSUE17_KEYCLOAK_CIMD)
@pytest.mark.requirement(req.ISSUE17_EXTERNAL_MODE_REAL_KEYCLOAK)
async def test_a_cimd_client_signs_in_at_keycloak_and_authgate_accepts_its_token(
    keycloak: KeycloakSession, external_authgate: Callable[..., ExternalAuthgate]
) -> None:
    require_chromium()
    gate = external_authgate(issuer=keycloak.issuer(), idp_profile="keycloak")
    client_id = mapped_cimd_url(PROFILES["claude"], {"claude.ai": keycloak.standin})
    assert client_id and client_id.startswith(keycloak.standin)
    verifier, challenge = pkce_pair()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CLAUDE_CALLBACK,
        "scope": "mcp",
        "state": secrets.token_urlsafe(16),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": gate.mcp_url,
    }
    browser = KeycloakBrowser("alice", keycloak.user_password, CLAUDE_CALLBACK)
    url = f"{keycloak.issuer()}/protocol/openid-connect/auth?{urlencode(query)}"
    params = await anyio.to_thread.run_sync(browser.sign_in, url)
    assert params["state"] == query["state"] and params["iss"] == keycloak.issuer()
    async with httpx.AsyncClient(timeout=30.0) as http:
        answer = await http.post(
            f"{keycloak.issuer()}/protocol/openid-connect/token",
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": CLAUDE_CALLBACK,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": gate.mcp_url,
            },
        )
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["azp"] == client_id and gate.mcp_url in claims["aud"]
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18",
        }
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cimd", "version": "1"}}
        opened = await http.post(
            gate.mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, headers=headers
        )
        assert opened.status_code == 200, opened.text
        headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
        await http.post(gate.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        called = await http.post(
            gate.mcp_url,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}},
            headers=headers,
        )
    assert called.status_code == 200, called.text
    assert client_id in called.text and "alice" in called.text  # whoami: the CIMD client, the person
