"""Per-tool access from Keycloak's realm roles (issue 17, item 2): authgate in external mode reads
`realm_access.roles` of the real Keycloak's tokens (`role_claim`) and maps the realm role
`mcp-admin` to the scope `whoami` needs (`role_scopes`). alice holds the role (a token from the
realm's `cli-app`, password grant: no browser needed here); the `checker` service account does not.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.keycloak import CHECKER_ID, KeycloakSession

pytestmark = pytest.mark.keycloak

INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "roles", "version": "1"}}


def _call_whoami(http: httpx.Client, mcp_url: str, token: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    opened = http.post(
        mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT}, headers=headers
    )
    assert opened.status_code == 200, opened.text
    headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
    http.post(mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
    return http.post(mcp_url, json=call, headers=headers)


@pytest.mark.requirement(req.ISSUE17_KEYCLOAK_REALM_ROLES)
def test_a_keycloak_realm_role_opens_a_tool_and_its_absence_is_403(
    keycloak: KeycloakSession, external_authgate: Callable[..., ExternalAuthgate]
) -> None:
    gate = external_authgate(
        issuer=keycloak.issuer(),
        idp_profile="keycloak",
        tool_scopes={"whoami": ["admin.read"]},
        role_claim="realm_access.roles",
        role_scopes={"mcp-admin": ["admin.read"]},
    )
    token_url = f"{keycloak.issuer()}/protocol/openid-connect/token"
    with httpx.Client(timeout=30.0) as http:
        alice = http.post(
            token_url,
            data={
                "grant_type": "password",
                "client_id": "cli-app",
                "username": "alice",
                "password": keycloak.user_password,
            },
        )
        assert alice.status_code == 200, alice.text
        service = http.post(
            token_url,
            data={"grant_type": "client_credentials", "scope": "mcp"},
            auth=(CHECKER_ID, keycloak.checker_secret),
        )
        allowed = _call_whoami(http, gate.mcp_url, alice.json()["access_token"])
        assert allowed.status_code == 200 and '\\"username\\": \\"alice\\"' in allowed.text, allowed.text
        refused = _call_whoami(http, gate.mcp_url, service.json()["access_token"])
    assert refused.status_code == 403, refused.text
    challenge = refused.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and "admin.read" in challenge
