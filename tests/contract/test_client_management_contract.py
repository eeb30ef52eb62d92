"""Contract: RFC 7592 registration access tokens (`replace_client`: checked and rotated in one
step) and single-use assertion `jti`s (`use_jti`) shared by replicas, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from authgate.store.sql import SqlStore
from support import requirements as req

from .conftest import NOW, Build


@pytest.mark.requirement(req.RFC7592_2_2_UPDATE_REPLACES)
async def test_replace_client_needs_the_current_token_hash_and_rotates_it(
    store: SqlStore, replica: SqlStore, build: type[Build]
) -> None:
    client = build.client("c1", registration_token_hash="old", client_secret_hash="s1")
    assert await store.add_client(client)
    assert (await store.get_client("c1")).registration_token_hash == "old"  # type: ignore[union-attr]
    new = dataclasses.replace(client, metadata={"client_name": "renamed"}, registration_token_hash="new")
    assert not await replica.replace_client(new, expected_token_hash="wrong")
    assert await replica.replace_client(new, expected_token_hash="old")
    assert not await store.replace_client(new, expected_token_hash="old")  # the old token is spent
    got = await store.get_client("c1")
    assert got is not None and got.metadata == {"client_name": "renamed"}
    assert got.registration_token_hash == "new" and got.client_secret_hash == "s1"
    assert got.created_at == client.created_at and got.source == "dcr"
    assert not await store.replace_client(dataclasses.replace(new, client_id="gone"), expected_token_hash="new")


async def test_two_replicas_presenting_one_token_at_once_change_it_once(
    store: SqlStore, replica: SqlStore, build: type[Build]
) -> None:
    client = build.client("c2", registration_token_hash="t0")
    assert await store.add_client(client)
    tries = [dataclasses.replace(client, registration_token_hash=f"t{i}") for i in range(1, 7)]
    won = await asyncio.gather(
        *((store if i % 2 else replica).replace_client(c, expected_token_hash="t0") for i, c in enumerate(tries))
    )
    assert won.count(True) == 1


@pytest.mark.requirement(req.RFC7523_3_JTI_SINGLE_USE)
async def test_a_jti_is_used_once_across_replicas_until_it_expires(store: SqlStore, replica: SqlStore) -> None:
    assert await store.use_jti("client_assertion", "h1", NOW + 60, NOW)
    assert not await replica.use_jti("client_assertion", "h1", NOW + 60, NOW + 1)
    assert not await store.use_jti("client_assertion", "h1", NOW + 60, NOW + 59)
    assert await replica.use_jti("other_kind", "h1", NOW + 60, NOW)  # kinds are apart
    # past its expiry the row no longer counts (an expired assertion is refused before this)
    assert await replica.use_jti("client_assertion", "h1", NOW + 200, NOW + 61)
    results = await asyncio.gather(*(s.use_jti("client_assertion", "h2", NOW + 60, NOW) for s in [store, replica] * 4))
    assert results.count(True) == 1


async def test_purge_removes_only_expired_jtis(store: SqlStore) -> None:
    await store.use_jti("client_assertion", "a", NOW + 10, NOW)
    await store.use_jti("client_assertion", "b", NOW + 100, NOW)
    assert await store.purge_used_jtis(NOW + 50) == 1
    assert not await store.use_jti("client_assertion", "b", NOW + 100, NOW + 60)
    assert await store.use_jti("client_assertion", "a", NOW + 100, NOW + 60)
