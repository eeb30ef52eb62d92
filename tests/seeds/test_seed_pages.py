"""docs/seeds/000, 001 and 003 run against the local stand-in IdP (issue 4, done-when 7).

Each test takes its page's ```toml block as authgate's configuration (placeholders replaced by
the stand-ins' loopback URLs), starts npm `oidc-provider` 9.13.3 in the page's IdP shape
(tests/idp: Auth0-like or Keycloak-like), runs `authgate serve --config` as a subprocess, runs
the page's bash blocks (setup, validation playbook) and then proves the scenario with the `mcp`
SDK client. Without Node or the npm peers the tests skip; under CI=true they fail.

The Keycloak-like shape (`support.idp_peers.keycloak_like`) is the fast path, without Java: it
stands in for Keycloak's issuer path, endpoint paths and DCR endpoint only — it honours `resource`
instead of an audience mapper, has no registration policies or client scopes, and types its tokens
`at+jwt`. The same things against a real Keycloak: tests/idp/keycloak/test_seed_003_keycloak.py
(seed 003's page run against the real realm).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from support import requirements as req
from support.authgate_server import serve_asgi_in_thread
from support.idp_peers import (
    CHECKER_ID,
    CHECKER_SECRET,
    OidcProvider,
    auth0_like,
    keycloak_like,
    require_oidc_provider,
    webapp_tokens,
)
from support.ports import free_port
from support.upstream_app import Upstream, build_upstream

from .seed_support import (
    SeedGate,
    json_of,
    page_block,
    run_playbook,
    sdk_sign_in_and_call,
    substitute,
    text_of,
)

AUTH0_ISSUER = "https://YOUR-TENANT.us.auth0.com/"
KEYCLOAK_ISSUER = "https://sso.example.com/realms/mcp"
PUBLIC_URL = "https://mcp.example.com"
UPSTREAM_URL = "http://127.0.0.1:9000/mcp"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[list[object]]:
    """Things to stop at teardown (SeedGate, OidcProvider), in reverse order."""
    require_oidc_provider()
    started: list[object] = []
    yield started
    for thing in reversed(started):
        thing.stop()  # type: ignore[attr-defined]


def _gate_and_idp(tmp_path: Path, stack: list[object], make_shape: object) -> tuple[SeedGate, OidcProvider]:
    gate = SeedGate(tmp_path / "authgate")  # its port is known now: the MCP URL is the IdP's audience
    provider = OidcProvider(tmp_path / "idp", make_shape(free_port(), gate.mcp_url))  # type: ignore[operator]
    provider.start()
    stack.append(provider)
    stack.append(gate)
    return gate, provider


def _client_credentials(provider: OidcProvider, resource: str) -> str:
    return str(provider.client_credentials(resource)["access_token"])


# -- seed 000 ----------------------------------------------------------------------------------


PAGE_000 = "000-auth0-knowledge-base.md"


@pytest.mark.requirement(req.RFC9728_2_AUTHORIZATION_SERVERS)
@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
async def test_seed_000_auth0_knowledge_base_page(tmp_path: Path, stack: list[object]) -> None:
    gate, provider = _gate_and_idp(tmp_path, stack, auth0_like)
    subs = {PUBLIC_URL: gate.url, AUTH0_ISSUER: provider.issuer}
    workdir = gate.config_path.parent
    (workdir / "handbook").mkdir()
    (workdir / "handbook" / "leave.md").write_text(
        "---\ncategory: hr\n---\n# Parental leave\n\nEvery parent gets sixteen weeks of paid parental leave.\n"
    )
    gate.config_path.write_text(page_toml := _toml(PAGE_000, subs))
    env = {"AUTHGATE_DATA_DIR": str(gate.server.data_dir)}
    run_playbook(page_block(PAGE_000, "bash", marker="seed-setup"), {AUTH0_ISSUER: provider.issuer}, env, workdir)
    gate.start(page_toml)

    # A user signs in with an MCP client: DCR and PKCE at the IdP, then the knowledge base.
    seen: list[tuple[str, str, int]] = []
    tools, result, storage = await sdk_sign_in_and_call(
        gate.mcp_url,
        "alice",
        "query_knowledge_base",
        {"knowledge_base_id": "handbook", "query": "parental leave", "metadata_filters": {"category": "hr"}},
        seen,
    )
    assert {"list_knowledge_bases", "list_data_sources", "query_knowledge_base", "whoami"} <= set(tools)
    assert "sixteen weeks" in text_of(result)
    assert storage.client_info is not None
    assert [u for m, u, s in seen if m == "POST" and s == 201] == [provider.origin + "/oidc/register"]

    run_playbook(
        page_block(PAGE_000, "bash", marker="seed-playbook"),
        subs,
        {"TOKEN": str(webapp_tokens(provider, gate.mcp_url)["access_token"])},
        workdir,
    )


# -- seed 001 ----------------------------------------------------------------------------------


PAGE_001 = "001-auth0-gateway-client-credentials.md"


async def _call_with_bearer(mcp_url: str, token: str, tool: str, arguments: dict[str, object]) -> object:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30.0)) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            return await client.call_tool(tool, arguments)


@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
async def test_seed_001_auth0_gateway_with_client_credentials_page(tmp_path: Path, stack: list[object]) -> None:
    upstream: Upstream = build_upstream(stateless=False)
    with serve_asgi_in_thread(
        upstream.app, free_port(), lifespan="on"
    ) as upstream_base:  # lifespan on: the SDK needs it
        gate, provider = _gate_and_idp(tmp_path, stack, auth0_like)
        subs = {PUBLIC_URL: gate.url, AUTH0_ISSUER: provider.issuer, UPSTREAM_URL: upstream_base + "/mcp"}
        gate.start(_toml(PAGE_001, subs))

        # The playbook, with the stand-in's client_credentials client as the M2M application.
        run_playbook(
            page_block(PAGE_001, "bash", marker="seed-playbook"),
            {PUBLIC_URL: gate.url, AUTH0_ISSUER: provider.issuer},
            {"CLIENT_ID": CHECKER_ID, "CLIENT_SECRET": CHECKER_SECRET},
            gate.config_path.parent,
        )

        # A machine: a client_credentials token from the IdP, a tool through the gateway.
        machine = _client_credentials(provider, gate.mcp_url)
        echoed = await _call_with_bearer(gate.mcp_url, machine, "echo", {"text": "from a machine"})
        assert text_of(echoed) == "from a machine"  # type: ignore[arg-type]
        machine_headers = json.loads(
            text_of(
                await _call_with_bearer(  # type: ignore[arg-type]
                    gate.mcp_url, machine, "seen_headers", {}
                )
            )
        )
        assert machine_headers["x-authgate-subject"] == CHECKER_ID
        assert machine_headers["x-authgate-client-id"] == CHECKER_ID

        # A user: the SDK client registers and signs in at the IdP, the same gateway.
        seen: list[tuple[str, str, int]] = []
        tools, result, storage = await sdk_sign_in_and_call(gate.mcp_url, "bob", "seen_headers", {}, seen)
        assert "echo" in tools
        user_headers = json.loads(text_of(result))
        assert user_headers["x-authgate-subject"] == "bob"
        assert storage.client_info is not None
        assert user_headers["x-authgate-client-id"] == storage.client_info.client_id

        # The client's token never reaches the upstream.
        assert upstream.requests and not upstream.headers_seen("authorization")


# -- seed 003 ----------------------------------------------------------------------------------


PAGE_003 = "003-keycloak.md"


@pytest.mark.requirement(req.RFC8707_2_AUDIENCE)
@pytest.mark.requirement(req.RFC9728_2_AUTHORIZATION_SERVERS)
async def test_seed_003_keycloak_page(tmp_path: Path, stack: list[object]) -> None:
    gate, provider = _gate_and_idp(tmp_path, stack, keycloak_like)
    assert provider.issuer.endswith("/realms/mcp")
    subs = {PUBLIC_URL: gate.url, KEYCLOAK_ISSUER: provider.issuer}
    gate.start(_toml(PAGE_003, subs))

    run_playbook(
        page_block(PAGE_003, "bash", marker="seed-playbook"),
        subs,
        {"CLIENT_ID": CHECKER_ID, "CLIENT_SECRET": CHECKER_SECRET},
        gate.config_path.parent,
    )

    # A user through the realm: DCR at Keycloak's endpoint, whoami names the IdP's user.
    seen: list[tuple[str, str, int]] = []
    tools, result, storage = await sdk_sign_in_and_call(gate.mcp_url, "carol", "whoami", {}, seen)
    who = json_of(result)
    assert who["authenticated"] is True and who["subject"] == "carol"
    assert storage.client_info is not None and who["client_id"] == storage.client_info.client_id
    assert [u for m, u, s in seen if m == "POST" and s == 201] == [
        provider.issuer + "/clients-registrations/openid-connect"
    ]

    with httpx.Client(timeout=10.0) as http:

        def post_mcp(token: str, request_id: str | None = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
            if request_id:
                headers["X-Request-Id"] = request_id
            return http.post(
                gate.mcp_url,
                headers=headers,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"},
                    },
                },
            )

        # A token for another resource is refused by audience.
        other = _client_credentials(provider, "http://127.0.0.1:1/other/mcp")
        refused = post_mcp(other)
        assert refused.status_code == 401
        assert "none of this resource's audiences" in refused.headers["www-authenticate"]

        # The second configured audience (the seed's legacy client id) is accepted. The stand-in
        # issues audiences only from `resource`, so this token is signed here with the IdP's key.
        now = int(time.time())
        legacy = provider.forge(
            {
                "iss": provider.issuer,
                "sub": "svc",
                "aud": "mcp-legacy-client",
                "iat": now,
                "exp": now + 300,
                "scope": "mcp",
                "azp": "mcp-legacy-client",
            },
            typ="JWT",
        )
        accepted = post_mcp(legacy, request_id="seed003-legacy-aud")
        assert accepted.status_code == 200, accepted.text
        assert accepted.headers["x-request-id"] == "seed003-legacy-aud"

    # log_format = "json": the request id of that answer is in authgate's log.
    gate.stop()
    lines = [json.loads(line) for line in gate.server.logs().splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "seed003-legacy-aud" for line in lines), gate.server.logs()[-3000:]


def _toml(page: str, subs: dict[str, str]) -> str:
    return substitute(page_block(page, "toml"), subs)
