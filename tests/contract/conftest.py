"""Fixtures running every contract test against each backend: SQLite and PostgreSQL, over
the `Stores` bundle the backend builds (`sql_stores`), as `authgate serve` opens it.

Each test gets its own empty database: a file under `tmp_path`, or a freshly created
PostgreSQL database (`authgate_test_<random>`) dropped at teardown (tests/support/pg.py:
$AUTHGATE_TEST_POSTGRES_URL; when it is unreachable the postgres cases are skipped, or failed
when CI=true so that CI never passes by skipping).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from authgate.store.bundle import Stores
from authgate.store.models import (
    AuthorizationCode,
    Client,
    ClientSource,
    RefreshFamily,
    RefreshToken,
    SigningKey,
    User,
)
from authgate.store.sql import SqlStore, sql_stores
from support.pg import fresh_database

NOW = 1_700_000_000.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """The URL of a new, empty database (no schema) on the backend under test."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the store must create it.
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'authgate.db'}"
        return
    async with fresh_database() as url:
        yield url.render_as_string(hide_password=False)


StoresFactory = Callable[..., Awaitable[Stores]]
StoreFactory = Callable[..., Awaitable[SqlStore]]


@pytest.fixture
async def open_stores(database_url: str) -> AsyncIterator[StoresFactory]:
    """Opens bundles on the test's database (one per replica); closes them all after."""
    opened: list[Stores] = []

    async def factory(*, migrate: bool = True) -> Stores:
        stores = sql_stores(database_url, migrate=migrate)
        opened.append(stores)
        await stores.open()
        return stores

    yield factory
    for stores in opened:
        await stores.close()


@pytest.fixture
async def stores(open_stores: StoresFactory) -> Stores:
    return await open_stores()


@pytest.fixture
def open_store(open_stores: StoresFactory) -> StoreFactory:
    """The core store of a new bundle: SQL companions (limits, bindings) are built on it, and
    some tests read its tables."""

    async def factory(*, migrate: bool = True) -> SqlStore:
        return cast(SqlStore, (await open_stores(migrate=migrate)).core)

    return factory


@pytest.fixture
async def store(stores: Stores) -> SqlStore:
    return cast(SqlStore, stores.core)


@pytest.fixture
async def replica(store: SqlStore, open_store: StoreFactory) -> SqlStore:
    """A second SqlStore on the same database, as a second authgate replica would have."""
    return await open_store()


class Build:
    """Model values with sensible defaults; override only what a test is about."""

    @staticmethod
    def client(
        client_id: str = "client-1", *, source: ClientSource = "dcr", last_used_at: float = NOW, **kw: Any
    ) -> Client:
        metadata = {"redirect_uris": ["https://app.example/cb"], "client_name": client_id}
        return Client(
            client_id=client_id, metadata=metadata, created_at=NOW - 10, last_used_at=last_used_at, source=source, **kw
        )

    @staticmethod
    def user(username: str = "alice", *, user_id: str | None = None) -> User:
        return User(
            user_id=user_id or f"uid-{username}",
            username=username,
            password_hash=f"$argon2id$fake${username}",
            created_at=NOW,
        )

    @staticmethod
    def code(code_hash: str = "code-hash-1", **kw: Any) -> AuthorizationCode:
        values: dict[str, Any] = dict(
            client_id="client-1",
            user_id="uid-alice",
            redirect_uri="https://app.example/cb",
            scopes=("mcp:read", "mcp:write"),
            resources=("https://mcp.example/mcp",),
            code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            family_id="family-1",
            created_at=NOW,
            expires_at=NOW + 60,
            auth_time=NOW - 5,
        )
        values.update(kw)
        return AuthorizationCode(code_hash=code_hash, **values)

    @staticmethod
    def family(
        family_id: str = "family-1", *, client_id: str = "client-1", user_id: str = "uid-alice"
    ) -> RefreshFamily:
        return RefreshFamily(
            family_id=family_id,
            client_id=client_id,
            user_id=user_id,
            scopes=("mcp:read",),
            resources=("https://mcp.example/mcp",),
            created_at=NOW,
        )

    @staticmethod
    def token(
        token_hash: str = "rt-hash-1", *, family_id: str = "family-1", expires_at: float = NOW + 3600
    ) -> RefreshToken:
        return RefreshToken(token_hash=token_hash, family_id=family_id, issued_at=NOW, expires_at=expires_at)

    @staticmethod
    def key(kid: str = "key-1", *, created_at: float = NOW) -> SigningKey:
        return SigningKey(
            kid=kid,
            alg="ES256",
            state="next",
            public_jwk={"kty": "EC", "crv": "P-256", "kid": kid, "x": "x", "y": "y"},
            private_jwk_encrypted=b"\x00\xffsealed" + kid.encode(),
            created_at=created_at,
        )


@pytest.fixture
def build() -> type[Build]:
    return Build
