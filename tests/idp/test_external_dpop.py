"""External mode with DPoP-bound tokens from the IdP (issue 16 done-when 2): npm oidc-provider
with its DPoP feature on issues a token bound to the client's key (`cnf.jkt`) when the token
request carries a proof; authgate accepts it at /mcp only with the DPoP scheme and a proof by
that key for its own URL, and refuses it as Bearer, without a proof, or with another key."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from support import requirements as req
from support.dpop import DpopKey, claims_of
from support.external_gate import ExternalAuthgate
from support.idp_peers import CHECKER_ID, CHECKER_SECRET, OidcProvider, keycloak_like
from support.ports import free_port

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "dpop", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}


def _post(gate: ExternalAuthgate, token: str, proof: str | None, scheme: str = "DPoP") -> httpx.Response:
    headers = {**MCP_HEADERS, "Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return httpx.post(gate.mcp_url, json=INITIALIZE, headers=headers, timeout=10)


@pytest.mark.requirement(req.RFC9449_7_RESOURCE_ACCESS)
def test_an_idps_dpop_bound_token_is_accepted_only_with_its_proof(
    idp: Callable[..., OidcProvider], external_authgate: Callable[..., ExternalAuthgate], mcp_port: int
) -> None:
    shape = keycloak_like(free_port(), f"http://127.0.0.1:{mcp_port}/mcp")
    shape.dpop = True
    provider = idp(shape)
    gate = external_authgate(issuer=provider.issuer)
    key = DpopKey()
    token_endpoint = provider.discovery()["token_endpoint"]
    r = httpx.post(
        token_endpoint,
        auth=(CHECKER_ID, CHECKER_SECRET),
        data={"grant_type": "client_credentials", "resource": gate.mcp_url, "scope": "mcp"},
        headers={"DPoP": key.proof("POST", token_endpoint)},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    token = r.json()["access_token"]
    assert claims_of(token)["cnf"] == {"jkt": key.jkt}  # the IdP bound it, not authgate
    assert _post(gate, token, key.proof("POST", gate.mcp_url, token=token)).status_code == 200
    for refused in (
        _post(gate, token, None, scheme="Bearer"),
        _post(gate, token, None),
        _post(gate, token, DpopKey().proof("POST", gate.mcp_url, token=token)),
    ):
        assert refused.status_code == 401, refused.text
        assert any(c.startswith("DPoP ") for c in refused.headers.get_list("www-authenticate"))
    unbound = provider.client_credentials(gate.mcp_url)["access_token"]  # no proof: a Bearer token
    assert _post(gate, unbound, None, scheme="Bearer").status_code == 200
