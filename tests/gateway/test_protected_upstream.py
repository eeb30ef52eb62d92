"""Issue 15, done-when 3: `authgate serve --upstream` (the front) in front of another `authgate
serve` (the back: embedded AS, its built-in server, a per-tool scope) that protects its MCP
endpoint. Two people sign in at the front; each connects their own account at the back through
the front's connect page and reaches the back with their own token (the back's `whoami` names
them); a tool needing a scope they lack is a step-up (a new connect link for the union of the
scopes; the retried call succeeds); revoking the connection makes the next call ask again; a
machine client gets a clear refusal; a restart of the front keeps its registration and the
connections.

Registration is DCR: a Client ID Metadata Document must be at an HTTPS URL, which two loopback
authgates do not have (CIMD registration is tested with a TLS test CA beside authgate's own
document: tests/outbound). Real processes, real sockets, real SQLite; every wait bounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.flow_load import CALLBACK, auth_url, pkce_pair
from support.headless import AuthorizationResponse, HeadlessUserAgent, Page

from .mcp_wire import MODERN, initialize_request, legacy_headers, modern_headers

BACK_TOOL_SCOPES = {"list_knowledge_bases": ["kb.admin"]}  # the back's per-tool scope (docs/policy.md)
PEOPLE = {"alice": "ann", "bob": "ben"}  # the front's users and their accounts at the back


class Person:
    """One person: a browser for each authgate (cookies are per host, not per port) and the
    front's access token of their MCP client."""

    def __init__(self, front: AuthgateServer, name: str, password: str, back_name: str, back_password: str) -> None:
        self.front, self.name, self.password = front, name, password
        self.back_name, self.back_password = back_name, back_password
        self.front_ua = HeadlessUserAgent(timeout=20)
        self.back_ua = HeadlessUserAgent(timeout=20)
        self.token = ""
        self.session: str | None = None

    def sign_in(self) -> None:
        """The MCP client's authorization code flow at the front (DCR, PKCE), in this browser."""
        r = httpx.post(
            self.front.endpoint("register"),
            json={
                "client_name": f"client of {self.name}",
                "redirect_uris": [CALLBACK],
                "token_endpoint_auth_method": "none",
            },
            timeout=10,
        )
        assert r.status_code == 201, r.text
        client_id = r.json()["client_id"]
        verifier, challenge = pkce_pair()
        answer = self.front_ua.authorize(auth_url(self.front.url, client_id, challenge), self.name, self.password)
        assert answer.code, answer
        form = {
            "grant_type": "authorization_code",
            "code": answer.code,
            "code_verifier": verifier,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
        }
        r = httpx.post(self.front.endpoint("token"), data=form, timeout=10)
        assert r.status_code == 200, r.text
        self.token = r.json()["access_token"]

    def rpc(self, message: dict[str, Any], session: str | None = None) -> tuple[httpx.Response, dict[str, Any]]:
        headers = legacy_headers(self.token, self.session if session is None else session)
        r = httpx.post(self.front.mcp_url, json=message, headers=headers, timeout=30)
        return r, _message(r)

    def initialize(self) -> tuple[httpx.Response, dict[str, Any]]:
        r, answer = self.rpc(initialize_request(), session="")
        if r.status_code == 200 and "result" in answer:
            self.session = r.headers["mcp-session-id"]
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert self.rpc(note)[0].status_code == 202
        return r, answer

    def call(self, tool: str, request_id: int) -> tuple[httpx.Response, dict[str, Any]]:
        return self.rpc(
            {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
        )

    def connect(self, link: str, back: AuthgateServer, *, asks: str = "") -> None:
        """The connect page at the front (naming the scope `asks`), sign-in and consent at the
        back, the callback."""
        page = self.front_ua.open(link)
        assert isinstance(page, Page) and page.status == 200, page
        assert asks in page.text, page.text[:1000]
        form = next(f for f in page.forms if "decision" in f.buttons)
        step = self.front_ua.submit(form, decision="connect")
        assert isinstance(step, AuthorizationResponse), step  # the 303 to the back's /authorize
        assert step.location.startswith(back.endpoint("authorize")), step.location
        answer = self.back_ua.authorize(step.location, self.back_name, self.back_password)
        assert answer.location.startswith(self.front.endpoint("connect/callback")), answer
        done = self.front_ua.http.get(answer.location)
        assert done.status_code == 200 and "connected" in done.text.lower(), done.text[:500]

    def whoami(self, request_id: int) -> dict[str, Any]:
        r, answer = self.call("whoami", request_id)
        assert r.status_code == 200 and "result" in answer, (r.status_code, answer)
        result = answer["result"]
        assert not result.get("isError"), result
        return dict(json.loads(result["content"][0]["text"]))

    def close(self) -> None:
        self.front_ua.close()
        self.back_ua.close()


def _message(r: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a JSON or SSE answer (the back's SDK server answers in SSE)."""
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        return dict(json.loads(data[-1])) if data else {}
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def link_in(answer: dict[str, Any], front: AuthgateServer) -> str:
    """The connect link in whatever form the answer carries it (elicitation, error or tool error)."""
    found = re.search(re.escape(front.url) + r"/connect/[A-Za-z0-9_-]{16,64}", json.dumps(answer))
    assert found, f"no connect link in {answer}"
    return found.group(0)


def back_clients(back: AuthgateServer) -> list[dict[str, Any]]:
    done = back.cli("clients", "list", "--json")  # one JSON object per line
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AuthgateServer, AuthgateServer, dict[str, Person]]]:
    root: Path = tmp_path_factory.mktemp("protected-upstream")
    back = AuthgateServer(
        root / "back",
        username="ann",  # the first user: admin, who may grant every scope (user_role_scopes)
        extra_env={"AUTHGATE_TOOL_SCOPES": json.dumps(BACK_TOOL_SCOPES), "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000"},
    )
    back.add_user()
    ben_password = "pw-ben-remote-0123456789"
    done = back.cli("users", "add", "ben", "--role", "admin", "--password-stdin", stdin=ben_password + "\n")
    assert done.returncode == 0, done.stderr
    back.start()
    front = AuthgateServer(
        root / "front",
        username="alice",
        extra_env={
            "AUTHGATE_UPSTREAM": back.mcp_url,
            "AUTHGATE_OUTBOUND_ALLOW_LOOPBACK_HTTP": "true",  # TESTING ONLY: the back is http://127.0.0.1
            "AUTHGATE_REGISTRATIONS_PER_MINUTE": "1000",
        },
    )
    front.add_user()
    bob_password = "pw-bob-front-0123456789"
    done = front.cli("users", "add", "bob", "--password-stdin", stdin=bob_password + "\n")
    assert done.returncode == 0, done.stderr
    front.start()
    people = {
        "alice": Person(front, "alice", front.password, "ann", back.password),
        "bob": Person(front, "bob", bob_password, "ben", ben_password),
    }
    try:
        yield back, front, people
    finally:
        for person in people.values():
            person.close()
        front.stop()
        back.stop()


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM)
def test_two_people_reach_the_protected_upstream_each_with_their_own_token(pair: Any) -> None:
    back, front, people = pair
    alice, bob = people["alice"], people["bob"]
    for number, person in enumerate((alice, bob)):
        person.sign_in()
        r, answer = person.initialize()  # not connected: the back's 401 becomes the connect link
        assert r.status_code == 200 and answer.get("id") == 1, (r.status_code, answer)
        assert "result" not in answer and "mcp-session-id" not in r.headers
        link = link_in(answer, front)
        person.connect(link, back)
        r, answer = person.initialize()
        assert r.status_code == 200 and "result" in answer, answer
        me = person.whoami(10 + number)
        assert me["username"] == person.back_name and me["authenticated"] is True, me
        assert "kb.admin" not in me["scopes"]  # the connect asked what the back's 401 named
    # each remote session is the person's own: the front binds it to who opened it
    r, _ = bob.rpc({"jsonrpc": "2.0", "id": 20, "method": "tools/list"}, session=alice.session)
    assert r.status_code == 404
    assert alice.whoami(21)["username"] == "ann" and bob.whoami(22)["username"] == "ben"
    # one registration at the back for the front, whoever connects (stored: DCR once)
    clients = back_clients(back)
    assert len(clients) == 1 and clients[0]["registration"] == "dcr", clients  # the back's one client: the front
    assert sorted(clients[0]["users"]) == ["ann", "ben"], clients


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM_STEP_UP)
def test_a_scope_the_upstream_asks_for_is_a_step_up_then_the_call_succeeds(pair: Any) -> None:
    back, front, people = pair
    alice = people["alice"]
    r, answer = alice.call("list_knowledge_bases", 30)  # the back answers 403 insufficient_scope
    assert r.status_code == 200 and answer.get("id") == 30, (r.status_code, answer)
    alice.connect(link_in(answer, front), back, asks="kb.admin")  # the union of the scopes
    r, answer = alice.call("list_knowledge_bases", 31)
    assert r.status_code == 200 and "result" in answer and not answer["result"].get("isError"), answer
    me = alice.whoami(32)
    assert me["username"] == "ann" and {"mcp", "kb.admin"} <= set(me["scopes"]), me
    assert people["bob"].whoami(33)["username"] == "ben"  # bob's connection untouched


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM)
def test_revoking_a_connection_makes_the_next_call_ask_again(pair: Any) -> None:
    back, front, people = pair
    alice, bob = people["alice"], people["bob"]
    done = front.cli("connections", "revoke", "--user", "alice", "--provider", "upstream")
    assert done.returncode == 0, done.stderr
    r, answer = alice.call("whoami", 40)
    assert r.status_code == 200 and answer.get("id") == 40, (r.status_code, answer)
    assert link_in(answer, front)
    assert bob.whoami(41)["username"] == "ben"


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM)
def test_at_2026_07_28_the_link_is_a_url_elicitation_and_the_retry_with_its_state_succeeds(pair: Any) -> None:
    back, front, people = pair
    alice = people["alice"]  # not connected (revoked above)
    meta = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}},
        "io.modelcontextprotocol/clientInfo": {"name": "protected-upstream", "version": "1"},
    }
    call = {
        "jsonrpc": "2.0",
        "id": 60,
        "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}, "_meta": meta},
    }
    headers = modern_headers(alice.token, "tools/call", "whoami")
    r = httpx.post(front.mcp_url, json=call, headers=headers, timeout=30)
    result = _message(r).get("result", {})
    assert r.status_code == 200 and result.get("resultType") == "input_required", r.text
    ((key, ask),) = result["inputRequests"].items()
    assert ask["method"] == "elicitation/create" and ask["params"]["mode"] == "url", ask
    alice.connect(ask["params"]["url"], back)
    again = {
        **call,
        "params": {
            **call["params"],
            "requestState": result["requestState"],
            "inputResponses": {key: {"action": "accept"}},
        },
    }
    r = httpx.post(front.mcp_url, json=again, headers=headers, timeout=30)
    result = _message(r).get("result", {})
    assert r.status_code == 200 and not result.get("isError") and "content" in result, r.text
    assert json.loads(result["content"][0]["text"])["username"] == "ann"


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM)
def test_a_machine_client_is_told_the_upstream_needs_a_person(pair: Any) -> None:
    _, front, _ = pair
    token, _ = front.machine_token("mcp", name="protected-upstream-machine", scope="mcp")
    r = httpx.post(front.mcp_url, json=initialize_request(), headers=legacy_headers(token), timeout=30)
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["data"]["reason"] == "upstream_needs_a_person" and "machine client" in error["message"]
    ready = httpx.get(front.endpoint("health/ready"), timeout=10)  # its 401 is a protected upstream's normal answer
    assert ready.status_code == 200, ready.text


@pytest.mark.requirement(req.ISSUE15_PROTECTED_UPSTREAM)
def test_a_restart_keeps_the_registration_and_the_connections(pair: Any) -> None:
    back, front, people = pair
    front.restart()
    bob = people["bob"]
    bob.initialize()
    assert bob.whoami(50)["username"] == "ben"
    assert len(back_clients(back)) == 1  # registered once: the front kept it in its store
