"""`authgate idp check --profile keycloak` against a real Keycloak (issue 17, item 1): the realm
built as seed 003 says passes; realms each missing one of seed 003's settings are named with the
setting to change; wrong issuer shapes are caught.

Realms (tests/idp/keycloak/realms): `mcp` (fixed: audience mapper scope `mcp-audience` as a realm
default, client scope `mcp`, Trusted Hosts open to loopback with host matching off, Allowed
Client Scopes), `noaud` (no audience mapper), `locked` (Keycloak's default registration policies,
no `mcp` client scope).
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from authgate.idp.check import CheckOptions, CheckReport, render_text, run_check
from support import requirements as req
from support.keycloak import CHECKER_ID, KeycloakSession

pytestmark = pytest.mark.keycloak


async def check(keycloak: KeycloakSession, realm: str, *, issuer: str | None = None, **options: object) -> CheckReport:
    opts = CheckOptions(issuer=issuer or keycloak.issuer(realm), profile="keycloak", **options)  # type: ignore[arg-type]
    async with httpx.AsyncClient(timeout=15.0) as http:
        return await run_check(opts, http)


def credentials(keycloak: KeycloakSession) -> dict[str, object]:
    return {
        "client_id": CHECKER_ID,
        "client_secret": keycloak.checker_secret,
        "resource": keycloak.mcp_url,
        "scope": "mcp",
    }


def finding(report: CheckReport, code: str) -> tuple[str, str, str]:
    f = next((f for f in report.findings if f.code == code), None)
    assert f is not None, f"no {code} in {report.codes()}\n{render_text(report)}"
    return f.level, f.message, f.fix or ""


@pytest.mark.requirement(req.ISSUE17_IDP_CHECK_REAL_KEYCLOAK)
def test_the_realm_set_up_as_seed_003_says_passes_idp_check(keycloak: KeycloakSession) -> None:
    env = {**os.environ, "AUTHGATE_IDP_CHECK_CLIENT_SECRET": keycloak.checker_secret}
    args = ["--profile", "keycloak", "--register", "--client-id", CHECKER_ID, "--resource", keycloak.mcp_url]
    done = subprocess.run(
        [sys.executable, "-m", "authgate", "idp", "check", keycloak.issuer("mcp"), *args, "--scope", "mcp"],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (
        "ok    rfc8414:",  # 26.7 serves RFC 8414 at the §3.1 location too
        "ok    pkce:",
        "ok    dcr:",
        "ok    scopes: the IdP defines the advertised scope(s) mcp",
        "ok    registration:",  # anonymous DCR passes the Trusted Hosts policy
        "ok    registration-deleted:",  # and Keycloak offers RFC 7592 management
        f"ok    resource: `resource` honoured: the token's aud is ['{keycloak.mcp_url}', 'account']",
    ):
        assert line in done.stdout, line
    assert "result: 0 failure(s)" in done.stdout
    assert keycloak.checker_secret not in done.stdout + done.stderr


@pytest.mark.requirement(req.ISSUE17_IDP_CHECK_REAL_KEYCLOAK)
async def test_a_realm_without_the_audience_mapper_is_named_with_the_mapper_to_add(keycloak: KeycloakSession) -> None:
    report = await check(keycloak, "noaud", **credentials(keycloak))
    level, message, fix = finding(report, "resource-ignored")
    assert level == "fail" and f"resource={keycloak.mcp_url}" in message and "'account'" in message
    assert "Audience" in fix and "Included Custom Audience = the MCP URL" in fix
    assert "keycloak-audience" not in report.codes()  # named once, as the failure, not again as a trap


@pytest.mark.requirement(req.ISSUE17_IDP_CHECK_REAL_KEYCLOAK)
@pytest.mark.requirement(req.ISSUE17_SCOPES_EXIST_AT_IDP)
async def test_default_registration_policies_and_a_missing_client_scope_are_named(keycloak: KeycloakSession) -> None:
    report = await check(keycloak, "locked", register=True, **credentials(keycloak))
    level, message, fix = finding(report, "registration-failed")
    assert level == "fail" and "HTTP 403" in message  # "Policy 'Trusted Hosts' rejected request"
    assert "Trusted Hosts" in fix and "Host Sending Client Registration Request Must Match" in fix
    level, message, fix = finding(report, "scope-missing")
    assert level == "fail" and "mcp" in message and "setting `scopes`" in message
    assert "Client scopes → Create client scope `mcp`" in fix and "authgate `scopes`" in fix
    level, message, _ = finding(report, "resource-untested")  # client_credentials with scope=mcp
    assert level == "warn" and "invalid_scope" in message
    assert "keycloak-client-scope" not in report.codes()


@pytest.mark.requirement(req.ISSUE17_IDP_CHECK_REAL_KEYCLOAK)
@pytest.mark.parametrize(
    ("suffix", "codes"),
    [
        ("", {"issuer-shape", "no-discovery"}),  # the host without /realms/NAME
        ("/auth/realms/mcp", {"no-discovery"}),  # the pre-17 /auth prefix on a 26.x server
        ("/realms/mcp/", {"issuer-shape", "issuer-mismatch"}),  # a trailing slash
    ],
)
async def test_a_wrong_issuer_shape_is_caught(keycloak: KeycloakSession, suffix: str, codes: set[str]) -> None:
    report = await check(keycloak, "mcp", issuer=keycloak.server.url + suffix)
    assert codes <= set(report.codes("fail")), render_text(report)
    assert report.failed
