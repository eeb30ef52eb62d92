"""Contract: clients, users, consents and signing keys behave the same on every backend."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from authgate.errors import StoreError
from authgate.store.models import CodeRedemption, Consent
from authgate.store.protocols import Store
from authgate.store.sql import SqlStore

from .conftest import NOW, Build


def test_sql_store_satisfies_the_store_protocol() -> None:
    store: Store = SqlStore("sqlite+aiosqlite:///:memory:")  # mypy checks the structure
    for name in dir(Store):
        if not name.startswith("_"):
            assert callable(getattr(store, name)), name


# -- clients ----------------------------------------------------------------------------------


async def test_client_round_trip(store: SqlStore, build: type[Build]) -> None:
    client = build.client(
        "static-1", source="static", client_secret_hash="$argon2id$secret", client_secret_expires_at=1_800_000_000
    )
    assert await store.add_client(client) is True
    assert await store.get_client("static-1") == client
    assert await store.get_client("nobody") is None
    assert await store.count_clients() == 1


async def test_adding_a_taken_client_id_raises_store_error(store: SqlStore, build: type[Build]) -> None:
    await store.add_client(build.client("c"))
    with pytest.raises(StoreError, match="client 'c' already exists"):
        await store.add_client(build.client("c"))


async def test_add_client_refuses_beyond_max_clients(store: SqlStore, build: type[Build]) -> None:
    assert await store.add_client(build.client("a"), max_clients=2)
    assert await store.add_client(build.client("b"), max_clients=2)
    assert await store.add_client(build.client("c"), max_clients=2) is False
    assert await store.get_client("c") is None
    assert await store.count_clients() == 2


async def test_client_cap_holds_across_concurrent_replicas(
    store: SqlStore, replica: SqlStore, build: type[Build]
) -> None:
    results = await asyncio.gather(
        *((store if i % 2 else replica).add_client(build.client(f"c{i}"), max_clients=5) for i in range(12))
    )
    assert sum(results) == 5
    assert await store.count_clients() == 5


async def test_list_clients_returns_every_source_newest_first(store: SqlStore, build: type[Build]) -> None:
    await store.add_client(dataclasses.replace(build.client("late", source="operator"), created_at=NOW + 5))
    await store.add_client(build.client("early"))
    listed = await store.list_clients()
    assert [(c.client_id, c.source) for c in listed] == [("late", "operator"), ("early", "dcr")]
    assert listed[0] == await store.get_client("late")


async def test_touch_client_records_last_use(store: SqlStore, build: type[Build]) -> None:
    await store.add_client(build.client("c", last_used_at=NOW))
    await store.touch_client("c", NOW + 100)
    client = await store.get_client("c")
    assert client is not None and client.last_used_at == NOW + 100


async def test_delete_client_revokes_its_families(store: SqlStore, build: type[Build]) -> None:
    await store.add_client(build.client("c"))
    await store.add_user(build.user("alice"))
    await store.create_family(build.family("f", client_id="c"), build.token("t", family_id="f"))
    assert await store.delete_client("c") is True
    assert await store.get_client("c") is None
    family = await store.get_family("f")
    assert family is not None and family.revoked_at is not None
    assert family.revoked_reason == "client deleted"
    assert await store.delete_client("c") is False


async def test_prune_clients_removes_idle_dcr_clients_only(store: SqlStore, build: type[Build]) -> None:
    old, cutoff = NOW - 1000, NOW - 500
    await store.add_user(build.user("alice"))
    for client_id in ("idle", "granted", "revoked", "expired", "recent"):
        await store.add_client(build.client(client_id, last_used_at=old))
    await store.touch_client("recent", NOW)
    await store.add_client(build.client("static", source="static", last_used_at=old))
    await store.create_family(
        build.family("f-granted", client_id="granted"), build.token("t-granted", family_id="f-granted")
    )
    await store.create_family(
        build.family("f-revoked", client_id="revoked"), build.token("t-revoked", family_id="f-revoked")
    )
    await store.revoke_family("f-revoked", "test", NOW)
    await store.create_family(
        build.family("f-expired", client_id="expired"),
        build.token("t-expired", family_id="f-expired", expires_at=NOW - 1),
    )

    assert await store.prune_clients(unused_since=cutoff, now=NOW) == 3
    remaining = {
        c
        for c in ("idle", "granted", "revoked", "expired", "recent", "static")
        if await store.get_client(c) is not None
    }
    assert remaining == {"granted", "recent", "static"}


# -- users ------------------------------------------------------------------------------------


async def test_user_round_trip(store: SqlStore, build: type[Build]) -> None:
    bob, alice = build.user("bob"), build.user("alice")
    await store.add_user(bob)
    await store.add_user(alice)
    assert await store.get_user(alice.user_id) == alice
    assert await store.get_user_by_name("bob") == bob
    assert await store.get_user("nobody") is None
    assert await store.get_user_by_name("nobody") is None
    assert await store.list_users() == [bob, alice]  # made at the same time: by user_id, descending
    assert await store.count_users() == 2


async def test_taken_username_raises_a_clear_store_error(store: SqlStore, build: type[Build]) -> None:
    await store.add_user(build.user("alice", user_id="u1"))
    with pytest.raises(StoreError, match="user 'alice' already exists"):
        await store.add_user(build.user("alice", user_id="u2"))
    assert await store.count_users() == 1


async def test_set_password(store: SqlStore, build: type[Build]) -> None:
    alice = build.user("alice")
    await store.add_user(alice)
    assert await store.set_password(alice.user_id, "$argon2id$new", NOW) is True
    assert await store.get_user(alice.user_id) == dataclasses.replace(
        alice, password_hash="$argon2id$new", session_version=1
    )
    assert await store.set_password("nobody", "$argon2id$new", NOW) is False


async def test_set_password_ends_what_the_old_password_opened(
    store: SqlStore, replica: SqlStore, build: type[Build]
) -> None:
    alice, bob = build.user("alice"), build.user("bob")
    await store.add_user(alice)
    await store.add_user(bob)
    await store.add_client(build.client("c"))
    for user, family_id in ((alice, "fa"), (bob, "fb")):
        family = build.family(family_id, client_id="c", user_id=user.user_id)
        await store.create_family(family, build.token(f"t-{family_id}", family_id=family_id))
        await store.save_code(build.code(f"code-{family_id}", user_id=user.user_id, client_id="c"))
    await store.save_code(build.code("redeemed", user_id=alice.user_id, family_id="fa2"))
    await store.consume_code("redeemed", NOW)

    assert await replica.set_password(alice.user_id, "$argon2id$new", NOW + 1) is True

    revoked = await store.get_family("fa")
    assert revoked is not None and revoked.revoked_at == NOW + 1
    assert revoked.revoked_reason == "password changed"
    assert (await store.consume_code("code-fa", NOW + 2)) == CodeRedemption(code=None)
    assert (await store.consume_code("redeemed", NOW + 2)).replayed is not None  # kept: replay detection
    changed = await store.get_user(alice.user_id)
    assert changed is not None and changed.session_version == alice.session_version + 1
    # Bob is untouched.
    assert await store.family_is_live("fb") is True
    assert (await store.consume_code("code-fb", NOW + 2)).code is not None
    assert await store.get_user(bob.user_id) == bob


async def test_roles_round_trip_and_replace(store: SqlStore, replica: SqlStore, build: type[Build]) -> None:
    alice = dataclasses.replace(build.user("alice"), roles=("admin", "ops"))
    await store.add_user(alice)
    assert await replica.get_user_by_name("alice") == alice
    assert await store.set_roles(alice.user_id, ["tools", "tools", "docs"]) is True
    assert await replica.get_user(alice.user_id) == dataclasses.replace(alice, roles=("tools", "docs"))
    assert await store.set_roles(alice.user_id, []) is True
    assert [u.roles for u in await replica.list_users()] == [()]
    assert await store.set_roles("nobody", ["admin"]) is False


async def test_remove_user_revokes_families_and_deletes_consents(store: SqlStore, build: type[Build]) -> None:
    alice, bob = build.user("alice"), build.user("bob")
    await store.add_user(alice)
    await store.add_user(bob)
    await store.add_client(build.client("c"))
    for user, family_id in ((alice, "fa"), (bob, "fb")):
        family = build.family(family_id, client_id="c", user_id=user.user_id)
        await store.create_family(family, build.token(f"t-{family_id}", family_id=family_id))
    for user in (alice, bob):
        await store.save_consent(Consent(user.user_id, "c", ("mcp:read",), (), NOW))

    assert await store.remove_user(alice.user_id, NOW + 1) is True

    assert await store.get_user(alice.user_id) is None
    assert await store.get_consent(alice.user_id, "c") is None
    revoked = await store.get_family("fa")
    assert revoked is not None and revoked.revoked_at == NOW + 1
    assert await store.family_is_live("fa") is False
    # Bob is untouched.
    assert await store.get_consent(bob.user_id, "c") is not None
    assert await store.family_is_live("fb") is True
    assert await store.remove_user(alice.user_id, NOW + 2) is False


# -- consents ---------------------------------------------------------------------------------


async def test_consent_round_trip(store: SqlStore) -> None:
    consent = Consent("u1", "https://app.example/client.json", ("b", "a"), ("https://r/",), NOW)
    await store.save_consent(consent)
    saved = await store.get_consent("u1", "https://app.example/client.json")
    assert saved == dataclasses.replace(consent, scopes=("a", "b"))
    assert await store.get_consent("u1", "other") is None
    assert await store.get_consent("u2", "https://app.example/client.json") is None


async def test_save_consent_keeps_the_union_of_grants(store: SqlStore) -> None:
    await store.save_consent(Consent("u1", "c", ("read", "write"), ("https://a/",), NOW))
    await store.save_consent(Consent("u1", "c", ("admin", "read"), ("https://b/",), NOW + 5))
    assert await store.get_consent("u1", "c") == Consent(
        "u1", "c", ("admin", "read", "write"), ("https://a/", "https://b/"), NOW + 5
    )


async def test_concurrent_consents_lose_no_scope(store: SqlStore, replica: SqlStore) -> None:
    await asyncio.gather(
        *((store if i % 2 else replica).save_consent(Consent("u1", "c", (f"s{i}",), (), NOW)) for i in range(8))
    )
    consent = await store.get_consent("u1", "c")
    assert consent is not None and consent.scopes == tuple(sorted(f"s{i}" for i in range(8)))


# -- signing keys -----------------------------------------------------------------------------


async def test_signing_key_lifecycle(store: SqlStore, build: type[Build]) -> None:
    first, second = build.key("k1", created_at=NOW), build.key("k2", created_at=NOW + 1)
    await store.add_key(second)
    await store.add_key(first)
    assert await store.list_keys() == [first, second]

    await store.set_key_state("k1", "active", NOW + 10)
    await store.set_key_state("k1", "retired", NOW + 20)
    await store.set_key_state("k2", "active", NOW + 20)
    k1, k2 = await store.list_keys()
    assert (k1.state, k1.activated_at, k1.retired_at) == ("retired", NOW + 10, NOW + 20)
    assert (k2.state, k2.activated_at, k2.retired_at) == ("active", NOW + 20, None)
    assert k1.private_jwk_encrypted == first.private_jwk_encrypted

    await store.delete_key("k1")
    assert [k.kid for k in await store.list_keys()] == ["k2"]


async def test_adding_a_taken_kid_raises_store_error(store: SqlStore, build: type[Build]) -> None:
    await store.add_key(build.key("k1"))
    with pytest.raises(StoreError, match="signing key 'k1' already exists"):
        await store.add_key(build.key("k1"))
