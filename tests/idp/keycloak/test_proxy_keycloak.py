"""Proxy mode with Keycloak as the upstream IdP (issue 17, item 3): the realm's pre-registered
confidential client `authgate-proxy` is authgate's; the `mcp` SDK client registers at authgate,
the person consents at authgate, signs in on Keycloak's login page (headless Chromium) and the
client gets authgate's own tokens. The realm's access tokens live 60 s, so every authgate refresh
re-checks the upstream refresh token (docs/idp/proxy.md). The `oidc` preset asks offline_access, so
that token is a Keycloak offline token; signing the person out of every session at Keycloak ended it
in our runs (once only after one more refresh passed), revoking her grant to authgate's client
always does: authgate's next refresh answers invalid_grant "sign in again".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent
from proxy_harness import proxy_gate

from support import requirements as req
from support.keycloak import KeycloakSession
from support.keycloak_login import KeycloakBrowser, require_chromium
from support.sdk_oauth import MemoryTokenStorage, public_client

pytestmark = [pytest.mark.keycloak, pytest.mark.browser]

REDIRECT_URI = "http://127.0.0.1:38974/oauth/callback"  # caught by the browser; nothing listens
FLOW_TIMEOUT = 120.0


def _point_the_realm_client_at(keycloak: KeycloakSession, callback: str) -> None:
    with keycloak.server.admin() as admin:
        [client] = admin.get("/mcp/clients", params={"clientId": "authgate-proxy"}).json()
        client["redirectUris"] = [callback]
        assert admin.put(f"/mcp/clients/{client['id']}", json=client).status_code == 204


@pytest.mark.requirement(req.ISSUE17_PROXY_MODE_REAL_KEYCLOAK)
async def test_proxy_mode_signs_in_at_keycloak_and_a_keycloak_logout_ends_the_grant_at_refresh(
    keycloak: KeycloakSession, tmp_path: Path
) -> None:
    require_chromium()
    gate = proxy_gate(
        tmp_path / "gate",
        idp_preset="oidc",
        idp_client_id="authgate-proxy",
        idp_client_secret=keycloak.values["PROXY_SECRET"],
    )
    gate.env["AUTHGATE_IDP_ISSUER"] = keycloak.issuer()
    _point_the_realm_client_at(keycloak, f"{gate.url}/upstream/callback")
    gate.start()
    try:
        browser = KeycloakBrowser("alice", keycloak.user_password, REDIRECT_URI)
        storage = MemoryTokenStorage()
        provider = public_client(
            gate.mcp_url, "sdk proxy via keycloak", REDIRECT_URI, storage, browser.redirect_handler,
            browser.callback_handler,
        )  # fmt: skip
        async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(60.0)) as http:
            with anyio.fail_after(FLOW_TIMEOUT):
                async with Client(streamable_http_client(gate.mcp_url, http_client=http), mode="legacy") as client:
                    result = await client.call_tool("whoami", {})
        who: dict[str, Any] = json.loads(next(c.text for c in result.content if isinstance(c, TextContent)))
        assert who["authenticated"] is True and who["username"] == "alice"
        assert who["subject"].startswith(keycloak.issuer() + "|")  # the upstream's subject, namespaced
        assert browser.urls[0].startswith(gate.url + "/authorize?")  # the client met only authgate
        assert any("/realms/mcp/protocol/openid-connect/auth" in p for p in browser.pages)  # then Keycloak's page
        assert storage.tokens is not None and storage.tokens.refresh_token and storage.client_info is not None

        def refresh(token: str) -> httpx.Response:
            assert storage.client_info is not None
            return httpx.post(
                f"{gate.url}/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": token,
                    "client_id": storage.client_info.client_id,
                },
                timeout=30.0,
            )

        renewed = refresh(storage.tokens.refresh_token)
        assert renewed.status_code == 200, renewed.text  # Keycloak's refresh token still good
        with keycloak.server.admin() as admin:
            [alice] = admin.get("/mcp/users", params={"username": "alice", "exact": "true"}).json()
            # Sign her out of every session. authgate holds an offline token (the `oidc` preset asks
            # offline_access); 26.7.3 ended it too in our runs, once not before the next refresh
            # (docs/idp/keycloak.md). Then revoking her grant to authgate's client ends it for sure.
            assert admin.post(f"/mcp/users/{alice['id']}/logout").status_code == 204
            ended = refresh(renewed.json()["refresh_token"])
            if ended.status_code == 200:
                assert admin.delete(f"/mcp/users/{alice['id']}/consents/authgate-proxy").status_code == 204
                ended = refresh(ended.json()["refresh_token"])
        assert ended.status_code == 400, ended.text
        assert ended.json()["error"] == "invalid_grant" and "sign in again" in ended.json()["error_description"]
    finally:
        gate.stop()
