"""Contract: the ConnectionStore (authgate.connections) on each backend — the version CAS that
makes one refresh per (user, provider) across replicas, a registration kept once per issuer
when two replicas race, and a connect link's state taken once."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from authgate.store.bundle import Stores
from authgate.store.models import ConnectRequest, RemoteClient, StoredConnection

from .conftest import NOW, Build, StoresFactory


def _row(user: str = "alice", provider: str = "github", sealed: bytes = b"\x01sealed") -> StoredConnection:
    return StoredConnection(user, provider, "https://as.example", sealed, ("repo",), NOW + 600, NOW, NOW)


async def test_one_compare_and_swap_wins_and_every_write_moves_the_version(
    stores: Stores, open_stores: StoresFactory
) -> None:
    replica = await open_stores()
    first = await stores.connections.put_connection(_row())
    assert first.version == 1
    seen = await replica.connections.get_connection("alice", "github")
    assert seen == first and seen.scopes == ("repo",)
    claims = [replace(first, renewing_until=NOW + 30), replace(first, renewing_until=NOW + 31)]
    won = await asyncio.gather(
        stores.connections.swap_connection(claims[0], 1), replica.connections.swap_connection(claims[1], 1)
    )
    assert sum(w is not None for w in won) == 1  # exactly one replica claims the refresh
    assert await stores.connections.swap_connection(replace(first, sealed_tokens=b"x"), 1) is None  # stale
    again = await stores.connections.put_connection(replace(_row(sealed=b"\x01new"), created_at=NOW + 5))
    assert again.version == 3 and again.created_at == NOW and again.renewing_until == 0.0  # reconnect
    assert not await stores.connections.delete_connection("alice", "github", version=2)
    assert await replica.connections.delete_connection("alice", "github", version=3)
    assert await stores.connections.get_connection("alice", "github") is None


async def test_listing_is_per_user_or_everyone(stores: Stores) -> None:
    for user, provider in (("bob", "github"), ("alice", "jira"), ("alice", "github")):
        await stores.connections.put_connection(_row(user, provider))
    assert [(c.user_id, c.provider) for c in await stores.connections.list_connections("alice")] == [
        ("alice", "github"),
        ("alice", "jira"),
    ]
    assert len(await stores.connections.list_connections()) == 3


async def test_two_replicas_registering_at_one_issuer_keep_the_first(
    stores: Stores, open_stores: StoresFactory
) -> None:
    replica = await open_stores()
    ours = RemoteClient("https://as.example", "client-a", b"\x01s", "client_secret_basic", "dcr", "https://a/cb", NOW)
    theirs = replace(ours, client_id="client-b")
    kept = await asyncio.gather(
        stores.connections.add_remote_client(ours), replica.connections.add_remote_client(theirs)
    )
    assert kept[0] == kept[1]  # both told the one stored
    assert await replica.connections.get_remote_client("https://as.example") == kept[0]
    moved = await stores.connections.add_remote_client(replace(ours, client_id="client-c"), replace=True)
    assert moved.client_id == "client-c"


async def test_a_links_state_is_taken_once_and_not_after_expiry(stores: Stores, open_stores: StoresFactory) -> None:
    replica = await open_stores()
    link = ConnectRequest("e" * 22, "alice", "client-1", "github", ("repo",), NOW, NOW + 900)
    await stores.connections.add_connect_request(link)
    assert await stores.connections.open_connect_request(link.elicitation_id, "h1", "sess", b"\x01p")
    assert await stores.connections.open_connect_request(link.elicitation_id, "h2", "sess", b"\x01q")  # reopened
    assert await stores.connections.take_connect_request("h1", NOW) is None  # the earlier state failed
    taken = await asyncio.gather(
        stores.connections.take_connect_request("h2", NOW), replica.connections.take_connect_request("h2", NOW)
    )
    assert sum(t is not None for t in taken) == 1
    winner = next(t for t in taken if t is not None)
    assert winner.user_id == "alice" and winner.sealed_pending == b"\x01q" and winner.session_hash == "sess"
    done = await stores.connections.get_connect_request(link.elicitation_id)
    assert done is not None and done.completed_at == NOW and done.state_hash is None
    assert not await stores.connections.open_connect_request(link.elicitation_id, "h3", "sess", b"\x01r")
    late = ConnectRequest("f" * 22, "alice", "client-1", "github", (), NOW, NOW + 10)
    await stores.connections.add_connect_request(late)
    await stores.connections.open_connect_request(late.elicitation_id, "h4", "sess", b"\x01s")
    assert await stores.connections.take_connect_request("h4", NOW + 10) is None  # expired
    assert await stores.connections.purge_connect_requests(NOW + 11) == 1
    assert await stores.connections.get_connect_request(link.elicitation_id) is not None  # not expired yet


async def test_removing_a_user_removes_their_connections_and_links(stores: Stores, build: type[Build]) -> None:
    # a removed person's sealed provider tokens and open connect links are not kept behind
    for name in ("alice", "bob"):
        await stores.users.add_user(build.user(name))
    await stores.connections.put_connection(_row("uid-alice", "github"))
    await stores.connections.put_connection(_row("uid-bob", "github"))
    await stores.connections.add_connect_request(
        ConnectRequest("a" * 22, "uid-alice", "client-1", "jira", ("read",), NOW, NOW + 900)
    )
    assert await stores.users.remove_user("uid-alice", NOW)
    assert await stores.connections.get_connection("uid-alice", "github") is None
    assert await stores.connections.get_connect_request("a" * 22) is None
    assert await stores.connections.get_connection("uid-bob", "github") is not None  # another's stays
