"""The connection timeline against a real `authgate serve` (issue 13, "Done when" 3): for each
of the doctor's client profiles (ChatGPT, Claude, SDK-style: their registration bodies, token
authentication and redirect URIs), a connection broken on purpose — a wrong redirect URI, a
PKCE mismatch, a scope the user may not grant, an expired code — is listed by
`authgate attempts --failed` with the step it failed at and the reason; a whole connection
tells its story up to the first MCP call and the first refresh, a CIMD client too (and a
document not found is its failure); nobody writes a failure into another client's story; no
row (nor the database file) holds a secret the test used; a flood of unknown clients leaves
the table at its cap."""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from authgate.doctor.login import form_sign_in
from authgate.doctor.profiles import PROFILES, ClientProfile, pinned_document
from authgate.oauth.pkce import s256
from authgate.store.sql.attempts import step_names
from support import ports
from support import requirements as req
from support.authgate_server import AuthgateServer, serve_asgi_in_thread

CAP = 100
BOB, BOB_PASSWORD = "bob", f"pw-{secrets.token_urlsafe(12)}"
WRONG_REDIRECT = "https://attacker.example/callback"

used_secrets: list[str] = []  # every secret, code, token, password and verifier the tests used


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(
        tmp_path_factory.mktemp("attempts"),
        extra_env={
            "AUTHGATE_CIMD_ALLOW_LOOPBACK_HTTP": "true",  # the CIMD case's documents: on 127.0.0.1
            "AUTHGATE_REGISTRATIONS_PER_MINUTE": "10000",
            "AUTHGATE_TOOL_SCOPES": '{"docs.create": ["docs.write"]}',  # offered; bob may not grant it
            "AUTHGATE_ATTEMPTS_MAX_ROWS": str(CAP),
        },
    )
    srv.add_user()  # alice, the first user: admin
    done = srv.cli("users", "add", BOB, "--password-stdin", stdin=BOB_PASSWORD + "\n")  # no role
    assert done.returncode == 0, done.stderr
    used_secrets.extend([srv.password, BOB_PASSWORD])
    srv.start()
    yield srv
    srv.stop()


class Connection:
    """One client of a doctor profile connecting by hand, so that each step can be broken."""

    def __init__(self, server: AuthgateServer, profile: ClientProfile) -> None:
        self.server, self.profile = server, profile
        self.redirect_uri = profile.redirect_uri.format(port=53682)
        body = {**profile.dcr_body, "redirect_uris": [self.redirect_uri], "software_id": "authgate-tests"}
        r = httpx.post(server.endpoint("register"), json=body, timeout=10)
        assert r.status_code == 201, r.text
        self.client_id: str = r.json()["client_id"]
        self.secret: str | None = r.json().get("client_secret")
        self.verifier = secrets.token_urlsafe(48)
        used_secrets.extend([s for s in (self.secret, self.verifier) if s])

    def authorize_url(self, *, redirect_uri: str | None = None, scope: str | None = None) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri or self.redirect_uri,
            "code_challenge": s256(self.verifier),
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8),
            "resource": self.server.mcp_url,
        }
        if scope:
            query["scope"] = scope
        return self.server.endpoint("authorize") + "?" + urlencode(query)

    async def code(
        self, *, user: str | None = None, password: str | None = None, scope: str | None = None
    ) -> dict[str, str]:
        """Sign in and consent on authgate's own pages; the redirect's parameters."""
        result = await form_sign_in(
            self.authorize_url(scope=scope),
            self.redirect_uri,
            user or self.server.username,
            password or self.server.password,
        )
        if "code" in result.params:
            used_secrets.append(result.params["code"])
        return result.params

    def token(self, form: dict[str, str]) -> httpx.Response:
        data = {**form, "resource": self.server.mcp_url}
        auth: tuple[str, str] | None = None
        if self.profile.token_auth_method == "client_secret_basic":
            assert self.secret
            auth = (self.client_id, self.secret)
        elif self.profile.token_auth_method == "client_secret_post":
            assert self.secret
            data |= {"client_id": self.client_id, "client_secret": self.secret}
        else:
            data["client_id"] = self.client_id
        r = httpx.post(self.server.endpoint("token"), data=data, auth=auth, timeout=10)
        for name in ("access_token", "refresh_token"):
            if r.status_code == 200 and name in r.json():
                used_secrets.append(r.json()[name])
        return r

    def exchange(self, code: str, verifier: str | None = None) -> httpx.Response:
        return self.token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier or self.verifier,
            }
        )


def _expire_codes(server: AuthgateServer, client_id: str) -> None:
    """The code's lifetime passes (without waiting code_ttl): the server's clock says so."""
    with sqlite3.connect(server.data_dir / "authgate.db", timeout=10) as db:
        db.execute("UPDATE authorization_codes SET expires_at = 0 WHERE client_id = ?", (client_id,))


async def _break(server: AuthgateServer, profile: ClientProfile, how: str) -> Connection:
    conn = Connection(server, profile)
    if how == "wrong redirect URI":
        r = httpx.get(conn.authorize_url(redirect_uri=WRONG_REDIRECT), timeout=10)
        assert r.status_code == 400 and "cannot sign in" in r.text  # shown, never redirected
    elif how == "missing scope":
        params = await conn.code(user=BOB, password=BOB_PASSWORD, scope="docs.write")
        assert params["error"] == "invalid_scope"
    else:
        code = (await conn.code())["code"]
        if how == "expired code":
            _expire_codes(server, conn.client_id)
        wrong = secrets.token_urlsafe(48) if how == "PKCE mismatch" else None
        r = conn.exchange(code, wrong)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    return conn


BROKEN = {  # how → (the step it fails at, what the reason says)
    "wrong redirect URI": ("authorize", "redirect_uri is not registered for this client — it registered {uri}"),
    "PKCE mismatch": ("token", "token request refused: code_verifier does not match the code_challenge"),
    "missing scope": ("consent", "authorization refused: the signed-in user may not grant docs.write"),
    "expired code": ("token", "token request refused: authorization code has expired"),
}


def _settled(server: AuthgateServer, query: str, *params: object, want: object) -> None:
    """Wait (bounded) until `query`'s first value is `want`: the steps are written by the
    server's background writer, a few milliseconds after the answers."""
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(server.data_dir / "authgate.db", timeout=10) as db:
            got = db.execute(query, params).fetchone()[0]
        if got == want or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _attempts(server: AuthgateServer, *args: str) -> list[dict[str, Any]]:
    done = server.cli("attempts", "--json", "--limit", "1000", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.requirement(req.ISSUE13_ATTEMPTS_EXPLAIN_FAILURES)
@pytest.mark.requirement(req.ISSUE13_CONNECTION_TIMELINE)
async def test_broken_connections_of_every_profile_are_explained(server: AuthgateServer) -> None:
    broken: dict[tuple[str, str], Connection] = {}
    for name in ("chatgpt", "claude", "sdk"):
        for how in BROKEN:
            broken[name, how] = await _break(server, PROFILES[name], how)
    ids = [conn.client_id for conn in broken.values()]
    marks = ",".join("?" * len(ids))
    _settled(
        server,
        f"SELECT count(*) FROM attempts WHERE failed_step IS NOT NULL AND client_id IN ({marks})",
        *ids,
        want=len(ids),
    )
    failed = {a["client_id"]: a for a in _attempts(server, "--failed")}
    for (name, how), conn in broken.items():
        step, reason = BROKEN[how]
        row = failed.get(conn.client_id)
        assert row is not None, f"{name}, {how}: not listed by `authgate attempts --failed`"
        assert row["failed_step"] == step, (name, how, row)
        assert reason.format(uri=conn.redirect_uri) in row["reason"], (name, how, row)
        assert row["fix"], (name, how)
        assert row["client_name"] == PROFILES[name].dcr_body["client_name"] and row["client_kind"] == "dcr"
        assert row["software"] == "authgate-tests"
        assert row["steps"][:2] == ["register", "authorize"] if step != "authorize" else row["steps"] == ["register"]
    # the table the operator reads: a header, then one line per attempt naming its failure
    table = server.cli("attempts", "--failed", "--client", "Claude").stdout.splitlines()
    assert table[0].split()[:3] == ["STARTED", "CLIENT", "KIND"]
    assert len(table) == 1 + len(BROKEN) and all("Claude" in line for line in table[1:])


@pytest.mark.requirement(req.ISSUE13_CONNECTION_TIMELINE)
async def test_a_whole_connection_is_one_story_up_to_the_first_refresh(server: AuthgateServer) -> None:
    httpx.get(server.url + "/.well-known/oauth-authorization-server", timeout=10)  # what a client fetches first
    conn = Connection(server, PROFILES["sdk"])
    r = conn.exchange((await conn.code())["code"])
    assert r.status_code == 200, r.text
    tokens = r.json()
    call = httpx.post(
        server.mcp_url,
        headers={
            "Authorization": f"Bearer {tokens['access_token']}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        timeout=10,
    )
    assert call.status_code < 500, call.text
    assert conn.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).status_code == 200
    story = _story(server, conn.client_id, "refresh")  # the last step queued
    assert story == ("metadata", "register", "authorize", "sign-in", "consent", "token", "mcp", "refresh")
    [row] = _attempts(server, "--client", conn.client_id)
    assert row["failed_step"] is None and row["client_name"] == "authgate doctor (mcp SDK)"


def _story(server: AuthgateServer, client_id: str, waiting_for: str) -> tuple[str, ...]:
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(server.data_dir / "authgate.db", timeout=10) as db:
            query = "SELECT steps FROM attempts WHERE client_id = ? ORDER BY steps DESC LIMIT 1"
            row = db.execute(query, (client_id,)).fetchone()  # None until the recorder's first write
        steps = step_names(row[0]) if row else ()
        if waiting_for in steps or time.monotonic() > deadline:
            return steps
        time.sleep(0.05)


@pytest.mark.requirement(req.ISSUE13_CONNECTION_TIMELINE)
async def test_nobody_writes_a_failure_into_another_clients_story(server: AuthgateServer) -> None:
    """An anonymous token request naming a client that is mid-connection (it signed in, its
    code not yet exchanged) starts a row of its own: the client's story stays clean."""
    victim = Connection(server, PROFILES["claude"])
    code = (await victim.code())["code"]
    forged = httpx.post(
        server.endpoint("token"),
        data={"grant_type": "authorization_code", "code": "agc_forged", "client_id": victim.client_id},
        timeout=10,
    )
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_client"
    _settled(server, "SELECT count(*) FROM attempts WHERE client_id = ?", victim.client_id, want=2)
    rows = _attempts(server, "--client", victim.client_id)
    assert len(rows) == 2
    story = next(r for r in rows if r["steps"])
    assert story["steps"] == ["register", "authorize", "sign-in", "consent"] and story["failed_step"] is None
    assert victim.exchange(code).status_code == 200
    assert _story(server, victim.client_id, "token")[-1] == "token"


@pytest.fixture(scope="module")
def cimd_host() -> Iterator[str]:
    """Claude's CIMD document (the pinned copy, its client_id this URL), served on loopback."""
    base = f"http://127.0.0.1:{ports.free_port()}"

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        found = scope["path"] == "/claude.json"
        body = json.dumps(pinned_document(PROFILES["claude"], base + "/claude.json")).encode() if found else b"{}"
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200 if found else 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    with serve_asgi_in_thread(app, int(base.rsplit(":", 1)[1])) as url:
        yield url


@pytest.mark.requirement(req.ISSUE13_CONNECTION_TIMELINE)
def test_a_cimd_client_tells_its_story_and_a_document_not_found_is_a_failure(
    server: AuthgateServer, cimd_host: str
) -> None:
    verifier = secrets.token_urlsafe(48)
    used_secrets.append(verifier)
    for path, status in (("/claude.json", 200), ("/gone.json", 400)):
        query = {
            "response_type": "code",
            "client_id": cimd_host + path,
            "redirect_uri": PROFILES["claude"].redirect_uri,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        assert httpx.get(server.endpoint("authorize") + "?" + urlencode(query), timeout=10).status_code == status
    gone = cimd_host + "/gone.json"
    _settled(server, "SELECT count(*) FROM attempts WHERE client_id = ?", gone, want=1)
    rows = {r["client_id"]: r for r in _attempts(server, "--since", "1h")}
    ok, failed = rows[cimd_host + "/claude.json"], rows[gone]
    assert (ok["client_kind"], ok["client_name"], ok["steps"], ok["failed_step"]) == (
        "cimd",
        "Claude",
        ["register", "authorize"],
        None,
    )
    assert (failed["client_kind"], failed["failed_step"]) == ("cimd", "authorize")
    assert "metadata document could not be fetched" in failed["reason"] and "CIMD" in failed["fix"]


@pytest.mark.requirement(req.ISSUE13_ATTEMPTS_NO_SECRET)
def test_no_row_and_no_byte_of_the_database_holds_a_secret_used(server: AuthgateServer) -> None:
    assert len(used_secrets) > 20  # the tests above ran: passwords, secrets, verifiers, codes, tokens
    rows = json.dumps(_attempts(server))
    files = [p for p in Path(server.data_dir).glob("authgate.db*") if p.is_file()]
    assert files
    raw = b"".join(p.read_bytes() for p in files)
    for secret in used_secrets:
        assert secret not in rows, "an attempt row holds a secret"
        assert secret.encode() not in raw, "the database holds a secret in the clear"


@pytest.mark.requirement(req.ISSUE13_ATTEMPTS_BOUNDED)
def test_a_flood_of_unknown_clients_leaves_the_table_at_its_cap(server: AuthgateServer) -> None:
    with httpx.Client(timeout=10) as http:
        for i in range(CAP + 50):
            query = {"response_type": "code", "client_id": f"flood-{i}", "redirect_uri": "https://x.example/cb"}
            assert http.get(server.endpoint("authorize") + "?" + urlencode(query)).status_code == 400
    _settled(server, "SELECT count(*) FROM attempts WHERE client_id = ?", f"flood-{CAP + 49}", want=1)
    with sqlite3.connect(server.data_dir / "authgate.db", timeout=10) as db:
        assert db.execute("SELECT count(*) FROM attempts").fetchone()[0] == CAP
    newest = _attempts(server, "--failed", "--limit", "1")[0]
    assert newest["client_id"] == f"flood-{CAP + 49}" and newest["client_kind"] == "unknown"
    assert newest["reason"].startswith("authorization request refused: unknown client_id")
