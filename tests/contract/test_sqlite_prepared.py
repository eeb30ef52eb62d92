"""The flow's statements run from their compiled SQL text on an SQLite file
(`store/sql/sqlite_prepared.py`, issue 18) give what SQLAlchemy's own execution gives: the same
rows, values of the same types (JSON, booleans, floats, bytes), the same row counts, the same
exceptions. The contract tests run every store method on both backends; here each prepared
statement is run both ways on one database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from authgate.store.sql import engine as engines
from authgate.store.sql import grants, ratelimits, store
from authgate.store.sql import tables as t
from authgate.store.sql.sqlite_prepared import Prepared, is_prepared, prepare

NOW = 1_700_000_000.5
CLIENT = {
    "client_id": "c1",
    "metadata": {"redirect_uris": ["http://127.0.0.1/cb"], "client_name": "é ✓", "logo_uri": None},
    "created_at": NOW,
    "last_used_at": NOW,
    "client_secret_hash": None,
    "client_secret_expires_at": 0,
    "source": "dcr",
    "registration_token_hash": None,
}
USER = {"user_id": "u1", "username": "alice", "password_hash": "h", "created_at": NOW, "roles": ["admin"]}
FAMILY = {
    "family_id": "f1",
    "client_id": "c1",
    "user_id": "u1",
    "scopes": ["mcp"],
    "resources": ["http://127.0.0.1/mcp"],
    "created_at": NOW,
    "revoked_at": None,
    "revoked_reason": None,
}
CODE = {
    "code_hash": "k1",
    "client_id": "c1",
    "user_id": "u1",
    "redirect_uri": "http://127.0.0.1/cb",
    "scopes": ["mcp"],
    "resources": ["http://127.0.0.1/mcp"],
    "code_challenge": "x",
    "family_id": "f1",
    "created_at": NOW,
    "expires_at": NOW + 60,
    "auth_time": NOW,
    "consumed_at": None,
}
TOKEN = {"token_hash": "t1", "family_id": "f1", "issued_at": NOW, "expires_at": NOW + 99, "rotated_at": None}
CONSENT = {"user_id": "u1", "client_id": "c1", "scopes": ["mcp"], "resources": ["r"], "granted_at": NOW}
SELECTS: list[tuple[str, Any, dict[str, Any]]] = [
    ("client", store._GET_CLIENT, {"client_id": "c1"}),
    ("user", store._GET_USER, {"user_id": "u1"}),
    ("count", store._COUNT_CLIENTS, {}),
    ("pool", store._COUNT_POOL, {}),
    ("code", grants._GET_CODE, {"code_hash": "k1"}),
    ("family", grants._GET_FAMILY, {"family_id": "f1"}),
    ("token", grants._GET_TOKEN, {"token_hash": "t1"}),
    ("live", grants._LIVE_FAMILY, {"family_id": "f1"}),
    ("consent", grants._GET_CONSENT, {"user_id": "u1", "client_id": "c1"}),
    ("missing", store._GET_CLIENT, {"client_id": "nobody"}),
    ("hits", ratelimits._HITS, {"limiter": "l", "key_hash": "h", "window_start": 60}),
]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sa.Connection, sqlite3.Connection]]:
    """A database at head with one row of each kind; an SQLAlchemy connection and its sqlite3 one."""
    path = tmp_path / "authgate.db"
    migrated = store.SqlStore(f"sqlite+aiosqlite:///{path}")
    asyncio.run(migrated.open())
    asyncio.run(migrated.close())
    engine = sa.create_engine(f"sqlite:///{path}")  # as `sqlite_direct.DirectSqlite` connects
    sa.event.listen(engine, "connect", engines._sqlite_on_connect)
    with engine.connect() as conn:
        conn.execute(sa.insert(t.clients), CLIENT)
        conn.execute(sa.insert(t.users), USER)
        conn.execute(sa.insert(t.refresh_families), FAMILY)
        conn.execute(sa.insert(t.authorization_codes), CODE)
        conn.execute(sa.insert(t.refresh_tokens), {**TOKEN, "successor": b"\x00\xff sealed"})
        conn.execute(sa.insert(t.consents), CONSENT)
        conn.execute(sa.insert(t.rate_limits), {"limiter": "l", "key_hash": "h", "window_start": 60, "hits": 3})
        conn.commit()
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        yield conn, raw
    engine.dispose()


def _prepared(conn: sa.Connection, statement: Any, params: dict[str, Any]) -> Prepared:
    assert is_prepared(statement)
    found = prepare({}, statement, params, conn.dialect)
    assert found is not None
    return found


@pytest.mark.parametrize(("name", "statement", "params"), SELECTS, ids=[s[0] for s in SELECTS])
def test_a_prepared_read_gives_what_sqlalchemy_gives(
    db: tuple[sa.Connection, sqlite3.Connection], name: str, statement: Any, params: dict[str, Any]
) -> None:
    conn, raw = db
    expected = [dict(r) for r in conn.execute(statement, params).mappings().all()]
    got = _prepared(conn, statement, params).run(raw, params).mappings().all()
    assert got == expected
    assert [[type(v) for v in r.values()] for r in got] == [[type(v) for v in r.values()] for r in expected]
    assert _prepared(conn, statement, params).run(raw, params).scalar() == conn.scalar(statement, params)
    conn.rollback()


def test_prepared_writes_store_what_sqlalchemy_stores_and_count_the_same_rows(
    db: tuple[sa.Connection, sqlite3.Connection],
) -> None:
    conn, raw = db
    client2 = {**CLIENT, "client_id": "c2", "metadata": {"a": [1, 2.5, None, True]}}
    assert _prepared(conn, store._INSERT_CLIENT, client2).run(raw, client2).rowcount == 1
    row = conn.execute(store._GET_CLIENT, {"client_id": "c2"}).mappings().first()
    assert row is not None and row["metadata"] == {"a": [1, 2.5, None, True]} and row["consented"] is False
    marked = {"b_client_id": "c2"}
    assert _prepared(conn, grants._CONSENTED, marked).run(raw, marked).rowcount == 1
    assert _prepared(conn, grants._CONSENTED, marked).run(raw, marked).rowcount == 0  # already consented
    assert conn.scalar(sa.select(t.clients.c.consented).where(t.clients.c.client_id == "c2")) is True
    rotate = {"b_token_hash": "t1", "rotated_at": NOW + 1, "successor": b"\x01\x02"}
    assert _prepared(conn, grants._ROTATE, rotate).run(raw, rotate).rowcount == 1
    assert _prepared(conn, grants._ROTATE, rotate).run(raw, rotate).rowcount == 0  # the conditional UPDATE lost
    token = conn.execute(grants._GET_TOKEN, {"token_hash": "t1"}).mappings().first()
    assert token is not None and token["successor"] == b"\x01\x02" and token["rotated_at"] == NOW + 1
    evict = {"keep": 0}
    assert _prepared(conn, store._EVICT_FROM_POOL, evict).run(raw, evict).rowcount == 1  # c1: not consented
    conn.rollback()


def test_a_prepared_upsert_returns_its_row_like_sqlalchemy(db: tuple[sa.Connection, sqlite3.Connection]) -> None:
    conn, raw = db
    limits = ratelimits.SqlRateLimits(store.SqlStore(str(conn.engine.url)), "l", 10)
    hit = {"limiter": "l", "key_hash": "h", "window_start": 60, "hits": 1, "cap": 10}
    result = _prepared(conn, limits._count, hit).run(raw, hit)
    assert result.first() == (4,)
    refused = {**hit, "cap": 4}
    assert _prepared(conn, limits._count, refused).run(raw, refused).first() is None  # no row back: refused
    assert conn.scalar(ratelimits._HITS, {"limiter": "l", "key_hash": "h", "window_start": 60}) == 4
    conn.rollback()


def test_a_prepared_statement_fails_as_sqlalchemy_would(db: tuple[sa.Connection, sqlite3.Connection]) -> None:
    conn, raw = db
    with pytest.raises(sa.exc.IntegrityError) as caught:
        _prepared(conn, store._INSERT_CLIENT, CLIENT).run(raw, CLIENT)  # the primary key is taken
    assert isinstance(caught.value.orig, sqlite3.IntegrityError)
    with pytest.raises(sa.exc.ArgumentError, match="client_id"):
        _prepared(conn, store._GET_CLIENT, {}).run(raw, {})
    conn.rollback()
