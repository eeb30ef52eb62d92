"""Roles from token claims (issue 6, done-when 3): a real external IdP (npm `oidc-provider`
9.13.3) puts RBAC claims in its access tokens, and authgate's per-tool policy maps them to tools.

* Auth0 RBAC: the IdP adds a `permissions` claim (oidc-provider `extraTokenClaims`, the
  provider's `token_claims` option), `role_claim = "permissions"` and no `role_scopes`: each
  permission is itself a scope. Run with `idp_profile = "auth0"` (which also reads
  `permissions` as token scopes) and `"generic"` (where only `role_claim` grants them).
* Keycloak realm roles: `realm_access.roles`, mapped by `role_scopes` (`editor` → docs.write
  and search.read); a role the map does not name grants nothing.

The protected app is `authgate serve -- python <a stdio MCPServer>` with three tools
(docs.search, docs.create, memory.delete), each needing its own scope. Users sign in at the IdP
headlessly (the provider's `X-Test-Account` interaction shortcut, authorization code + PKCE of
the confidential `webapp` client); the tokens are then used on /mcp over plain HTTP, so each
status and `WWW-Authenticate` header is seen as sent.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.idp_peers import (
    OidcProvider,
    ProviderShape,
    auth0_like,
    keycloak_like,
    webapp_tokens,
)
from support.ports import free_port
from support.stdio_support import CALL_TIMEOUT, LEGACY_HEADERS, last_message, legacy_call, legacy_session

TOOL_SCOPES = {"docs.search": ["search.read"], "docs.create": ["docs.write"], "memory.delete": ["memory.delete"]}

# A stdio MCP server with seed 002's kind of tools, one permission each; written to the test's
# tmp dir and run by `authgate serve -- python SCRIPT`.
STDIO_SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("roles-demo")


@server.tool(name="docs.search", description="Search the docs.")
def docs_search(query: str = "") -> str:
    return f"docs.search: found {query!r}"


@server.tool(name="docs.create", description="Create a doc.")
def docs_create(title: str = "") -> str:
    return f"docs.create: created {title!r}"


@server.tool(name="memory.delete", description="Delete a memory.")
def memory_delete(key: str = "") -> str:
    return f"memory.delete: deleted {key!r}"


if __name__ == "__main__":
    server.run("stdio")
"""


@dataclass
class ClaimsShape(ProviderShape):
    """A provider shape whose access tokens carry extra claims per account (provider.mjs
    `token_claims`)."""

    token_claims: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RolesSetup:
    provider: OidcProvider
    gate: AuthgateServer

    def token(self, account: str) -> str:
        return str(webapp_tokens(self.provider, self.gate.mcp_url, account=account, scope="openid mcp")["access_token"])


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (to check what the IdP put in it)."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


@pytest.fixture
def roles_setup(tmp_path: Path, idp: Callable[..., OidcProvider]) -> Iterator[Callable[..., RolesSetup]]:
    """`roles_setup(make_shape, token_claims, **settings)`: the IdP in that shape issuing those
    per-account claims, and `authgate serve -- python STDIO_SERVER` in external mode in front
    of it with `settings` (as AUTHGATE_* variables) and TOOL_SCOPES. authgate is stopped before
    the IdP (fixture order)."""
    script = tmp_path / "roles_server.py"
    script.write_text(STDIO_SERVER)
    gates: list[AuthgateServer] = []

    def start(
        make_shape: Callable[[int, str], ProviderShape], token_claims: dict[str, dict[str, Any]], **settings: Any
    ) -> RolesSetup:
        gate = AuthgateServer(tmp_path / f"authgate-{len(gates)}", serve_args=("--", sys.executable, str(script)))
        gates.append(gate)
        # the port is known before the IdP starts: the MCP URL is its (default) audience
        provider = idp(ClaimsShape(**vars(make_shape(free_port(), gate.mcp_url)), token_claims=token_claims))
        env = {"auth_mode": "external", "issuer": provider.issuer, "tool_scopes": TOOL_SCOPES, **settings}
        gate.env.update({f"AUTHGATE_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in env.items()})
        gate.start()
        return RolesSetup(provider, gate)

    yield start
    for gate in gates:
        gate.stop()


# -- talking to /mcp ---------------------------------------------------------------------------


class McpSession:
    """One caller's 2025-11-25 session on authgate's /mcp (initialize done by hand)."""

    def __init__(self, gate: AuthgateServer, token: str) -> None:
        self.gate = gate
        self.token = token
        self.session = legacy_session(gate, token)
        self.ids = iter(range(10, 1000))

    def tool_names(self) -> list[str]:
        headers = {
            **LEGACY_HEADERS,
            "Authorization": f"Bearer {self.token}",
            "Mcp-Session-Id": self.session,
            "MCP-Protocol-Version": "2025-11-25",
        }
        r = httpx.post(
            self.gate.mcp_url,
            headers=headers,
            timeout=CALL_TIMEOUT,
            json={"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/list", "params": {}},
        )
        assert r.status_code == 200, r.text
        return sorted(t["name"] for t in last_message(r)["result"]["tools"])

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> httpx.Response:
        return legacy_call(self.gate, self.token, self.session, tool, arguments or {}, next(self.ids))


def tool_text(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.headers.get("www-authenticate"), response.text)
    result = last_message(response)["result"]
    assert result.get("isError") is not True, result
    return str(result["content"][0]["text"])


def challenge_params(response: httpx.Response) -> dict[str, str]:
    """The auth-params of a `WWW-Authenticate: Bearer …` challenge (quoted values, no commas in them)."""
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer "), value
    params: dict[str, str] = {}
    rest = value.removeprefix("Bearer ")
    while rest:
        name, _, rest = rest.partition('="')
        quoted, _, rest = rest.partition('"')
        params[name.strip(" ,")] = quoted
        rest = rest.lstrip(" ,")
    return params


def assert_insufficient_scope(response: httpx.Response, gate: AuthgateServer, needed: str, scopes: set[str]) -> None:
    """HTTP 403 with the MCP 2025-11-25 scope challenge naming `needed`; `scope` = exactly
    `scopes` (what the operation needs plus what the token already holds)."""
    assert response.status_code == 403, (response.status_code, response.text)
    params = challenge_params(response)
    assert params["error"] == "insufficient_scope", params
    assert needed in params["scope"].split(), params
    assert set(params["scope"].split()) == scopes, params
    assert params["resource_metadata"] == f"{gate.url}/.well-known/oauth-protected-resource/mcp"


# -- Auth0 RBAC: `permissions`, each permission a scope ----------------------------------------

AUTH0_USERS = {
    "reader": {"permissions": ["search.read"]},
    "writer": {"permissions": ["search.read", "docs.write"]},
    "janitor": {"permissions": ["memory.delete"]},
}


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_SCOPE_CHALLENGE)
@pytest.mark.parametrize("profile", ["auth0", "generic"])
def test_auth0_rbac_permissions_map_to_tools(roles_setup: Callable[..., RolesSetup], profile: str) -> None:
    setup = roles_setup(auth0_like, AUTH0_USERS, idp_profile=profile, role_claim="permissions")
    gate = setup.gate

    reader_token = setup.token("reader")
    claims = jwt_claims(reader_token)
    assert claims["permissions"] == ["search.read"] and claims["scope"] == "mcp"  # the IdP's doing
    assert claims["aud"] == gate.mcp_url and claims["iss"] == setup.provider.issuer
    reader = McpSession(gate, reader_token)
    assert reader.tool_names() == ["docs.search"]
    assert tool_text(reader.call("docs.search", {"query": "roles"})) == "docs.search: found 'roles'"
    # The auth0 profile reads `permissions` as token scopes too, so the challenge names them as
    # already granted; with the generic profile they are held only through `role_claim`.
    granted = {"mcp", "search.read"} if profile == "auth0" else {"mcp"}
    assert_insufficient_scope(reader.call("docs.create", {"title": "x"}), gate, "docs.write", {"docs.write", *granted})
    assert_insufficient_scope(
        reader.call("memory.delete", {"key": "k"}), gate, "memory.delete", {"memory.delete", *granted}
    )

    writer = McpSession(gate, setup.token("writer"))
    assert writer.tool_names() == ["docs.create", "docs.search"]
    assert tool_text(writer.call("docs.create", {"title": "plan"})) == "docs.create: created 'plan'"
    assert tool_text(writer.call("docs.search", {"query": "plan"})) == "docs.search: found 'plan'"
    assert writer.call("memory.delete", {"key": "k"}).status_code == 403

    janitor = McpSession(gate, setup.token("janitor"))
    assert janitor.tool_names() == ["memory.delete"]
    assert tool_text(janitor.call("memory.delete", {"key": "k"})) == "memory.delete: deleted 'k'"
    assert_insufficient_scope(
        janitor.call("docs.search"),
        gate,
        "search.read",
        {"search.read", "mcp", *(["memory.delete"] if profile == "auth0" else [])},
    )


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_SCOPE_CHALLENGE)
def test_without_role_claim_the_generic_profile_grants_nothing_from_permissions(
    roles_setup: Callable[..., RolesSetup],
) -> None:
    """The control case: the same tokens, no `role_claim`: `permissions` is just another claim."""
    setup = roles_setup(auth0_like, AUTH0_USERS, idp_profile="generic")
    writer = McpSession(setup.gate, setup.token("writer"))
    assert writer.tool_names() == []
    assert_insufficient_scope(writer.call("docs.search"), setup.gate, "search.read", {"search.read", "mcp"})


# -- Keycloak realm roles: `realm_access.roles` through `role_scopes` -----------------------------

KEYCLOAK_USERS = {
    "reader": {"realm_access": {"roles": ["default-roles-mcp", "offline_access", "viewer"]}},
    "editor": {"realm_access": {"roles": ["default-roles-mcp", "offline_access", "uma_authorization", "editor"]}},
    "outsider": {"realm_access": {"roles": ["default-roles-mcp", "offline_access", "uma_authorization"]}},
}
KEYCLOAK_ROLE_SCOPES = {"editor": ["docs.write", "search.read"], "viewer": ["search.read"]}


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_SCOPE_CHALLENGE)
def test_keycloak_realm_roles_map_to_tools_through_role_scopes(roles_setup: Callable[..., RolesSetup]) -> None:
    setup = roles_setup(
        keycloak_like,
        KEYCLOAK_USERS,
        idp_profile="keycloak",
        role_claim="realm_access.roles",
        role_scopes=KEYCLOAK_ROLE_SCOPES,
    )
    gate = setup.gate

    reader_token = setup.token("reader")
    assert jwt_claims(reader_token)["realm_access"] == KEYCLOAK_USERS["reader"]["realm_access"]
    reader = McpSession(gate, reader_token)
    assert reader.tool_names() == ["docs.search"]
    assert tool_text(reader.call("docs.search", {"query": "kc"})) == "docs.search: found 'kc'"
    # Scopes from roles are no OAuth scopes the client could ask for again: the challenge names
    # what is needed plus the token's own scopes.
    assert_insufficient_scope(reader.call("docs.create", {"title": "x"}), gate, "docs.write", {"docs.write", "mcp"})

    editor = McpSession(gate, setup.token("editor"))
    assert editor.tool_names() == ["docs.create", "docs.search"]
    assert tool_text(editor.call("docs.create", {"title": "kc"})) == "docs.create: created 'kc'"
    assert_insufficient_scope(
        editor.call("memory.delete", {"key": "k"}), gate, "memory.delete", {"memory.delete", "mcp"}
    )

    # Roles the map does not name (Keycloak's defaults) grant nothing.
    outsider = McpSession(gate, setup.token("outsider"))
    assert outsider.tool_names() == []
    assert_insufficient_scope(outsider.call("docs.search"), gate, "search.read", {"search.read", "mcp"})
