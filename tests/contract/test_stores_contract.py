"""Contract: the `Stores` bundle on each backend, through its Protocols only — the views of
the core store share one database, upstream tokens keep their local user, limiters and known
addresses made by the bundle are shared by replicas, and the bundle purges and closes every
store it holds. (Each store's own behaviour has its file beside this one.)"""

from __future__ import annotations

import pytest

from authgate.errors import StoreError
from authgate.store.bundle import Stores
from authgate.store.models import Owner, UpstreamTokens

from .conftest import NOW, Build, StoresFactory

SECRET = b"s" * 32
ALICE = Owner("sub-alice", "client-1")


@pytest.fixture
async def replica(open_stores: StoresFactory) -> Stores:
    """A second bundle on the same database, as a second authgate replica opens it."""
    return await open_stores()


async def test_the_core_views_share_one_database(stores: Stores, replica: Stores, build: type[Build]) -> None:
    await stores.clients.add_client(build.client())
    await stores.users.add_user(build.user())
    await stores.grants.create_family(build.family(), build.token())
    await stores.keys.add_key(build.key())
    assert await replica.grants.family_is_live("family-1")
    assert [k.kid for k in await replica.keys.list_keys()] == ["key-1"]
    assert await stores.clients.delete_client("client-1")
    assert not await replica.grants.family_is_live("family-1")  # the grant went with its client


async def test_upstream_tokens_round_trip_and_keep_their_local_user(stores: Stores, replica: Stores) -> None:
    first = UpstreamTokens("iss|alice", "oidc", "alice", "a@x.test", b"sealed-1", NOW)
    await stores.upstream_tokens.save_upstream(first)
    assert await replica.upstream_tokens.get_upstream("iss|alice") == first
    user = await replica.users.get_user("iss|alice")
    assert user is not None and user.username == "alice" and user.password_hash == "!"  # no password
    second = UpstreamTokens("iss|alice", "oidc", "alice2", None, b"sealed-2", NOW + 1)
    await replica.upstream_tokens.save_upstream(second)  # replaced, user renamed
    assert await stores.upstream_tokens.get_upstream("iss|alice") == second
    assert [u.username for u in await stores.users.list_users()] == ["alice2"]
    assert await stores.upstream_tokens.get_upstream("iss|nobody") is None


async def test_upstream_tokens_swap_only_from_what_the_writer_read(stores: Stores, replica: Stores) -> None:
    """The compare-and-swap behind one upstream refresh per user across replicas (vault.py)."""
    first = UpstreamTokens("iss|alice", "oidc", "alice", None, b"sealed-1", NOW)
    assert not await stores.upstream_tokens.swap_upstream(first, b"sealed-0")  # no record: nothing to swap
    await stores.upstream_tokens.save_upstream(first)
    claimed = UpstreamTokens("iss|alice", "oidc", "alice", None, b"claimed-a", NOW + 1)
    assert await stores.upstream_tokens.swap_upstream(claimed, b"sealed-1")
    late = UpstreamTokens("iss|alice", "oidc", "alice", None, b"claimed-b", NOW + 1)
    assert not await replica.upstream_tokens.swap_upstream(late, b"sealed-1")  # the other replica lost
    assert await replica.upstream_tokens.get_upstream("iss|alice") == claimed


async def test_an_upstream_identity_whose_name_is_taken_is_named_by_its_subject(
    stores: Stores, build: type[Build]
) -> None:
    await stores.users.add_user(build.user("bob"))
    await stores.upstream_tokens.save_upstream(UpstreamTokens("github|42", "github", "bob", None, b"s", NOW))
    named = {u.user_id: u.username for u in await stores.users.list_users()}
    assert named == {"uid-bob": "bob", "github|42": "github|42"}


async def test_limiters_and_known_addresses_made_by_the_bundle_are_shared(stores: Stores, replica: Stores) -> None:
    # an hour's window: the test never straddles two (the counts are the store's, on the wall clock)
    here = stores.rate_limits.limiter("logins", 2, 3600, key_secret=SECRET)
    there = replica.rate_limits.limiter("logins", 2, 3600, key_secret=SECRET)
    assert await here.hit("alice|198.51.100.7") and await there.hit("alice|198.51.100.7")
    assert not await here.hit("alice|198.51.100.7")  # the replica's attempt counted here too
    assert await there.retry_after("alice|198.51.100.7") > 0
    await here.reset("alice|198.51.100.7")
    assert await there.retry_after("alice|198.51.100.7") == 0
    await stores.rate_limits.known_addresses(key_secret=SECRET).remember("alice|198.51.100.7")
    assert await replica.rate_limits.known_addresses(key_secret=SECRET).is_known("alice|198.51.100.7")
    other_key = replica.rate_limits.known_addresses(key_secret=b"o" * 32)
    assert not await other_key.is_known("alice|198.51.100.7")  # kept as an HMAC under the key


async def test_the_bundle_purges_what_expired_only_and_closes_every_store(stores: Stores, replica: Stores) -> None:
    assert await stores.session_bindings.bind("session-1", ALICE) == ALICE
    assert await replica.session_bindings.owner("session-1") == ALICE
    await stores.rate_limits.known_addresses(key_secret=SECRET).remember("alice|198.51.100.7")
    await stores.session_bindings.hold("session-1")  # starts the lease renewer
    purged = {what: await purge() for what, purge in stores.purges()}
    assert purged == {
        "rate-limit windows and known sign-in addresses": 0,
        "MCP session bindings": 0,
        "client assertion jtis": 0,
        "expired connect links": 0,
    }
    assert await replica.session_bindings.owner("session-1") == ALICE  # live: kept
    assert await replica.rate_limits.known_addresses(key_secret=SECRET).is_known("alice|198.51.100.7")
    await stores.close()
    with pytest.raises(StoreError, match="not open"):
        await stores.users.count_users()
    with pytest.raises(StoreError, match="not open"):
        await stores.audit.list_audit_events()
    with pytest.raises(StoreError, match="not open"):
        await stores.session_bindings.drop("session-1")
    assert await replica.session_bindings.owner("session-1") == ALICE  # the other replica's stay open
