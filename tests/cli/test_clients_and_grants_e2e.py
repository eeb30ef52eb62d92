"""`authgate clients` and `authgate grants` after real connections: ChatGPT, Claude (both CIMD,
their documents on a local HTTPS stand-in) and the MCP Python SDK (DCR) connect to a running
`authgate serve` as the doctor replays them (sign-in on authgate's own forms); then the CLI,
run as an operator runs it, lists them, revokes them and prunes what is idle.

The server re-checks every token at once (token_cache_seconds = 0), so a revocation shows at
/mcp on the next request; with the default it would take up to 30 s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from authgate.doctor.flow import DoctorOptions, Flow
from authgate.doctor.profiles import PROFILES
from authgate.doctor.runner import run_client
from authgate.doctor.standin import make_test_ca, serve_standin
from authgate.doctor.wire import Wire
from authgate.oauth.opaque import digest
from support import requirements as req
from support.authgate_server import AuthgateServer

CONNECTED = ("chatgpt", "claude", "sdk")
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}


class Connected:
    """The server, each client's replayed connection, and what the CLI printed along the way."""

    def __init__(self, server: AuthgateServer, flows: dict[str, Flow], idle_client: str) -> None:
        self.server, self.flows, self.idle_client = server, flows, idle_client
        self.printed: list[str] = []  # every CLI output, searched for secrets at the end
        self.issued: set[str] = set()  # every token the clients were given

    def cli(self, *args: str, ok: bool = True) -> str:
        done = self.server.cli(*args)
        self.printed += [done.stdout, done.stderr]
        if ok:
            assert done.returncode == 0, f"authgate {' '.join(args)} exited {done.returncode}: {done.stderr}"
        return done.stdout

    def json(self, *args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.cli(*args, "--json").splitlines()]

    def client_id(self, name: str) -> str:
        creds = self.flows[name].client
        assert creds is not None
        return creds.client_id

    def refresh(self, name: str) -> httpx.Response:
        """The client's refresh request, authenticated as it authenticates at /token."""
        flow = self.flows[name]
        assert flow.client is not None and flow.tokens is not None
        form = {"grant_type": "refresh_token", "refresh_token": flow.tokens["refresh_token"]}
        auth: tuple[str, str] | None = None
        if flow.client.auth_method == "client_secret_basic":
            auth = (flow.client.client_id, flow.client.client_secret or "")
        else:
            form["client_id"] = flow.client.client_id
            if flow.client.auth_method == "client_secret_post":
                form["client_secret"] = flow.client.client_secret or ""
        answer = httpx.post(self.server.endpoint("token"), data=form, auth=auth, timeout=10)
        if answer.status_code == 200:  # rotated: keep the newest, as a client does
            self.issued |= {flow.tokens["access_token"], flow.tokens["refresh_token"]}
            flow.tokens, flow.access_token = answer.json(), answer.json()["access_token"]
        return answer

    def call_mcp(self, name: str) -> int:
        token = self.flows[name].access_token
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        return httpx.post(self.server.mcp_url, json=INITIALIZE, headers=headers, timeout=10).status_code


async def _replay(server: AuthgateServer, host_map: dict[str, str]) -> dict[str, Flow]:
    options = DoctorOptions(
        url=server.mcp_url,
        clients=CONNECTED,
        username=server.username,
        password=server.password,
        cimd_host_map=host_map,
        keep_clients=True,  # clients that stay connected (the doctor would delete the SDK's registration)
    )
    wire = Wire(timeout=10)
    flows = {}
    try:
        for name in CONNECTED:
            report, flow = await run_client(PROFILES[name], options, wire)
            problems = [f"{f.step}: {f.seen}" for f in report.findings if f.status == "fail"]
            assert not problems and flow.tokens and flow.tokens.get("refresh_token"), (name, problems)
            flows[name] = flow
    finally:
        await wire.aclose()
    return flows


@pytest.fixture(scope="module")
def connected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connected]:
    workdir = tmp_path_factory.mktemp("clients-cli")
    ca = make_test_ca(workdir / "test-ca")
    with serve_standin(ca) as (base, _app):
        env = {
            "AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP": "true",
            "AUTHGATE_CIMD_CA_FILE": str(ca.ca_file),
            "AUTHGATE_TOKEN_CACHE_SECONDS": "0",
        }
        server = AuthgateServer(workdir / "authgate", extra_env=env)
        server.add_user()
        server.start()
        try:
            flows = asyncio.run(_replay(server, {"chatgpt.com": base, "claude.ai": base}))
            # a registration nobody signed in with: idle, no grant
            idle = httpx.post(
                server.endpoint("register"),
                json={"client_name": "never used", "redirect_uris": ["http://127.0.0.1:9/cb"]},
                timeout=10,
            )
            assert idle.status_code == 201, idle.text
            yield Connected(server, flows, idle.json()["client_id"])
        finally:
            server.stop()


@pytest.mark.requirement(req.ISSUE13_LISTINGS_SHOW_NO_SECRET)
def test_no_secret_token_or_hash_is_printed(connected: Connected) -> None:
    """Runs first, while every client holds its grant (the shown grants are printed too)."""
    c = connected
    machine_id, machine_secret = c.server.add_machine_client("backup", "mcp")
    show = c.json("clients", "show", machine_id)[0]
    assert show["confidential"] is True and show["registration"] == "operator"
    for name in CONNECTED:
        shown = c.json("clients", "show", c.client_id(name))[0]
        assert [g["user"] for g in shown["grants"]] == ["alice"]
        assert "GRANT ID" in c.cli("clients", "show", c.client_id(name))
    c.cli("clients", "show", machine_id)
    c.cli("clients", "list")
    c.cli("grants", "list")
    secrets = {machine_secret, "$argon2"}
    for flow in c.flows.values():
        assert flow.tokens is not None
        c.issued |= {flow.tokens["access_token"], flow.tokens["refresh_token"]}
        if flow.client is not None and flow.client.client_secret:
            secrets.add(flow.client.client_secret)
    secrets |= c.issued | {digest(t) for t in c.issued}  # a refresh token is stored as its digest
    printed = "\n".join(c.printed)
    assert [s[:12] for s in secrets if s in printed] == []


@pytest.mark.requirement(req.ISSUE13_CLIENTS_LIST_SHOWS_CONNECTIONS)
@pytest.mark.requirement(req.ISSUE13_CLIENT_REVOKE_ENDS_TOKENS)
@pytest.mark.requirement(req.ISSUE13_PRUNE_DRY_RUN_EXACT)
@pytest.mark.requirement(req.ISSUE13_GRANTS_FROM_THE_CLI)
def test_connected_clients_are_listed_revoked_and_pruned(connected: Connected) -> None:
    c = connected
    listed = {row["client_id"]: row for row in c.json("clients", "list")}
    for name, kind in (("chatgpt", "cimd"), ("claude", "cimd"), ("sdk", "dcr")):
        row = listed[c.client_id(name)]
        assert (row["registration"], row["live_grants"], row["users"]) == (kind, 1, ["alice"]), row
        assert row["last_used"] and row["last_used"] >= row["created"], row
    assert listed[c.idle_client]["live_grants"] == 0 and listed[c.idle_client]["users"] == []
    assert listed[c.client_id("sdk")]["redirect_hosts"] == [f"127.0.0.1:{c.flows['sdk'].port}"]
    table = c.cli("clients", "list").splitlines()
    assert table[0].split()[:3] == ["CLIENT", "ID", "NAME"] and len(table) == len(listed) + 1
    grants = c.json("grants", "list", "--user", "alice")
    assert sorted(g["client_id"] for g in grants) == sorted(c.client_id(n) for n in CONNECTED)

    # revoked: the refresh token fails at once, the access token at the next request (cache 0)
    for name in ("claude", "sdk"):
        assert c.call_mcp(name) == 200
        c.cli("clients", "revoke", c.client_id(name))
        refused = c.refresh(name)
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant"), refused.text
        assert c.call_mcp(name) == 401
    # the others keep theirs
    assert c.call_mcp("chatgpt") == 200 and c.refresh("chatgpt").status_code == 200
    assert c.call_mcp("chatgpt") == 200
    after = {row["client_id"]: row for row in c.json("clients", "list")}
    assert after[c.client_id("sdk")]["live_grants"] == 0  # a DCR client stays registered
    assert c.client_id("claude") not in after  # a CIMD client is known only by its grants
    assert after[c.client_id("chatgpt")]["live_grants"] == 1

    # idle clients without a grant: the unused registration and the revoked SDK client
    dry = {row["client_id"] for row in c.json("clients", "prune", "--dry-run", "--idle-minutes", "0")}
    assert dry == {c.idle_client, c.client_id("sdk")}
    assert {row["client_id"] for row in c.json("clients", "list")} == set(after)  # nothing removed
    c.cli("clients", "prune", "--idle-minutes", "0")
    assert {row["client_id"] for row in c.json("clients", "list")} == set(after) - dry

    # one grant by its id
    (grant,) = c.json("grants", "list", "--client", c.client_id("chatgpt"))
    assert "revoked grant" in c.cli("grants", "revoke", grant["grant_id"])
    assert c.refresh("chatgpt").json()["error"] == "invalid_grant" and c.call_mcp("chatgpt") == 401
    assert c.json("grants", "list") == []
