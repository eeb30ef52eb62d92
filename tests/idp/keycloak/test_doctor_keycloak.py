"""`authgate doctor` against authgate in front of a real Keycloak (issue 17, item 5): every client
profile follows authgate's PRM to the realm, finds its metadata, registers there by DCR (deleted
again through RFC 7592) and reaches tools/list through authgate with a Keycloak token (`--token`:
the realm's `checker` client, scope mcp, aud the MCP URL from the `mcp` scope's audience mapper).

The realm (realms/mcp.json) carries what the replays needed beyond seed 003's list, each a
finding of this test: ChatGPT asks for every scope the realm advertises, so the scopes DCR clients
cannot get (`service_account`, built in since 26.x, and audience-only scopes) are hidden from the
metadata (`include.in.openid.provider.metadata` false); the Inspector's DCR names a `client_uri`
on github.com, which the Trusted Hosts policy checks (Client URIs Must Match), and sends an Origin
that the anonymous Allowed Registration Web Origins policy must list. What no realm setting fixes:
Keycloak's CORS preflight on its metadata does not allow the MCP-Protocol-Version header the
Inspector sends from the browser (cors.discovery fails; docs/idp/keycloak.md).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from authgate.doctor.flow import DoctorOptions
from authgate.doctor.profiles import PROFILES
from authgate.doctor.runner import run_doctor
from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.keycloak import CHECKER_ID, KeycloakSession

pytestmark = pytest.mark.keycloak


@pytest.mark.requirement(req.ISSUE17_DOCTOR_REAL_KEYCLOAK)
async def test_every_doctor_profile_passes_through_authgate_in_front_of_keycloak(
    keycloak: KeycloakSession, external_authgate: Callable[..., ExternalAuthgate]
) -> None:
    gate = external_authgate(issuer=keycloak.issuer(), idp_profile="keycloak")
    async with httpx.AsyncClient(timeout=30.0) as http:
        answer = await http.post(
            f"{keycloak.issuer()}/protocol/openid-connect/token",
            data={"grant_type": "client_credentials", "scope": "mcp"},
            auth=(CHECKER_ID, keycloak.checker_secret),
        )
    token = str(answer.json()["access_token"])
    report = await run_doctor(DoctorOptions(url=gate.mcp_url, clients=tuple(PROFILES), token=token, timeout=20.0))

    by_status: dict[str, dict[str, str]] = {}
    for client in report.clients:
        for f in client.findings:
            by_status.setdefault(f.status, {})[f"{client.client} {f.step}"] = f"{f.seen} | {f.fix}"
    failed = by_status.get("fail", {})
    assert list(failed) == ["inspector cors.discovery"], failed  # Keycloak's CORS, not authgate's
    assert "/.well-known/oauth-authorization-server/realms/mcp" in failed["inspector cors.discovery"]
    assert "mcp-protocol-version" in failed["inspector cors.discovery"]
    assert by_status.get("warn", {}) == {}
    passed = by_status["pass"]
    for client in PROFILES:
        for step in ("as.issuer", "as.pkce", "register", "token.claims", "mcp.tools_list", "register.cleanup"):
            assert f"{client} {step}" in passed, (client, step, failed)
        assert passed[f"{client} as.issuer"].startswith(f"issuer = {keycloak.issuer()} (exact match)")
        assert passed[f"{client} token.claims"].startswith(f"aud = ['{gate.mcp_url}', 'account']")
    assert "chatgpt authorize.resource_variant" in passed  # every advertised scope is grantable
    assert [r.outcome for r in report.registrations] == ["deleted (RFC 7592)"] * len(PROFILES)
