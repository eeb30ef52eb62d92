"""Two authgate replicas on one PostgreSQL database in front of one stateful upstream, with
no sticky sessions: a session opened through one replica is served by the other, and stays
its owner's alone (the bindings live in the database, hashed; authgate.store.sql.sessions)."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from .conftest import AuthgateServer, serve_in_thread, service_token, start_gateway
from .mcp_wire import initialize_request, legacy_headers
from .upstream_app import build_upstream

PG_ADMIN_URL = os.environ.get("AUTHGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
PG_START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

pytestmark = pytest.mark.postgres


def _dsn(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_dsn(sa.make_url(PG_ADMIN_URL)), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}); start it with: {PG_START_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def database() -> Any:
    admin = await _admin()
    name = f"authgate_replicas_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(PG_ADMIN_URL).set(database=name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def replicas(database: sa.URL, tmp_path: Any) -> Iterator[tuple[Any, Any]]:
    up = build_upstream(stateless=False)
    with serve_in_thread(up.app) as upstream_base:
        shared = {"AUTHGATE_DATABASE_URL": database.render_as_string(hide_password=False),
                  "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(32)}
        first = start_gateway(tmp_path / "a", upstream_base + "/mcp", **shared)
        # The second replica answers on another port but is the same public resource, as
        # behind a load balancer: the same issuer, audience and keys.
        second = AuthgateServer(tmp_path / "b", extra_env={
            "AUTHGATE_UPSTREAM": upstream_base + "/mcp", "AUTHGATE_PUBLIC_URL": first.url, **shared})
        second.start()
        try:
            yield first, second
        finally:
            second.stop()
            first.stop()


@pytest.mark.requirement("MCP 2025-11-25 security best practices: session hijacking")
async def test_any_replica_serves_a_session_and_only_to_its_owner(
    replicas: tuple[Any, Any], database: sa.URL,
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

        admin = await asyncpg.connect(_dsn(database))
        try:
            rows = await admin.fetch("SELECT session_hash FROM session_bindings")
        finally:
            await admin.close()
        assert [row["session_hash"] for row in rows] == [hashlib.sha256(sid.encode()).hexdigest()]

        assert (await http.delete(on_second, headers=legacy_headers(owner, sid))).status_code == 200
        for url in (first.mcp_url, on_second):
            r = await http.post(url, json=listing, headers=legacy_headers(owner, sid))
            assert r.status_code == 404, "an ended session is still served"
