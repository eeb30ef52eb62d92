"""Per-user scope policy and credential changes, against a real `authgate serve` (issue 11,
Done-when 2 and the second half of 9).

A person may grant only the base `scopes` and what `user_role_scopes` gives their roles:
asking for more narrows the grant (the consent page, the token's `scope`, the guard all agree),
asking for nothing they may grant is `invalid_scope`. A password change or a removal, made by
the CLI in another process (so through the store, as on another replica), ends the person's
refresh tokens and sign-in cookie."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.headless import AuthorizationResponse, HeadlessUserAgent, Page

CALLBACK = "http://127.0.0.1:53711/cb"
# `mcp:tools` is the base scope (every user may grant it, the guard asks for it); `admin`, which
# the whoami tool needs, only the roles admin (the first user's) and ops may grant.
ROLE_SCOPES = {"admin": ["*"], "tools": ["mcp:tools"], "ops": ["mcp:tools", "admin"]}
TOOL_SCOPES = {"list_knowledge_bases": ["mcp:tools"], "whoami": ["admin"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(
        tmp_path_factory.mktemp("user-scopes"),
        extra_env={
            "AUTHGATE_SCOPES": '["mcp:tools"]',
            "AUTHGATE_USER_ROLE_SCOPES": json.dumps(ROLE_SCOPES),
            "AUTHGATE_TOOL_SCOPES": json.dumps(TOOL_SCOPES),
            "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000",
        },
    )
    srv.add_user()  # alice, the first user: admin
    srv.start()
    yield srv
    srv.stop()


def add_user(server: AuthgateServer, name: str, *roles: str) -> str:
    password = f"pw-{secrets.token_urlsafe(12)}"
    args = [a for r in roles for a in ("--role", r)]
    done = server.cli("users", "add", name, *args, "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    return password


class Flow:
    """One client's authorization request (PKCE) and the calls that follow it."""

    def __init__(self, server: AuthgateServer, scope: str) -> None:
        self.server = server
        r = httpx.post(
            server.endpoint("register"), json={"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"}
        )
        assert r.status_code == 201, r.text
        self.client_id = r.json()["client_id"]
        self.verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        self.url = (
            server.endpoint("authorize")
            + "?"
            + urlencode(
                {
                    "response_type": "code",
                    "client_id": self.client_id,
                    "redirect_uri": CALLBACK,
                    "state": "st",
                    "code_challenge": challenge,
                    "code_challenge_method": "S256",
                    "scope": scope,
                    "resource": server.mcp_url,
                }
            )
        )

    def redeem(self, code: str | None) -> dict[str, Any]:
        assert code
        r = httpx.post(
            self.server.endpoint("token"),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": self.verifier,
                "redirect_uri": CALLBACK,
                "client_id": self.client_id,
            },
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def refresh(self, refresh_token: str) -> httpx.Response:
        return httpx.post(
            self.server.endpoint("token"),
            data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id},
        )


def sign_in_to_consent(agent: HeadlessUserAgent, flow: Flow, username: str, password: str) -> Page:
    login = agent.open(flow.url)
    assert isinstance(login, Page) and login.login_form is not None
    consent = agent.submit(login.login_form, username=username, password=password)
    assert isinstance(consent, Page) and consent.consent_form is not None, consent
    return consent


def call_tool(server: AuthgateServer, token: str, name: str) -> httpx.Response:
    """initialize, initialized, then tools/call `name`: the answer to the call."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    init = httpx.post(
        server.mcp_url,
        headers=headers,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
    )
    assert init.status_code == 200, init.text
    headers |= {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    httpx.post(server.mcp_url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    return httpx.post(
        server.mcp_url,
        headers=headers,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}}},
    )


def _scopes_listed(page: Page) -> str:
    return page.text.split("It will be able to:")[1].split("Deny")[0]


@pytest.mark.requirement(req.RFC6749_3_3_GRANTED_SCOPE)
def test_a_user_allowed_only_mcp_tools_gets_mcp_tools_and_is_refused_the_admin_tool(server: AuthgateServer) -> None:
    password = add_user(server, "bob", "tools")
    flow = Flow(server, "mcp:tools admin")
    with HeadlessUserAgent() as agent:
        consent = sign_in_to_consent(agent, flow, "bob", password)
        listed = _scopes_listed(consent)
        assert "mcp:tools" in listed and "admin" not in listed  # only what bob may grant
        answer = agent.submit(consent.consent_form, decision="allow")  # type: ignore[arg-type]
    assert isinstance(answer, AuthorizationResponse)
    tokens = flow.redeem(answer.code)
    assert tokens["scope"] == "mcp:tools"

    refused = call_tool(server, tokens["access_token"], "whoami")
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    allowed = call_tool(server, tokens["access_token"], "list_knowledge_bases")
    assert allowed.status_code == 200 and "knowledge_bases" in allowed.text

    # the same request by the first user (admin: "*") is granted whole, and the tool answers
    admin_flow = Flow(server, "mcp:tools admin")
    with HeadlessUserAgent() as agent:
        admin_tokens = admin_flow.redeem(agent.authorize(admin_flow.url, server.username, server.password).code)
    assert admin_tokens["scope"] == "mcp:tools admin"
    assert call_tool(server, admin_tokens["access_token"], "whoami").status_code == 200


@pytest.mark.requirement(req.RFC6749_4_1_2_1_INVALID_SCOPE)
def test_asking_only_for_what_the_user_may_not_grant_is_invalid_scope(server: AuthgateServer) -> None:
    password = add_user(server, "erin")  # no role: the base scopes only
    flow = Flow(server, "admin")
    with HeadlessUserAgent() as agent:
        answer = agent.authorize(flow.url, "erin", password)
    assert answer.error == "invalid_scope" and answer.state == "st" and answer.iss == server.issuer
    assert "admin" in (answer.error_description or "")


def test_taking_a_role_away_narrows_the_next_refresh(server: AuthgateServer) -> None:
    password = add_user(server, "frank", "ops")
    flow = Flow(server, "mcp:tools admin")
    with HeadlessUserAgent() as agent:
        tokens = flow.redeem(agent.authorize(flow.url, "frank", password).code)
    assert tokens["scope"] == "mcp:tools admin"
    assert server.cli("users", "roles", "frank").returncode == 0  # no role left
    refreshed = flow.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200 and refreshed.json()["scope"] == "mcp:tools"
    listed = {
        u["username"]: u["roles"] for u in map(json.loads, server.cli("users", "list", "--json").stdout.splitlines())
    }
    assert (listed["frank"], listed["alice"]) == ([], ["admin"])


def test_taking_a_role_away_narrows_the_access_tokens_already_issued(server: AuthgateServer) -> None:
    # the token still says `admin`, but the guard re-reads the user (token_cache_seconds) and
    # applies the roles held now: without that, the scope lasted until the token's expiry
    password = add_user(server, "grace", "ops")
    flow = Flow(server, "mcp:tools admin")
    with HeadlessUserAgent() as agent:
        tokens = flow.redeem(agent.authorize(flow.url, "grace", password).code)
    assert tokens["scope"] == "mcp:tools admin"
    assert server.cli("users", "roles", "grace", "tools").returncode == 0  # `ops` taken away
    refused = call_tool(server, tokens["access_token"], "whoami")  # needs `admin`
    assert refused.status_code == 403, refused.text
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
    assert call_tool(server, tokens["access_token"], "list_knowledge_bases").status_code == 200  # mcp:tools stays


def _signed_in_with_tokens(
    server: AuthgateServer, agent: HeadlessUserAgent, name: str, password: str
) -> tuple[Flow, dict[str, Any]]:
    flow = Flow(server, "mcp:tools")
    tokens = flow.redeem(agent.authorize(flow.url, name, password).code)
    again = agent.open(flow.url)  # the sign-in cookie works: no login page, consent remembered
    assert isinstance(again, AuthorizationResponse) and again.code
    return flow, tokens


@pytest.mark.requirement(req.RFC9700_4_14_2_USER_CHANGE_ENDS_TOKENS)
def test_password_change_ends_refresh_tokens_and_the_sign_in_cookie(server: AuthgateServer) -> None:
    password = add_user(server, "carol")
    with HeadlessUserAgent() as agent:
        flow, tokens = _signed_in_with_tokens(server, agent, "carol", password)
        new_password = f"pw-{secrets.token_urlsafe(12)}"
        changed = server.cli("users", "set-password", "carol", "--password-stdin", stdin=new_password + "\n")
        assert changed.returncode == 0, changed.stderr

        refused = flow.refresh(tokens["refresh_token"])
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        back = agent.open(flow.url)  # the old cookie: back at the login page
        assert isinstance(back, Page) and back.login_form is not None
        wrong = agent.submit(back.login_form, username="carol", password=password)
        assert isinstance(wrong, Page) and wrong.status == 401
    with HeadlessUserAgent() as fresh:  # the new password signs in
        assert fresh.authorize(flow.url, "carol", new_password).code


@pytest.mark.requirement(req.RFC9700_4_14_2_USER_CHANGE_ENDS_TOKENS)
def test_user_removal_ends_refresh_tokens_and_the_sign_in_cookie(server: AuthgateServer) -> None:
    password = add_user(server, "dave")
    with HeadlessUserAgent() as agent:
        flow, tokens = _signed_in_with_tokens(server, agent, "dave", password)
        assert server.cli("users", "remove", "dave").returncode == 0
        refused = flow.refresh(tokens["refresh_token"])
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        back = agent.open(flow.url)
        assert isinstance(back, Page) and back.login_form is not None
