"""Two authgate replicas on one PostgreSQL database in front of one stateful upstream, with
no sticky sessions: a session opened through one replica is served by the other, and stays
its owner's alone (the bindings live in the database, hashed; authgate.store.sql.sessions)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from support import requirements as req
from support.pg import asyncpg_dsn, fresh_database
from support.upstream_app import build_upstream

from .conftest import AuthgateServer, serve_in_thread, service_token, start_gateway
from .mcp_wire import initialize_request, legacy_headers

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database() -> AsyncIterator[sa.URL]:
    async with fresh_database("authgate_replicas") as url:
        yield url


@pytest.fixture
def replicas(database: sa.URL, tmp_path: Any) -> Iterator[tuple[Any, Any]]:
    up = build_upstream(stateless=False)
    with serve_in_thread(up.app) as upstream_base:
        shared = {
            "AUTHGATE_DATABASE_URL": database.render_as_string(hide_password=False),
            "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(32),
        }
        first = start_gateway(tmp_path / "a", upstream_base + "/mcp", **shared)
        # The second replica answers on another port but is the same public resource, as
        # behind a load balancer: the same issuer, audience and keys.
        second = AuthgateServer(
            tmp_path / "b",
            extra_env={"AUTHGATE_UPSTREAM": upstream_base + "/mcp", "AUTHGATE_PUBLIC_URL": first.url, **shared},
        )
        second.start()
        try:
            yield first, second
        finally:
            second.stop()
            first.stop()


@pytest.mark.requirement(req.MCP_2025_11_25_SESSION_HIJACKING)
async def test_any_replica_serves_a_session_and_only_to_its_owner(
    replicas: tuple[Any, Any],
    database: sa.URL,
) -> None:
    first, second = replicas
    owner, intruder = service_token(first, "owner"), service_token(first, "intruder")
    on_second = f"{second.url}/mcp"
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx.AsyncClient(timeout=15) as http:
        r = await http.post(first.mcp_url, json=initialize_request(), headers=legacy_headers(owner))
        assert r.status_code == 200, r.text
        sid = r.headers["mcp-session-id"]
        notified = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(on_second, json=notified, headers=legacy_headers(owner, sid))).status_code == 202

        r = await http.post(on_second, json=listing, headers=legacy_headers(owner, sid))
        assert r.status_code == 200 and "echo" in r.text, r.text
        r = await http.post(on_second, json=listing, headers=legacy_headers(intruder, sid))
        assert r.status_code == 404 and r.json()["error"]["code"] == -32600

        admin = await asyncpg.connect(asyncpg_dsn(database))
        try:
            rows = await admin.fetch("SELECT session_hash FROM session_bindings")
        finally:
            await admin.close()
        assert [row["session_hash"] for row in rows] == [hashlib.sha256(sid.encode()).hexdigest()]

        assert (await http.delete(on_second, headers=legacy_headers(owner, sid))).status_code == 200
        for url in (first.mcp_url, on_second):
            r = await http.post(url, json=listing, headers=legacy_headers(owner, sid))
            assert r.status_code == 404, "an ended session is still served"
