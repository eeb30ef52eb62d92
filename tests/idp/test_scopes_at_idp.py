"""External mode checks that the scopes it advertises exist at the IdP (issue 17), on the fast
path: oidc-provider in Keycloak's shape, defining `mcp` or not. The same checks run against a
real Keycloak in tests/idp/keycloak (its `locked` realm has no `mcp` client scope).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from authgate.idp.check import CheckOptions, run_check
from support import requirements as req
from support.external_gate import ExternalAuthgate
from support.idp_peers import OidcProvider, keycloak_like
from support.ports import free_port

MCP_URL = "https://mcp.example.com/mcp"


@pytest.mark.requirement(req.ISSUE17_SCOPES_EXIST_AT_IDP)
async def test_idp_check_fails_on_an_advertised_scope_the_idp_does_not_define(
    idp: Callable[..., OidcProvider],
) -> None:
    shape = keycloak_like(free_port(), MCP_URL)
    shape.resource_scope = "docs.read"  # the IdP knows docs.read, not mcp
    provider = idp(shape)
    async with httpx.AsyncClient(timeout=10.0) as http:
        missing = await run_check(CheckOptions(provider.issuer, "keycloak", scopes=("mcp", "docs.read")), http)
        present = await run_check(CheckOptions(provider.issuer, "keycloak", scopes=("docs.read",)), http)
    finding = next(f for f in missing.findings if f.code == "scope-missing")
    assert finding.level == "fail" and "mcp" in finding.message and "docs.read" not in finding.message
    assert finding.fix and "Create client scope `mcp`" in finding.fix and "authgate `scopes`" in finding.fix
    assert "scope-missing" not in present.codes() and "scopes" in present.codes("ok")
    assert "keycloak-client-scope" not in missing.codes() + present.codes()  # checked, so not listed as a trap


@pytest.mark.requirement(req.ISSUE17_SCOPES_EXIST_AT_IDP)
@pytest.mark.parametrize(("idp_scopes", "warned"), [("docs.read", True), ("mcp", False)])
def test_external_mode_warns_at_start_naming_the_setting_and_the_fix(
    idp: Callable[..., OidcProvider],
    external_authgate: Callable[..., ExternalAuthgate],
    mcp_port: int,
    caplog: pytest.LogCaptureFixture,
    idp_scopes: str,
    warned: bool,
) -> None:
    shape = keycloak_like(free_port(), f"http://127.0.0.1:{mcp_port}/mcp")
    shape.resource_scope = idp_scopes
    provider = idp(shape)
    with caplog.at_level(logging.WARNING, logger="authgate.idp"):
        gate = external_authgate(issuer=provider.issuer, idp_profile="keycloak")
        with httpx.Client(timeout=10.0) as http:
            assert http.get(f"{gate.url}/health/ready").status_code == 200  # it starts either way
    lines = [r.getMessage() for r in caplog.records if "scopes_supported" in r.getMessage()]
    if not warned:
        assert lines == []
        return
    assert len(lines) == 1, lines
    assert "scope(s) mcp advertised by authgate (setting `scopes`)" in lines[0] and provider.issuer in lines[0]
    assert "Client scopes → Create client scope `mcp`" in lines[0]
