"""Contract: the gateway's MCP session bindings in the database (SqlSessionBindings) on each
backend — first binding wins, idle expiry, stream leases, replicas sharing bindings, the bind
race, hashing at rest, purging, and the cache and write throttle that keep lookups cheap."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from authgate.errors import StoreError
from authgate.store.models import Owner
from authgate.store.sql import SqlStore
from authgate.store.sql.sessions import SqlSessionBindings
from authgate.store.sql.tables import session_bindings

from .conftest import NOW

ALICE = Owner("sub-alice", "https://claude.ai/oauth/mcp-client.json")
BOB = Owner("sub-bob", "client-bob")
IDLE = 100.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


Make = Callable[..., SqlSessionBindings]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make(clock: Clock) -> AsyncIterator[Make]:
    """SqlSessionBindings on a given store, idle_ttl = IDLE, on the test's clock."""
    made: list[SqlSessionBindings] = []

    def factory(store: SqlStore, **kw: Any) -> SqlSessionBindings:
        bindings = SqlSessionBindings(store, **{"idle_ttl": IDLE, "clock": clock, **kw})
        made.append(bindings)
        return bindings

    yield factory
    for bindings in made:
        await bindings.close()


async def _rows(store: SqlStore) -> list[dict[str, Any]]:
    async with store._tx(write=False) as conn:
        return [dict(r) for r in (await conn.execute(sa.select(session_bindings))).mappings().all()]


async def _row(store: SqlStore, session_id: str) -> dict[str, Any]:
    digest = hashlib.sha256(session_id.encode()).hexdigest()
    (row,) = [r for r in await _rows(store) if r["session_hash"] == digest]
    return row


async def test_bind_owner_and_drop(store: SqlStore, make: Make) -> None:
    bindings = make(store)
    assert await bindings.owner("sid-1") is None
    assert await bindings.bind("sid-1", ALICE) == ALICE
    assert await bindings.owner("sid-1") == ALICE
    await bindings.drop("sid-1")
    assert await bindings.owner("sid-1") is None
    assert await _rows(store) == []
    assert await bindings.bind("sid-1", BOB) == BOB  # a dropped id is free again


async def test_the_first_binding_wins_and_is_returned_to_later_binders(
    store: SqlStore, replica: SqlStore, make: Make
) -> None:
    here, there = make(store), make(replica)
    assert await here.bind("sid-1", ALICE) == ALICE
    assert await here.bind("sid-1", BOB) == ALICE
    assert await there.bind("sid-1", BOB) == ALICE
    assert await there.owner("sid-1") == ALICE
    assert len(await _rows(store)) == 1


async def test_an_idle_binding_expires_after_idle_ttl(store: SqlStore, make: Make, clock: Clock) -> None:
    bindings = make(store)
    await bindings.bind("sid-1", ALICE)
    clock.now += 60
    assert await bindings.owner("sid-1") == ALICE  # a use restarts the idle clock
    clock.now += IDLE - 1
    assert await bindings.owner("sid-1") == ALICE
    clock.now += IDLE + 1
    assert await bindings.owner("sid-1") is None
    assert await _rows(store) == []  # the expired binding met on lookup is deleted
    assert await bindings.bind("sid-1", BOB) == BOB


async def test_an_expired_binding_gives_way_to_a_new_bind(store: SqlStore, make: Make, clock: Clock) -> None:
    bindings = make(store)
    await bindings.bind("sid-1", ALICE)
    clock.now += IDLE + 1
    assert await bindings.bind("sid-1", BOB) == BOB


async def test_an_open_stream_keeps_its_session_alive_on_every_replica(
    store: SqlStore, replica: SqlStore, make: Make, clock: Clock
) -> None:
    here, there = make(store, lease_ttl=30), make(replica, lease_ttl=30)
    await here.bind("sid-1", ALICE)
    await here.hold("sid-1")
    for _ in range(10):  # 200 s with the stream open; the renewer renews every lease_ttl / 3
        clock.now += 20
        await here.renew_leases()
    assert await there.owner("sid-1") == ALICE
    await here.release("sid-1")
    clock.now += IDLE - 1
    assert await there.owner("sid-1") == ALICE  # idle since the stream closed
    clock.now += IDLE + 1
    assert await there.owner("sid-1") is None


async def test_a_lease_that_is_not_renewed_runs_out(
    store: SqlStore, replica: SqlStore, make: Make, clock: Clock
) -> None:
    here, there = make(store, lease_ttl=60), make(replica)
    await here.bind("sid-1", ALICE)
    await here.hold("sid-1")  # held until +60
    clock.now += 50
    await here.renew_leases()  # held until +110
    await here.close()  # the replica dies with the stream open: nobody renews
    assert await there.purge_expired(NOW + IDLE + 5) == 0  # idle, but the lease still runs
    clock.now = NOW + 111
    assert await there.owner("sid-1") is None
    assert await _rows(store) == []


async def test_the_renewer_extends_leases_only_while_a_stream_is_open(
    store: SqlStore, make: Make, clock: Clock
) -> None:
    bindings = make(store, lease_ttl=0.3)  # renews every 0.1 s of real time
    await bindings.bind("sid-1", ALICE)
    await bindings.hold("sid-1")
    clock.now += 10
    deadline = time.monotonic() + 10
    while (await _row(store, "sid-1"))["held_until"] != pytest.approx(NOW + 10.3):
        assert time.monotonic() < deadline, "the lease was not renewed in 10 s"
        await asyncio.sleep(0.05)
    await bindings.release("sid-1")
    clock.now += 10
    await asyncio.sleep(0.5)
    assert (await _row(store, "sid-1"))["held_until"] == pytest.approx(NOW + 10.3)


async def test_replicas_see_each_others_bindings_and_drops(
    store: SqlStore, replica: SqlStore, make: Make, clock: Clock
) -> None:
    here, uncached, cached = make(store), make(replica, cache_ttl=0), make(replica, cache_ttl=5)
    await here.bind("sid-1", ALICE)
    assert await uncached.owner("sid-1") == ALICE
    assert await cached.owner("sid-1") == ALICE
    await here.drop("sid-1")
    assert await uncached.owner("sid-1") is None
    assert await cached.owner("sid-1") == ALICE  # the owner's own session, at most cache_ttl longer
    clock.now += 5
    assert await cached.owner("sid-1") is None


async def test_concurrent_binds_on_two_replicas_have_exactly_one_winner(
    store: SqlStore, replica: SqlStore, make: Make
) -> None:
    here, there = make(store), make(replica)
    for i in range(20):
        won_here, won_there = await asyncio.gather(here.bind(f"race-{i}", ALICE), there.bind(f"race-{i}", BOB))
        assert won_here == won_there and won_here in (ALICE, BOB)
        assert await here.owner(f"race-{i}") == await there.owner(f"race-{i}") == won_here
    assert len(await _rows(store)) == 20


async def test_session_ids_are_stored_only_as_their_sha256(store: SqlStore, make: Make) -> None:
    session_id = "d3c1f0a2-6b7e-4c1e-9f3a-secret-session-id"
    await make(store).bind(session_id, ALICE)
    (row,) = await _rows(store)
    assert row["session_hash"] == hashlib.sha256(session_id.encode()).hexdigest()
    assert not any(session_id in str(value) for value in row.values())
    assert (row["subject"], row["client_id"]) == (ALICE.subject, ALICE.client_id)
    assert row["created_at"] == row["last_seen"] == NOW


async def test_purge_expired_removes_only_expired_bindings(store: SqlStore, make: Make, clock: Clock) -> None:
    bindings = make(store, lease_ttl=200)
    for session_id in ("idle", "held"):
        await bindings.bind(session_id, ALICE)
    await bindings.hold("held")  # leased until +200
    clock.now += IDLE + 50
    await bindings.bind("fresh", BOB)
    assert await bindings.purge_expired() == 1
    survivors = {r["session_hash"] for r in await _rows(store)}
    assert survivors == {hashlib.sha256(s.encode()).hexdigest() for s in ("held", "fresh")}
    assert await bindings.purge_expired(NOW + 201) == 1  # the lease ran out; "fresh" is 51 s idle
    assert await bindings.purge_expired(NOW + 251) == 1
    assert await _rows(store) == []


async def test_last_seen_is_written_at_most_once_per_touch_interval(store: SqlStore, make: Make, clock: Clock) -> None:
    bindings = make(store, cache_ttl=0)
    assert bindings.touch_interval == IDLE / 10
    await bindings.bind("sid-1", ALICE)
    clock.now += 5
    assert await bindings.owner("sid-1") == ALICE
    assert (await _row(store, "sid-1"))["last_seen"] == NOW
    clock.now += 6
    assert await bindings.owner("sid-1") == ALICE
    assert (await _row(store, "sid-1"))["last_seen"] == NOW + 11


async def test_a_hot_session_is_answered_from_the_cache_and_only_for_cache_ttl(
    store: SqlStore, make: Make, clock: Clock
) -> None:
    bindings = make(store, cache_ttl=5)
    await bindings.bind("sid-1", ALICE)
    await store.close()  # from here on, any query fails
    clock.now += 4.9
    assert await bindings.owner("sid-1") == ALICE
    clock.now += 0.1
    with pytest.raises(StoreError, match="not open"):
        await bindings.owner("sid-1")


async def test_the_cache_is_bounded_and_never_holds_unknown_ids(store: SqlStore, make: Make) -> None:
    bindings = make(store, cache_size=2)
    for i in range(3):
        await bindings.bind(f"sid-{i}", ALICE)
    assert await bindings.owner("unknown") is None
    await store.close()
    assert await bindings.owner("sid-2") == await bindings.owner("sid-1") == ALICE
    for uncached in ("sid-0", "unknown"):
        with pytest.raises(StoreError, match="not open"):
            await bindings.owner(uncached)


async def test_hold_and_release_of_an_unbound_id_do_nothing(store: SqlStore, make: Make) -> None:
    bindings = make(store)
    await bindings.hold("nobody")
    await bindings.release("nobody")
    await bindings.release("nobody")
    assert await bindings.owner("nobody") is None
    assert await _rows(store) == []


async def test_a_stream_survives_a_database_failure_in_hold_and_release(
    store: SqlStore, make: Make, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    bindings = make(store)
    await bindings.bind("sid-1", ALICE)
    await store.close()  # the lease and the touch below both fail
    await bindings.hold("sid-1")
    clock.now += IDLE / 10
    await bindings.release("sid-1")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "could not lease an MCP session for its stream (retrying)",
        "could not record the end of an MCP session's stream",
    ]


@pytest.mark.parametrize("settings", [{"idle_ttl": 0}, {"lease_ttl": -1}, {"cache_ttl": -1}, {"cache_size": -1}])
async def test_nonsense_settings_are_refused(store: SqlStore, settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        SqlSessionBindings(store, **settings)  # type: ignore[arg-type]
