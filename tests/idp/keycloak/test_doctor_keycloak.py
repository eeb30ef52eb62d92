"""`authgate doctor` against authgate in front of a real Keycloak (issue 17, items 4 and 5): every
client profile follows authgate's PRM to the realm, finds its metadata and reaches tools/list through
authgate with a Keycloak token (`--token`: the realm's `checker` client, scope mcp, aud the MCP URL
from the `mcp` scope's audience mapper). Keycloak runs with `--features=cimd` and advertises CIMD, so
ChatGPT, Claude and Claude Code present their client ID metadata documents (served by the session's
stand-in over HTTPS, `--cimd-host-map`; the realm's client policy accepts them); the Inspector and
the SDK register by DCR (deleted again through RFC 7592).

The realm (realms/mcp.json) carries what the replays needed beyond seed 003's list, each a
finding of this test: ChatGPT asks for every scope the realm advertises, so the scopes DCR clients
cannot get (`service_account`, built in since 26.x, and audience-only scopes) are hidden from the
metadata (`include.in.openid.provider.metadata` false); the Inspector's DCR names a `client_uri`
on github.com, which the Trusted Hosts policy checks (Client URIs Must Match), and sends an Origin
that the anonymous Allowed Registration Web Origins policy must list. What no realm setting fixes:
Keycloak's CORS preflight on its metadata does not allow the MCP-Protocol-Version header the
Inspector sends from the browser (cors.discovery fails), and Keycloak 26.7.3's CIMD fetch fails on
ChatGPT's document (an unknown member, token_endpoint_auth_methods_supported: "Client Metadata
fetch failed") — both in docs/idp/keycloak.md.
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
    host_map = {"chatgpt.com": keycloak.standin, "claude.ai": keycloak.standin}
    report = await run_doctor(
        DoctorOptions(url=gate.mcp_url, clients=tuple(PROFILES), token=token, timeout=20.0, cimd_host_map=host_map)
    )

    by_status: dict[str, dict[str, str]] = {}
    for client in report.clients:
        for f in client.findings:
            by_status.setdefault(f.status, {})[f"{client.client} {f.step}"] = f"{f.seen} | {f.fix}"
    failed = by_status.get("fail", {})
    # What Keycloak 26.7.3 itself refuses, not authgate: ChatGPT's CIMD document (its parser fails
    # on the field token_endpoint_auth_methods_supported) and the Inspector's CORS preflight.
    assert sorted(failed) == ["chatgpt authorize.resource_variant", "inspector cors.discovery"], failed
    assert "Client Metadata fetch failed" in failed["chatgpt authorize.resource_variant"]
    assert "/.well-known/oauth-authorization-server/realms/mcp" in failed["inspector cors.discovery"]
    assert "mcp-protocol-version" in failed["inspector cors.discovery"]
    assert by_status.get("warn", {}) == {}
    passed = by_status["pass"]
    for client in PROFILES:
        for step in ("as.issuer", "as.pkce", "register", "token.claims", "mcp.tools_list"):
            assert f"{client} {step}" in passed, (client, step, failed)
        assert passed[f"{client} as.issuer"].startswith(f"issuer = {keycloak.issuer()} (exact match)")
        assert passed[f"{client} token.claims"].startswith(f"aud = ['{gate.mcp_url}', 'account']")
    # Claude and Claude Code present their CIMD URLs (the stand-in): Keycloak fetched the documents
    # over TLS and showed its login page for them; every advertised scope was grantable
    assert "claude authorize.resource_variant" in passed and "claude-code authorize.resource_variant" in passed
    methods = {r.client: (r.method, r.outcome) for r in report.registrations}
    assert methods == {
        "chatgpt": ("cimd", "nothing to remove (CIMD)"),
        "claude": ("cimd", "nothing to remove (CIMD)"),
        "claude-code": ("cimd", "nothing to remove (CIMD)"),
        "inspector": ("dcr", "deleted (RFC 7592)"),
        "sdk": ("dcr", "deleted (RFC 7592)"),
    }
