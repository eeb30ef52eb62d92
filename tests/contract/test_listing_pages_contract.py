"""Contract: clients and users are read a page at a time, newest first in a stable order, and a
page of clients' live grants is counted by the database — on SQLite and PostgreSQL. The admin
page and `authgate clients list` / `users list` read no more than that (registration is open:
the clients table can hold tens of thousands of rows)."""

from __future__ import annotations

import dataclasses

import pytest

from authgate.store.sql import SqlStore
from support import requirements as req

from .conftest import NOW, Build
from .test_live_grants_contract import CIMD_ID, populated  # noqa: F401 (a fixture)

pytestmark = pytest.mark.requirement(req.ISSUE13_LISTINGS_READ_ONE_PAGE)


async def test_clients_are_paged_newest_first_ties_by_id(store: SqlStore, build: type[Build]) -> None:
    # three share a creation time: their order is the id's, descending, on every backend
    for i, client_id in enumerate(["c-0", "c-1", "c-2", "c-3", "c-4", "c-5", "c-6"]):
        at = NOW + min(i, 4)
        await store.add_client(dataclasses.replace(build.client(client_id), created_at=at))
    newest_first = ["c-6", "c-5", "c-4", "c-3", "c-2", "c-1", "c-0"]
    assert [c.client_id for c in await store.list_clients()] == newest_first
    pages = [await store.list_clients(limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [[c.client_id for c in page] for page in pages] == [newest_first[0:3], newest_first[3:6], ["c-0"], []]
    assert pages[0][0] == await store.get_client("c-6")
    assert await store.list_clients(limit=0) == []


async def test_clients_are_paged_and_counted_by_source(store: SqlStore, build: type[Build]) -> None:
    for i in range(5):
        source = "operator" if i % 2 else "dcr"
        await store.add_client(dataclasses.replace(build.client(f"c-{i}", source=source), created_at=NOW + i))
    assert await store.count_clients() == 5
    assert await store.count_clients(source="dcr") == 3 and await store.count_clients(source="cimd") == 0
    page = await store.list_clients(limit=2, offset=1, source="dcr")
    assert [c.client_id for c in page] == ["c-2", "c-0"]


async def test_users_are_paged_newest_first_ties_by_id(store: SqlStore, build: type[Build]) -> None:
    for i, name in enumerate(["dora", "carl", "bea", "al"]):
        user = build.user(name)
        await store.add_user(dataclasses.replace(user, created_at=NOW + (i if i < 2 else 2)))
    # bea and al were made at the same time: uid-bea sorts after uid-al, so comes first
    assert [u.username for u in await store.list_users()] == ["bea", "al", "carl", "dora"]
    assert [u.username for u in await store.list_users(limit=2, offset=1)] == ["al", "carl"]
    assert [u.username for u in await store.list_users(limit=5, offset=3)] == ["dora"]
    assert await store.count_users() == 4


async def test_live_grants_are_counted_for_the_clients_asked_only(populated: SqlStore) -> None:  # noqa: F811
    # dcr-1: alice's and bob's grants; dcr-2: one expired, one revoked, a code not redeemed
    counts = await populated.count_live_grants(["dcr-1", "dcr-2", CIMD_ID, "unknown"], now=NOW + 60)
    assert counts == {"dcr-1": 2, CIMD_ID: 1}
    assert await populated.count_live_grants(["dcr-2"], now=NOW + 60) == {}
    assert await populated.count_live_grants([], now=NOW) == {}
    # the same grants `list_live_grants` lists
    listed = await populated.list_live_grants(client_id="dcr-1", now=NOW + 60)
    assert len(listed) == counts["dcr-1"]
    await populated.revoke_family("f-bob-1", "test", NOW + 70)
    assert await populated.count_live_grants(["dcr-1"], now=NOW + 80) == {"dcr-1": 1}
