"""Contract: the pool of unverified clients (DCR clients no user has consented to) is bounded
by evicting its oldest, and `max_clients` counts only the clients outside it."""

from __future__ import annotations

import asyncio
import dataclasses

from authgate.store.models import Client, Consent
from authgate.store.sql import SqlStore

from .conftest import NOW, Build


def _dcr(build: type[Build], client_id: str, age: float, **kw: float) -> Client:
    return dataclasses.replace(build.client(client_id, **kw), created_at=NOW - age)


async def _present(store: SqlStore, *ids: str) -> set[str]:
    return {c for c in ids if await store.get_client(c) is not None}


async def test_a_full_pool_drops_its_oldest_and_spares_consented_and_operator_clients(
    store: SqlStore, build: type[Build]
) -> None:
    await store.add_user(build.user("alice"))
    assert await store.add_client(build.client("op", source="operator"))
    assert await store.add_client(_dcr(build, "consented", 100), max_clients=5, unverified_pool=3)
    await store.save_consent(Consent("uid-alice", "consented", ("mcp",), (), NOW))
    for i, client_id in enumerate(["b", "c", "d", "e"]):  # registered in this order
        assert await store.add_client(_dcr(build, client_id, 60 - i), max_clients=5, unverified_pool=3)
    ids = ("op", "consented", "b", "c", "d", "e", "f")
    assert await _present(store, *ids) == {"op", "consented", "c", "d", "e"}
    # the next one evicts the oldest unverified client, never the consented one
    assert await store.add_client(_dcr(build, "f", 1), max_clients=5, unverified_pool=3)
    assert await _present(store, *ids) == {"op", "consented", "d", "e", "f"}


async def test_max_clients_counts_only_clients_outside_the_pool(store: SqlStore, build: type[Build]) -> None:
    await store.add_user(build.user("alice"))
    assert await store.add_client(build.client("op", source="operator"))
    for i in range(5):
        assert await store.add_client(_dcr(build, f"u{i}", 50 - i), max_clients=2, unverified_pool=10)
    await store.save_consent(Consent("uid-alice", "u0", ("mcp",), (), NOW))  # op + u0: the cap
    assert await store.add_client(_dcr(build, "late", 1), max_clients=2, unverified_pool=10) is False
    assert await store.get_client("late") is None
    assert await store.count_clients() == 6


async def test_the_pool_bound_holds_across_concurrent_replicas(
    store: SqlStore, replica: SqlStore, build: type[Build]
) -> None:
    results = await asyncio.gather(
        *(
            (store if i % 2 else replica).add_client(
                _dcr(build, f"c{i:02}", 100 - i), max_clients=100, unverified_pool=5
            )
            for i in range(12)
        )
    )
    assert all(results)
    assert await store.count_clients() == 5


async def test_prune_unverified_clients_removes_only_idle_unconsented_dcr_clients(
    store: SqlStore, build: type[Build]
) -> None:
    await store.add_user(build.user("alice"))
    old, cutoff = NOW - 1000, NOW - 500
    for client_id in ("idle-1", "idle-2", "consented"):
        await store.add_client(build.client(client_id, last_used_at=old))
    await store.add_client(build.client("recent", last_used_at=NOW))
    await store.add_client(build.client("op", source="operator", last_used_at=old))
    await store.save_consent(Consent("uid-alice", "consented", ("mcp",), (), NOW))
    assert await store.prune_unverified_clients(unused_since=cutoff) == 2
    assert await _present(store, "idle-1", "idle-2", "consented", "recent", "op") == {"consented", "recent", "op"}


async def test_a_client_whose_only_consenting_user_is_removed_is_back_in_the_pool(
    store: SqlStore, build: type[Build]
) -> None:
    """`consented` is kept with the consents (store.py `_unverified`): removing the user whose
    consent verified a client puts it back in the pool, another user's consent keeps it out."""
    for name in ("alice", "bob"):
        await store.add_user(build.user(name))
    for client_id in ("shared", "alices"):
        assert await store.add_client(_dcr(build, client_id, 10), max_clients=2, unverified_pool=10)
    await store.save_consent(Consent("uid-alice", "shared", ("mcp",), (), NOW))
    await store.save_consent(Consent("uid-bob", "shared", ("mcp",), (), NOW))
    await store.save_consent(Consent("uid-alice", "alices", ("mcp",), (), NOW))
    assert await store.add_client(_dcr(build, "late", 1), max_clients=2, unverified_pool=10) is False  # the cap
    assert await store.remove_user("uid-alice", NOW)
    assert await store.add_client(_dcr(build, "late", 1), max_clients=2, unverified_pool=10)  # "alices" left it
    assert await store.prune_unverified_clients(unused_since=NOW + 1) == 2  # "alices" and "late"
    assert await _present(store, "shared", "alices", "late") == {"shared"}
