"""Machine clients only by an operator (issue 11, done-when 1), against a real `authgate serve`:
open registration refuses client_credentials; a client an older version registered that way
gets `unauthorized_client`, and a token it held stops working at /mcp; a client made with
`authgate clients add` gets its token, and only its scopes reach the tools."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authgate.oauth import access_tokens
from authgate.oauth.keys import SigningKeys
from authgate.oauth.opaque import digest, new_secret
from authgate.store.models import Client
from authgate.store.sql import SqlStore
from support import requirements as req
from support.authgate_server import AuthgateServer

# list_knowledge_bases needs kb.admin; every other tool the default scope (mcp)
POLICY_ENV = {
    "AUTHGATE_TOOL_SCOPES": json.dumps({"list_knowledge_bases": ["kb.admin"]}),
    "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000",
    "AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP": "true",
}
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(tmp_path_factory.mktemp("machine"), extra_env=POLICY_ENV)
    srv.add_user()
    srv.start()
    yield srv
    srv.stop()


def _in_store(server: AuthgateServer, action: Any) -> Any:
    """Run `action(store, keys)` on the server's own database and signing keys, as an older
    authgate (or an operator's script) would see them."""

    async def run() -> Any:
        store = SqlStore(f"sqlite+aiosqlite:///{server.data_dir / 'authgate.db'}", migrate=False)
        await store.open()
        try:
            keys = SigningKeys(store, (server.data_dir / "secret.key").read_text().strip().encode(), retire_after=3600)
            await keys.load()
            return await action(store, keys)
        finally:
            await store.close()

    return asyncio.run(run())


def _token_as_issued_before(server: AuthgateServer, client_id: str) -> str:
    """The client_credentials token an older authgate handed out: signed by this server's key."""

    async def issue(store: SqlStore, keys: SigningKeys) -> str:
        token, _ = access_tokens.issue(
            keys,
            issuer=server.issuer,
            subject=client_id,
            client_id=client_id,
            scopes=("mcp", "kb.admin"),
            resources=(server.mcp_url,),
            now=time.time(),
            ttl=300,
            grant_id=None,
        )
        return token

    return str(_in_store(server, issue))


def _message(r: httpx.Response) -> dict[str, Any]:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in r.text.splitlines() if line.startswith("data:")]
        return dict(json.loads(data[-1]))
    return dict(r.json())


def _call_tool(server: AuthgateServer, token: str, tool: str) -> httpx.Response:
    """initialize, then tools/call `tool` in that session."""
    auth = {**HEADERS, "Authorization": f"Bearer {token}"}
    init = httpx.post(
        server.mcp_url,
        headers=auth,
        timeout=30,
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
    if init.status_code != 200:
        return init
    auth["Mcp-Session-Id"] = init.headers["mcp-session-id"]
    httpx.post(server.mcp_url, headers=auth, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return httpx.post(
        server.mcp_url,
        headers=auth,
        timeout=30,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {}}},
    )


def _token(server: AuthgateServer, client_id: str, secret: str, scope: str | None = None) -> httpx.Response:
    form = {"grant_type": "client_credentials", "resource": server.mcp_url, **({"scope": scope} if scope else {})}
    return httpx.post(server.endpoint("token"), data=form, auth=(client_id, secret), timeout=10)


@pytest.mark.requirement(req.RFC7591_3_2_2_INVALID_METADATA)
@pytest.mark.parametrize("grants", [["client_credentials"], ["authorization_code", "client_credentials"]])
def test_open_registration_refuses_client_credentials(server: AuthgateServer, grants: list[str]) -> None:
    r = httpx.post(
        server.endpoint("register"),
        json={
            "client_name": "attacker",
            "grant_types": grants,
            "token_endpoint_auth_method": "client_secret_post",
            "redirect_uris": ["http://127.0.0.1:53682/callback"],
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_client_metadata"
    assert "authgate clients add" in r.json()["error_description"] and "client_secret" not in r.json()


@pytest.mark.requirement(req.RFC6749_5_2_UNAUTHORIZED_CLIENT)
def test_a_client_metadata_document_cannot_claim_client_credentials(
    server: AuthgateServer, loopback_app: Callable[..., str]
) -> None:
    """CIMD is open registration too: anyone can publish a document naming any grant."""
    doc: dict[str, Any] = {}

    async def serve_doc(request: Request) -> JSONResponse:
        return JSONResponse(doc)

    client_id = loopback_app(Starlette(routes=[Route("/client.json", serve_doc)])) + "/client.json"
    doc.update(
        {
            "client_id": client_id,
            "client_name": "self-published",
            "token_endpoint_auth_method": "none",
            "grant_types": ["client_credentials"],
            "redirect_uris": ["http://127.0.0.1:53682/callback"],
        }
    )
    r = httpx.post(
        server.endpoint("token"),
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "scope": "mcp kb.admin",
            "resource": server.mcp_url,
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client", r.text


@pytest.mark.requirement(req.RFC6749_5_2_UNAUTHORIZED_CLIENT)
def test_client_credentials_client_stored_by_an_older_version_gets_no_token_and_its_old_token_fails(
    server: AuthgateServer,
) -> None:
    secret = new_secret("ags_")
    legacy = Client(
        client_id="legacy-machine",
        created_at=time.time(),
        last_used_at=time.time(),
        client_secret_hash=digest(secret),
        source="dcr",
        metadata={
            "client_name": "legacy",
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_post",
        },
    )

    async def plant(store: SqlStore, keys: SigningKeys) -> None:
        await store.add_client(legacy)

    _in_store(server, plant)

    for scope in ("mcp kb.admin", None):
        r = _token(server, legacy.client_id, secret, scope)
        assert r.status_code == 400 and r.json()["error"] == "unauthorized_client", r.text
        assert "authgate clients add" in r.json()["error_description"]
    r = _call_tool(server, _token_as_issued_before(server, legacy.client_id), "list_knowledge_bases")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_operator_made_machine_client_gets_its_token_and_only_its_scopes(server: AuthgateServer) -> None:
    done = server.cli(
        "clients",
        "add",
        "nightly-backup",
        "--grant",
        "client_credentials",
        "--scopes",
        "mcp",
        "--subject",
        "svc-backup",
    )
    assert done.returncode == 0, done.stderr
    fields = dict(line.split("\t", 1) for line in done.stdout.splitlines())
    client_id, secret = fields["client_id"], fields["client_secret"]
    stored = b"".join(p.read_bytes() for p in server.data_dir.iterdir() if p.name.startswith("authgate.db"))
    assert secret.encode() not in stored and digest(secret).encode() in stored  # only its hash

    wider = _token(server, client_id, secret, "mcp kb.admin")  # asks beyond its allowance
    assert wider.status_code == 200 and wider.json()["scope"] == "mcp", wider.text
    assert _token(server, client_id, secret).json()["scope"] == "mcp"  # none asked: its allowance
    beyond = _token(server, client_id, secret, "kb.admin")
    assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope"

    token = wider.json()["access_token"]
    refused = _call_tool(server, token, "list_knowledge_bases")
    assert refused.status_code == 403 and 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    allowed = _call_tool(server, token, "whoami")
    assert allowed.status_code == 200, allowed.text
    seen = json.loads(_message(allowed)["result"]["content"][0]["text"])
    assert (seen["subject"], seen["client_id"], seen["scopes"]) == ("svc-backup", client_id, ["mcp"])
    # the control for the test above: the same forged-token method works for this client
    assert _call_tool(server, _token_as_issued_before(server, client_id), "whoami").status_code == 200

    attacker = httpx.post(
        server.endpoint("register"),
        json={
            "client_name": "attacker",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    assert attacker.status_code == 400
    listed = [json.loads(line) for line in server.cli("clients", "list", "--json").stdout.splitlines()]
    mine = next(row for row in listed if row["client_id"] == client_id)
    assert (mine["name"], mine["registration"], mine["grant_types"], mine["scope"]) == (
        "nightly-backup",
        "operator",
        ["client_credentials"],
        "mcp",
    )
    assert not any(row["name"] == "attacker" for row in listed)  # refused registrations stored nothing

    unused = _token(server, client_id, secret).json()["access_token"]
    assert server.cli("clients", "remove", client_id).returncode == 0
    assert _call_tool(server, unused, "whoami").status_code == 401
    assert _token(server, client_id, secret).json()["error"] == "invalid_client"
