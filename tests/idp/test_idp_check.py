"""`authgate idp check` names each problem, against an oidc-provider configured to have it.

The Keycloak-like shape (`support.idp_peers.keycloak_like`) is the fast path, without Java: it
stands in for Keycloak's issuer path, endpoint paths and DCR endpoint only — it honours `resource`
instead of an audience mapper, has no registration policies or client scopes, and types its tokens
`at+jwt`. The same things against a real Keycloak: tests/idp/keycloak/test_idp_check_keycloak.py
(realms each missing one of seed 003's settings).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from authgate.idp.check import CheckOptions, CheckReport, render_text, run_check
from support import requirements as req
from support.idp_peers import CHECKER_ID, CHECKER_SECRET, OidcProvider, ProviderShape, auth0_like, keycloak_like
from support.ports import free_port

MCP_URL = "https://mcp.example.com/mcp"


async def check(
    provider: OidcProvider,
    profile: str = "generic",
    *,
    issuer: str | None = None,
    credentials: bool = False,
    register: bool = False,
) -> CheckReport:
    options = CheckOptions(
        issuer=issuer or provider.issuer,
        profile=profile,
        register=register,
        client_id=CHECKER_ID if credentials else None,
        client_secret=CHECKER_SECRET if credentials else None,
        resource=MCP_URL if credentials else None,
        scope="mcp" if credentials else None,
    )
    async with httpx.AsyncClient(timeout=10.0) as http:
        return await run_check(options, http)


def finding(report: CheckReport, code: str) -> tuple[str, str, str | None]:
    f = next((f for f in report.findings if f.code == code), None)
    assert f is not None, f"no {code} in {report.codes()}\n{render_text(report)}"
    return f.level, f.message, f.fix


async def test_a_healthy_idp_passes_and_the_test_client_is_registered_then_deleted(
    idp: Callable[..., OidcProvider],
) -> None:
    provider = idp(ProviderShape(port=free_port(), default_resource=MCP_URL))
    report = await check(provider, credentials=True, register=True)
    assert not report.failed, render_text(report)
    for code in (
        "rfc8414",
        "oidc-discovery",
        "pkce",
        "dcr",
        "refresh",
        "resource",
        "registration",
        "registration-deleted",
    ):
        assert finding(report, code)[0] == "ok"
    assert report.codes("warn", "fail") == []
    assert report.registered_client_id and report.registered_client_id in render_text(report)


async def test_keycloaks_path_appended_metadata_and_traps_are_named(idp: Callable[..., OidcProvider]) -> None:
    report = await check(idp(keycloak_like(free_port(), MCP_URL)), "keycloak", credentials=True)
    level, message, fix = finding(report, "no-rfc8414")
    assert level == "warn" and "path-appended" in message and fix is not None and "reverse proxy" in fix
    assert finding(report, "resource")[0] == "ok"
    assert finding(report, "keycloak-audience")[0] == "info"  # the profile's traps are still named


@pytest.mark.requirement(req.RFC7591_3_REGISTRATION)
async def test_dcr_off_is_named_with_the_setting_to_change(idp: Callable[..., OidcProvider]) -> None:
    shape = auth0_like(free_port(), MCP_URL)
    shape.dcr = False
    report = await check(idp(shape), "auth0")
    level, message, fix = finding(report, "no-dcr")
    assert level == "fail" and "registration_endpoint" in message
    assert fix is not None and "Dynamic Client Registration" in fix and "Promote Connection" in fix


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_S256_ADVERTISED)
async def test_s256_missing_is_a_failure(idp: Callable[..., OidcProvider]) -> None:
    shape = keycloak_like(free_port(), MCP_URL)
    shape.s256 = False
    report = await check(idp(shape), "keycloak")
    level, message, _ = finding(report, "no-s256")
    assert level == "fail" and "code_challenge_methods_supported" in message
    assert report.failed


@pytest.mark.requirement(req.RFC8414_3_METADATA_DOCUMENT)
async def test_no_rfc8414_document_is_named_and_the_mirror_offered(idp: Callable[..., OidcProvider]) -> None:
    report = await check(idp(auth0_like(free_port(), MCP_URL)), "auth0")
    level, message, fix = finding(report, "no-rfc8414")
    assert level == "warn" and "/.well-known/oauth-authorization-server" in message
    assert fix is not None and "mirror_as_metadata" in fix
    assert finding(report, "oidc-discovery")[0] == "ok"  # clients since 2025-11-25 are fine
    assert not report.failed, render_text(report)


@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
async def test_an_ignored_resource_is_seen_in_the_token_audience(idp: Callable[..., OidcProvider]) -> None:
    shape = auth0_like(free_port(), MCP_URL)
    shape.fixed_audience = "https://api.example.com/"  # the tenant's Default Audience, not the MCP URL
    report = await check(idp(shape), "auth0", credentials=True)
    level, message, fix = finding(report, "resource-ignored")
    assert level == "fail" and "https://api.example.com/" in message
    assert fix is not None and "Resource Parameter Compatibility Profile" in fix and "audiences" in fix


async def test_an_issuer_without_auth0s_trailing_slash_is_caught(idp: Callable[..., OidcProvider]) -> None:
    provider = idp(auth0_like(free_port(), MCP_URL))
    report = await check(provider, "auth0", issuer=provider.issuer.rstrip("/"))
    assert finding(report, "issuer-shape")[0] == "fail"
    level, message, fix = finding(report, "issuer-mismatch")
    assert level == "fail" and "trailing slash" in message and fix is not None and provider.issuer in fix


def test_the_cli_prints_json_and_exits_1_on_a_failure(idp: Callable[..., OidcProvider]) -> None:
    shape: ProviderShape = keycloak_like(free_port(), MCP_URL)
    shape.dcr = False
    provider = idp(shape)
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "idp", "check", provider.issuer, "--profile", "keycloak", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False and "no-dcr" in [f["code"] for f in report["findings"]]
    text = subprocess.run(
        [sys.executable, "-m", "authgate", "idp", "check", provider.issuer, "--profile", "keycloak"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "FAIL  no-dcr" in text.stdout and "fix: Keycloak:" in text.stdout


@pytest.mark.requirement(req.ISSUE16_IDP_CHECK_ID_JAG)
async def test_id_jag_check_names_an_idp_that_does_not_offer_id_jags(idp: Callable[..., OidcProvider]) -> None:
    provider = idp(ProviderShape(port=free_port(), default_resource=MCP_URL))
    options = CheckOptions(issuer=provider.issuer, id_jag=True)
    async with httpx.AsyncClient(timeout=10.0) as http:
        report = await run_check(options, http)
    level, message, fix = finding(report, "no-id-jag")
    # a warning: the draft §7 says the IdP SHOULD advertise it, not that one which does not cannot issue
    assert level == "warn" and "identity_chaining_requested_token_types_supported" in message
    assert fix is not None and "ID-JAG" in fix
    assert "enterprise_idps" in finding(report, "id-jag-setting")[1]


@pytest.mark.requirement(req.ISSUE16_IDP_CHECK_ID_JAG)
def test_id_jag_check_passes_an_idp_that_offers_them() -> None:
    from authgate.idp.check.id_jag import ID_JAG_TOKEN_TYPE, TOKEN_EXCHANGE, check_id_jag

    report = CheckReport("https://idp.example.com", "generic")
    meta = {
        "identity_chaining_requested_token_types_supported": [ID_JAG_TOKEN_TYPE],
        "grant_types_supported": [TOKEN_EXCHANGE],
        "jwks_uri": "https://idp.example.com/keys",
    }
    check_id_jag(report, meta)
    assert report.codes("fail", "warn") == [] and "id-jag" in report.codes("ok")
