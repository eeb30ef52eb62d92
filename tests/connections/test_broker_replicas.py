"""The connection broker against a real provider (npm oidc-provider) on a real store: two
brokers on one database play two replicas (SQLite file, PostgreSQL). A connection made
through one is seen, refreshed once for everyone, and revoked through the other; the tokens are
sealed at rest; authgate's registration at the provider is made once and outlives a restart.
The connect page itself (a browser through real processes) is test_connect_page.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlencode

import anyio.to_thread
import pytest
import sqlalchemy as sa

from authgate.connections import ConnectionBroker, ConnectionInfo, ProviderConfig
from authgate.errors import ConnectionRequired
from authgate.outbound import authorization
from authgate.outbound.errors import OutboundAuthError
from authgate.store.bundle import Stores
from authgate.store.sql import sql_stores
from support import requirements as req
from support.idp_peers import IdpUserAgent, OidcProvider, ProviderShape, require_oidc_provider
from support.pg import fresh_database
from support.ports import free_port

SECRET = b"connections-test-secret-" + b"k" * 24
PUBLIC_URL = "http://127.0.0.1:9"  # the callback is never reached: the test's agent stops before it


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> OidcProvider:
    require_oidc_provider()
    shape = ProviderShape(port=free_port(), default_resource=None, rotate_refresh=True, refresh_delay_ms=300)
    idp = OidcProvider(tmp_path_factory.mktemp("provider"), shape)
    idp.start()
    yield idp  # type: ignore[misc]
    idp.stop()


@asynccontextmanager
async def _database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}"
        return
    async with fresh_database("authgate_conn") as url:
        yield url.render_as_string(hide_password=False)


def _broker(stores: Stores, provider: OidcProvider, **kwargs: float) -> ConnectionBroker:
    config = ProviderConfig("idp", issuer=provider.issuer, scopes=("openid", "profile"))
    return ConnectionBroker(
        {"idp": config},
        stores.connections,
        SECRET,
        public_url=PUBLIC_URL,
        allow_loopback_http=True,
        refresh_margin=kwargs.get("refresh_margin", 60.0),
    )


async def connect(broker: ConnectionBroker, user: str, account: str, session: str = "browser-1") -> ConnectionInfo:
    """What the connect page does for `user`, signed in at the provider as `account`."""
    with pytest.raises(ConnectionRequired) as asked:
        await broker.require(user, "client-1", "idp")
    assert asked.value.url == f"{PUBLIC_URL}/connect/{asked.value.elicitation_id}"
    url = await broker.begin(asked.value.elicitation_id, user, session)
    agent = IdpUserAgent(account)
    try:
        params = await anyio.to_thread.run_sync(agent.authorize, url)
    finally:
        agent.close()
    return await broker.complete(urlencode(params), session)


async def _raw_rows(database_url: str) -> bytes:
    """Every byte the connection and registration tables hold, read past the store."""
    engine = sa.ext.asyncio.create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = [
                *(await conn.execute(sa.text("SELECT * FROM connections"))).all(),
                *(await conn.execute(sa.text("SELECT * FROM remote_clients"))).all(),
            ]
    finally:
        await engine.dispose()
    return b"".join(bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for row in rows for v in row)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.requirement(req.ISSUE15_CONNECTION_ONE_REFRESH_ACROSS_REPLICAS)
async def test_two_replicas_share_connections_refresh_once_and_revoke(
    backend: str, provider: OidcProvider, tmp_path: Path
) -> None:
    async with _database(backend, tmp_path) as database_url:
        one, two = sql_stores(database_url), sql_stores(database_url)
        await one.open()
        await two.open()
        # a margin above the provider's 600 s lifetime: every token is near expiry (no sleeping)
        a, b = _broker(one, provider, refresh_margin=3600), _broker(two, provider, refresh_margin=3600)
        try:
            made = await connect(a, "alice", "alice-at-idp")
            assert made.provider == "idp" and made.refreshable and "openid" in made.scopes
            # the other replica sees it, and authgate's registration there (no second registration)
            assert [c.user_id for c in await b.list()] == ["alice"]
            endpoint = await b.remote.endpoint(b.providers["idp"])
            registered = await two.connections.get_remote_client(endpoint.server.issuer)
            assert registered is not None and registered.how == "dcr"
            assert (await b.remote.credentials(b.providers["idp"], endpoint.server)).client_id == registered.client_id

            # sealed at rest: neither token nor the client secret appears in the tables' bytes
            row = await one.connections.get_connection("alice", "idp")
            assert row is not None
            tokens = a._open(row)
            raw = await _raw_rows(database_url)
            secret = (await a.remote.credentials(a.providers["idp"], endpoint.server)).client_secret
            for value in (tokens["access_token"], tokens["refresh_token"], secret or "-"):
                assert value.encode() not in raw

            # eight callers on two replicas at once, the token near expiry: one refresh at the provider
            before = provider.token_counts().get("refresh_token", {}).get("ok", 0)
            got = await asyncio.gather(*(r.token("alice", "idp") for r in (a, b) for _ in range(4)))
            assert provider.token_counts()["refresh_token"]["ok"] == before + 1
            assert len(set(got)) == 1 and got[0] != tokens["access_token"]
            assert a.refreshes + b.refreshes == 1

            # bob has nothing, and never alice's
            assert await b.token("bob", "idp") is None

            # revoked through the other replica: gone here, and the refresh token dead at the provider
            row = await one.connections.get_connection("alice", "idp")
            assert row is not None
            held = a._open(row)
            assert await b.revoke("alice", "idp") is True
            assert await a.token("alice", "idp") is None and await a.list("alice") == []
            assert await b.revoke("alice", "idp") is False
            creds = await a.remote.credentials(a.providers["idp"], endpoint.server)
            old = authorization.Tokens(held["access_token"], endpoint.server.issuer, (), held["refresh_token"])
            with pytest.raises(OutboundAuthError) as refused:
                await authorization.refresh(endpoint.server, creds, old, None, a.remote.post_form)
            assert refused.value.error == "invalid_grant"
        finally:
            await a.aclose()
            await b.aclose()
            await one.close()
            await two.close()


@pytest.mark.requirement(req.ISSUE15_CONNECTIONS_SURVIVE_RESTART)
async def test_a_restart_keeps_connections_and_the_registration(provider: OidcProvider, tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}"

    async def opened() -> tuple[Stores, ConnectionBroker]:
        stores = sql_stores(database_url)
        await stores.open()
        return stores, _broker(stores, provider)

    stores, broker = await opened()
    try:
        await connect(broker, "alice", "alice-at-idp")
        issuer = (await broker.remote.endpoint(broker.providers["idp"])).server.issuer
        first = await stores.connections.get_remote_client(issuer)
        token = await broker.token("alice", "idp")
    finally:
        await broker.aclose()
        await stores.close()
    stores, broker = await opened()  # a new process: nothing cached
    try:
        assert await broker.token("alice", "idp") == token  # valid beyond the margin: no refresh
        assert await stores.connections.get_remote_client(issuer) == first
        await connect(broker, "bob", "bob-at-idp")  # a second user, on the same registration
        assert await stores.connections.get_remote_client(issuer) == first
        assert {c.user_id for c in await broker.list()} == {"alice", "bob"}
        assert await broker.token("bob", "idp") not in (None, token)
    finally:
        await broker.aclose()
        await stores.close()


async def test_step_up_asks_for_the_union_of_scopes(provider: OidcProvider, tmp_path: Path) -> None:
    stores = sql_stores(f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}")
    await stores.open()
    broker = _broker(stores, provider)
    try:
        await connect(broker, "alice", "alice-at-idp")
        assert await broker.require("alice", "client-1", "idp", ("openid",))  # held: the token
        with pytest.raises(ConnectionRequired) as asked:
            await broker.require("alice", "client-1", "idp", ("email",))
        assert set(asked.value.scopes) >= {"openid", "profile", "email"}
        link = await stores.connections.get_connect_request(asked.value.elicitation_id)
        assert link is not None and link.user_id == "alice" and link.client_id == "client-1"
        # what a tool or an upstream's signal asks is bounded: RFC 6749 scope tokens, at most 50
        asked_much = ("bad scope", "x" * 129, *(f"s{i}" for i in range(100)))
        with pytest.raises(ConnectionRequired) as asked:
            await broker.require("alice", "client-1" * 1000, "idp", asked_much)
        link = await stores.connections.get_connect_request(asked.value.elicitation_id)
        assert link is not None and len(link.scopes) == 50 and "bad scope" not in link.scopes
        assert len(link.client_id) == 2048
    finally:
        await broker.aclose()
        await stores.close()
