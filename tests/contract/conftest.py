"""Fixtures running every contract test against each backend: SQLite and PostgreSQL.

Each test gets its own empty database: a file under `tmp_path`, or a freshly created
PostgreSQL database (`authgate_test_<random>`) dropped at teardown. PostgreSQL is found at
$AUTHGATE_TEST_POSTGRES_URL (default below); when it is unreachable the postgres cases are
skipped, or failed when CI=true so that CI never passes by skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from authgate.store.models import (
    AuthorizationCode,
    Client,
    ClientSource,
    RefreshFamily,
    RefreshToken,
    SigningKey,
    User,
)
from authgate.store.sql import SqlStore

PG_ADMIN_URL = os.environ.get(
    "AUTHGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
PG_START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"

NOW = 1_700_000_000.0

_pg_unreachable: list[str] = []  # remembered so each test does not wait on the timeout again


def _asyncpg_dsn(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin() -> asyncpg.Connection:
    admin_url = sa.make_url(PG_ADMIN_URL)
    if not _pg_unreachable:
        try:
            return await asyncpg.connect(_asyncpg_dsn(admin_url), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            _pg_unreachable.append(f"{type(exc).__name__}: {exc}")
    message = (
        f"PostgreSQL is not reachable at {admin_url.render_as_string()} "
        f"({_pg_unreachable[0]}). Start it with: {PG_START_HINT} "
        "(or point AUTHGATE_TEST_POSTGRES_URL at a server)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """The URL of a new, empty database (no schema) on the backend under test."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the store must create it.
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'authgate.db'}"
        return
    admin = await _pg_admin()
    name = f"authgate_test_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a test that failed half-way may have left connections open.
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


StoreFactory = Callable[..., Awaitable[SqlStore]]


@pytest.fixture
async def open_store(database_url: str) -> AsyncIterator[StoreFactory]:
    """Opens extra stores on the test's database (another replica); closes them all after."""
    opened: list[SqlStore] = []

    async def factory(*, migrate: bool = True) -> SqlStore:
        store = SqlStore(database_url, migrate=migrate)
        opened.append(store)
        await store.open()
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: StoreFactory) -> SqlStore:
    return await open_store()


@pytest.fixture
async def replica(store: SqlStore, open_store: StoreFactory) -> SqlStore:
    """A second SqlStore on the same database, as a second authgate replica would have."""
    return await open_store()


class Build:
    """Model values with sensible defaults; override only what a test is about."""

    @staticmethod
    def client(client_id: str = "client-1", *, source: ClientSource = "dcr",
               last_used_at: float = NOW, **kw: Any) -> Client:
        metadata = {"redirect_uris": ["https://app.example/cb"], "client_name": client_id}
        return Client(client_id=client_id, metadata=metadata, created_at=NOW - 10,
                      last_used_at=last_used_at, source=source, **kw)

    @staticmethod
    def user(username: str = "alice", *, user_id: str | None = None) -> User:
        return User(user_id=user_id or f"uid-{username}", username=username,
                    password_hash=f"$argon2id$fake${username}", created_at=NOW)

    @staticmethod
    def code(code_hash: str = "code-hash-1", **kw: Any) -> AuthorizationCode:
        values: dict[str, Any] = dict(
            client_id="client-1", user_id="uid-alice", redirect_uri="https://app.example/cb",
            scopes=("mcp:read", "mcp:write"), resources=("https://mcp.example/mcp",),
            code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            family_id="family-1", created_at=NOW, expires_at=NOW + 60, auth_time=NOW - 5,
        )
        values.update(kw)
        return AuthorizationCode(code_hash=code_hash, **values)

    @staticmethod
    def family(family_id: str = "family-1", *, client_id: str = "client-1",
               user_id: str = "uid-alice") -> RefreshFamily:
        return RefreshFamily(family_id=family_id, client_id=client_id, user_id=user_id,
                             scopes=("mcp:read",), resources=("https://mcp.example/mcp",),
                             created_at=NOW)

    @staticmethod
    def token(token_hash: str = "rt-hash-1", *, family_id: str = "family-1",
              expires_at: float = NOW + 3600) -> RefreshToken:
        return RefreshToken(token_hash=token_hash, family_id=family_id, issued_at=NOW,
                            expires_at=expires_at)

    @staticmethod
    def key(kid: str = "key-1", *, created_at: float = NOW) -> SigningKey:
        return SigningKey(kid=kid, alg="ES256", state="next",
                          public_jwk={"kty": "EC", "crv": "P-256", "kid": kid, "x": "x", "y": "y"},
                          private_jwk_encrypted=b"\x00\xffsealed" + kid.encode(),
                          created_at=created_at)


@pytest.fixture
def build() -> type[Build]:
    return Build
