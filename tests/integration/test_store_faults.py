"""A database that drops, refuses or locks under a running authgate (issue 19): every request
is answered, as JSON or an HTML page with `503` and `Retry-After`, never a text/plain 500 or a
traceback; the server recovers by itself, and nothing it had answered is lost.

PostgreSQL: the test's own database only (`pg_terminate_backend` of its backends, and
`ALLOW_CONNECTIONS false` for a database that is down). SQLite: a write lock held by another
connection past the busy timeout.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from support import requirements as req
from support.authgate_server import AuthgateServer
from support.flow_load import CALLBACK, INITIALIZE, MCP_HEADERS, FlowLoad, auth_url, pkce_pair, still_works
from support.headless import authorize
from support.pg import PG_ADMIN_URL, asyncpg_dsn, fresh_database

RECOVERY_SECONDS = 2.0
LOAD = {"AUTHGATE_REGISTRATIONS_PER_MINUTE": "100000"}  # the load registers a client per flow


@pytest.fixture
async def database() -> AsyncIterator[sa.URL]:
    async with fresh_database("authgate_store_faults") as url:
        yield url


@pytest.fixture
def pg_replica(database: sa.URL, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AuthgateServer]:
    env = {
        "AUTHGATE_DATABASE_URL": database.render_as_string(hide_password=False),
        "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(32),
        **LOAD,
    }
    server = AuthgateServer(tmp_path / "replica", extra_env=env)
    request.node._authgate_servers = [server]  # its logs on failure
    server.add_user()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _on_db(database: sa.URL, sql: str) -> None:
    """Run `sql` as the admin (on the admin database, never on the test's own)."""

    async def run() -> None:
        admin = await asyncpg.connect(asyncpg_dsn(sa.make_url(PG_ADMIN_URL)), timeout=5)
        try:
            await admin.execute(sql.replace("{db}", database.database or ""))
        finally:
            await admin.close()

    asyncio.run(run())


def _cut(database: sa.URL) -> None:
    """Terminate every connection to the test's database (and only to it)."""
    _on_db(
        database,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()",
    )


def _register(server: AuthgateServer) -> httpx.Response:
    body = {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": "faults"}
    return httpx.post(server.endpoint("register"), json=body, timeout=15)


def _tokens(server: AuthgateServer, client_id: str) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = authorize(auth_url(server.url, client_id, challenge), server.username, server.password).code
    form = {
        "grant_type": "authorization_code",
        "code": code or "",
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
    }
    r = httpx.post(server.endpoint("token"), data=form, timeout=15)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _refresh(server: AuthgateServer, client_id: str, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return httpx.post(server.endpoint("token"), data=form, timeout=15)


def _recovers(probe: Callable[[], bool]) -> float:
    """Seconds until `probe` succeeds, polled; fails past RECOVERY_SECONDS."""
    started = time.monotonic()
    while not probe():
        assert time.monotonic() - started < RECOVERY_SECONDS, f"not serving {RECOVERY_SECONDS} s after the cut"
        time.sleep(0.05)
    return time.monotonic() - started


def _assert_503(response: httpx.Response, shape: str) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["retry-after"].isdigit()
    assert "Traceback" not in response.text
    if shape == "html":
        assert response.headers["content-type"].startswith("text/html")
        return
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    if shape == "oauth":
        assert body["error"] == "temporarily_unavailable" and body["error_description"]
    else:  # JSON-RPC 2.0 §5, authgate's own failure (gateway/errors.py)
        assert body["jsonrpc"] == "2.0" and body["id"] is None
        assert body["error"]["code"] == -32603 and body["error"]["data"]["source"] == "authgate"


pg = pytest.mark.postgres


@pg
@pytest.mark.requirement(req.ISSUE19_STORE_UNAVAILABLE_503)
def test_database_connections_cut_three_times_under_load(pg_replica: AuthgateServer, database: sa.URL) -> None:
    server = pg_replica
    with FlowLoad([server], server.username, server.password, workers=4) as load:
        time.sleep(1.0)
        for _ in range(3):
            _cut(database)
            _recovers(lambda: _register(server).status_code == 201)
            time.sleep(0.6)
    ledger = load.ledger
    assert not ledger.problems, "\n".join(ledger.problems[:20])
    assert load.flows > 0 and ledger.refresh, ledger.statuses
    assert ledger.unreachable == 0  # no request lost on a kept-alive connection either
    # nothing answered is lost: every client is known, every newest refresh token refreshes
    for client_id in ledger.clients:
        token = ledger.refresh.get(client_id, (None, 0.0))[0]
        ok, _, failed = still_works(server, client_id, token)
        assert ok, failed
    logs = server.logs()
    i = logs.find("Traceback")
    assert "Traceback" not in logs, logs[max(0, i - 1500) : i + 4000]


@pg
@pytest.mark.requirement(req.ISSUE19_STORE_UNAVAILABLE_503)
def test_a_database_down_is_503_and_any_other_failure_500_on_every_surface(
    pg_replica: AuthgateServer, database: sa.URL
) -> None:
    server = pg_replica
    client_id = _register(server).json()["client_id"]
    issued = _tokens(server, client_id)
    unused = _refresh(server, client_id, issued["refresh_token"]).json()  # its access token never checked yet
    checked = {**MCP_HEADERS, "Authorization": f"Bearer {issued['access_token']}"}
    assert httpx.post(server.mcp_url, json=INITIALIZE, headers=checked, timeout=15).status_code == 200
    _on_db(database, 'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS false')
    try:
        _cut(database)
        _assert_503(_register(server), "oauth")
        _assert_503(_refresh(server, client_id, unused["refresh_token"]), "oauth")
        _, challenge = pkce_pair()
        _assert_503(httpx.get(auth_url(server.url, client_id, challenge), timeout=15), "html")
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {unused['access_token']}"}
        _assert_503(httpx.post(server.mcp_url, json=INITIALIZE, headers=headers, timeout=15), "jsonrpc")
        # what needs no database still answers: metadata, and a token checked within token_cache_seconds
        assert httpx.get(f"{server.url}/.well-known/oauth-authorization-server", timeout=15).status_code == 200
        assert httpx.post(server.mcp_url, json=INITIALIZE, headers=checked, timeout=15).status_code == 200
    finally:
        _on_db(database, 'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS true')
    _recovers(lambda: _register(server).status_code == 201)
    assert _refresh(server, client_id, unused["refresh_token"]).status_code == 200  # nothing was lost
    logs = server.logs()
    assert "Traceback" not in logs, logs[-5000:]
    assert "POST /mcp 503" in logs  # the request log shows what the client got
    _other_failures_are_500(server, database)


def _other_failures_are_500(server: AuthgateServer, database: sa.URL) -> None:
    """Not an outage (a table gone): a 500, JSON or an HTML page, the details only in the log."""
    client_id = _register(server).json()["client_id"]
    fresh = _tokens(server, client_id)["access_token"]  # never checked by the guard yet

    async def rename(old: str, new: str) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(database), timeout=5)
        try:
            await conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
        finally:
            await conn.close()

    asyncio.run(rename("clients", "clients_gone"))
    try:
        r = _register(server)
        assert r.status_code == 500 and r.headers["content-type"].startswith("application/json"), r.text
        assert r.json()["error"] == "server_error" and "clients" not in r.text
        _, challenge = pkce_pair()
        page = httpx.get(auth_url(server.url, client_id, challenge), timeout=15)
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {fresh}"}
        rpc = httpx.post(server.mcp_url, json=INITIALIZE, headers=headers, timeout=15)
        assert rpc.status_code == 500 and rpc.json()["error"]["data"]["reason"] == "database_error"
        assert not any("Traceback" in x.text for x in (r, page, rpc))
    finally:
        asyncio.run(rename("clients_gone", "clients"))
    assert _register(server).status_code == 201
    assert "POST /mcp 500" in server.logs() and "UndefinedTableError" in server.logs()  # the details: the log


@pytest.mark.requirement(req.ISSUE19_STORE_UNAVAILABLE_503)
def test_sqlite_locked_past_the_busy_timeout_is_503(authgate_factory: Callable[..., AuthgateServer]) -> None:
    server = authgate_factory(**LOAD)
    client_id = _register(server).json()["client_id"]
    issued = _tokens(server, client_id)
    holder = sqlite3.connect(server.data_dir / "authgate.db", isolation_level=None, timeout=10)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held past authgate's 5 s busy timeout
        _assert_503(_refresh(server, client_id, issued["refresh_token"]), "oauth")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    r = _refresh(server, client_id, issued["refresh_token"])  # the refused refresh changed nothing
    assert r.status_code == 200, r.text
    assert _register(server).status_code == 201
    assert "Traceback" not in server.logs()


# -- database URLs are printed without their password ------------------------------------------

PASSWORD = "s3cretpw-do-not-print"


def _run(tmp_path: Path, database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    server = AuthgateServer(tmp_path, extra_env={"AUTHGATE_DATABASE_URL": database_url, **SECRET, **env})
    return subprocess.run(
        [sys.executable, "-m", "authgate", *args],
        env=server.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _refused_quietly(done: subprocess.CompletedProcess[str], expect: str) -> None:
    shown = done.stdout + done.stderr
    assert done.returncode != 0, shown
    assert PASSWORD not in shown, shown
    assert "Traceback" not in shown, shown
    assert expect in shown, shown


SECRET = {"AUTHGATE_SECRET_KEY": "k" * 43}


@pytest.mark.requirement(req.ISSUE19_DB_URL_MASKED)
def test_a_database_url_password_is_never_printed(tmp_path: Path, free_port: int) -> None:
    closed = f"postgresql+asyncpg://authgate:{PASSWORD}@127.0.0.1:{free_port}/authgate"
    for args in [("serve",), ("users", "list"), ("db", "upgrade")]:
        _refused_quietly(_run(tmp_path, closed, *args), f"authgate:***@127.0.0.1:{free_port}/authgate")
    not_a_port = f"postgresql+asyncpg://authgate:{PASSWORD}@127.0.0.1:port/authgate"
    _refused_quietly(_run(tmp_path, not_a_port, "serve"), "invalid database URL")
    with_credentials = f"https://admin:{PASSWORD}@auth.example.com"
    sqlite = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    _refused_quietly(_run(tmp_path, sqlite, "serve", AUTHGATE_PUBLIC_URL=with_credentials), "credentials")


@pg
@pytest.mark.requirement(req.ISSUE19_DB_URL_MASKED)
def test_a_database_that_refuses_the_login_never_prints_the_password(tmp_path: Path) -> None:
    admin = sa.make_url(PG_ADMIN_URL)  # the suite's server: a role and a database it does not have
    for url in [
        admin.set(username="authgate_nobody", password=PASSWORD),
        admin.set(password=PASSWORD, database="authgate_no_such_database"),
    ]:
        done = _run(tmp_path, url.render_as_string(hide_password=False), "serve")
        _refused_quietly(done, "cannot open the database at")
        assert ":***@" in done.stderr
