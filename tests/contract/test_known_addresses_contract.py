"""Contract: the addresses that signed in to an account before (SqlKnownAddresses) on each
backend — shared by replicas, forgotten after `known_for`, stored only as HMACs, purged, and
answered from this process's memory when the store cannot answer."""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa

from authgate.store.sql import SqlStore
from authgate.store.sql.known_addresses import SqlKnownAddresses
from authgate.store.sql.ratelimits import StoreOutage
from authgate.store.sql.tables import rate_limits

from .conftest import NOW, StoreFactory

SECRET = b"s" * 32
KNOWN_FOR = 10 * 86400


class Clock:
    now = NOW

    def __call__(self) -> float:
        return self.now


def known(store: SqlStore, clock: Clock, outage: StoreOutage | None = None) -> SqlKnownAddresses:
    return SqlKnownAddresses(store, key_secret=SECRET, known_for=KNOWN_FOR, clock=clock, outage=outage)


async def test_an_address_remembered_on_one_replica_is_known_on_another(store: SqlStore, replica: SqlStore) -> None:
    clock = Clock()
    one, two = known(store, clock), known(replica, clock)
    assert not await two.is_known("alice|198.51.100.7")
    await one.remember("alice|198.51.100.7")
    assert await two.is_known("alice|198.51.100.7")
    assert not await two.is_known("alice|198.51.100.8") and not await two.is_known("bob|198.51.100.7")


async def test_an_address_is_forgotten_after_known_for_and_then_purged(store: SqlStore, replica: SqlStore) -> None:
    clock = Clock()
    await known(store, clock).remember("alice|198.51.100.7")
    later = Clock()
    later.now = NOW + KNOWN_FOR + 86400
    assert not await known(replica, later).is_known("alice|198.51.100.7")
    assert await known(replica, later).purge_expired() == 1
    assert await known(replica, clock).purge_expired() == 0


async def test_keys_are_stored_only_as_hmacs(store: SqlStore) -> None:
    await known(store, Clock()).remember("alice|198.51.100.7")
    async with store._tx(write=False) as conn:
        [row] = [dict(r) for r in (await conn.execute(sa.select(rate_limits))).mappings()]
    assert row["limiter"] == "known-addresses"
    assert row["key_hash"] == hmac.new(SECRET, b"alice|198.51.100.7", hashlib.sha256).hexdigest()
    assert "alice" not in repr(row) and "198.51.100.7" not in repr(row)


async def test_when_the_store_fails_this_process_answers_what_it_remembered(open_store: StoreFactory) -> None:
    store, other = await open_store(), await open_store()
    clock = Clock()
    await known(other, clock).remember("bob|203.0.113.1")  # known through another replica only
    here = known(store, clock, StoreOutage(rest=0.0))
    await here.remember("alice|198.51.100.7")
    await store.close()  # every query now fails
    assert await here.is_known("alice|198.51.100.7")  # remembered here
    assert not await here.is_known("bob|203.0.113.1")  # unknown here: never known without a sign-in
    await here.remember("carol|192.0.2.1")  # not stored, but remembered here
    assert await here.is_known("carol|192.0.2.1")
