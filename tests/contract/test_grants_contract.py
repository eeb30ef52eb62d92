"""Contract: authorization codes and refresh token families, including races between replicas."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from authgate.store.sql import SqlStore
from support import requirements as req

from .conftest import NOW, Build

# -- authorization codes ----------------------------------------------------------------------


async def test_consumed_code_comes_back_whole(store: SqlStore, build: type[Build]) -> None:
    code = build.code("h1")
    await store.save_code(code)
    redemption = await store.consume_code("h1", NOW + 1)
    assert redemption.code == dataclasses.replace(code, consumed_at=NOW + 1)
    assert redemption.replayed is None


@pytest.mark.requirement(req.RFC6749_4_1_2_CODE_SINGLE_USE)
async def test_code_is_single_use(store: SqlStore, build: type[Build]) -> None:
    await store.save_code(build.code("h1"))
    await store.consume_code("h1", NOW + 1)
    replay = await store.consume_code("h1", NOW + 2)
    assert replay.code is None
    # The replay carries the record, so the caller can revoke the family the code issued.
    assert replay.replayed is not None
    assert (replay.replayed.family_id, replay.replayed.consumed_at) == ("family-1", NOW + 1)


async def test_unknown_code_redeems_nothing(store: SqlStore) -> None:
    redemption = await store.consume_code("never-issued", NOW)
    assert (redemption.code, redemption.replayed) == (None, None)


@pytest.mark.requirement(req.RFC6749_4_1_2_CODE_SINGLE_USE)
async def test_code_is_single_use_across_replicas(store: SqlStore, replica: SqlStore, build: type[Build]) -> None:
    for i in range(10):
        await store.save_code(build.code(f"h{i}"))
    for i in range(10):
        first, second = await asyncio.gather(
            store.consume_code(f"h{i}", NOW + 1), replica.consume_code(f"h{i}", NOW + 2)
        )
        winners = [r for r in (first, second) if r.code is not None]
        replays = [r for r in (first, second) if r.replayed is not None]
        assert len(winners) == 1 and len(replays) == 1, (first, second)


async def _redeem(store: SqlStore, build: type[Build], code_hash: str, token_hash: str) -> str:
    """What the token endpoint asks of the store for one exchange (oauth/grants.py)."""
    redemption = await store.consume_code(code_hash, NOW + 1)
    if redemption.replayed is not None:
        await store.revoke_family(redemption.replayed.family_id, "authorization code replayed", NOW + 1)
        return "replay"
    assert redemption.code is not None
    await store.get_user(redemption.code.user_id)  # as the endpoint does, while replays come in
    family_id = redemption.code.family_id
    await store.create_family(build.family(family_id), build.token(token_hash, family_id=family_id))
    return token_hash


@pytest.mark.requirement(req.OAUTH21_4_1_3_CODE_REPLAY_REVOKES)
async def test_a_racing_replay_revokes_the_grant_whatever_the_timing(
    store: SqlStore, replica: SqlStore, build: type[Build]
) -> None:
    for trial in range(20):
        code_hash, family_id = f"race-{trial}", f"race-family-{trial}"
        await store.save_code(build.code(code_hash, family_id=family_id))
        outcomes = await asyncio.gather(
            *(_redeem((store, replica)[i % 2], build, code_hash, f"rt-{trial}-{i}") for i in range(6))
        )
        (winner,) = [o for o in outcomes if o != "replay"]
        family = await replica.get_family(family_id)
        assert family is not None and family.revoked_reason == "authorization code replayed", (trial, outcomes)
        first = await replica.get_refresh_token(winner)  # kept, so presenting it says "revoked"
        assert first is not None and first.family_id == family_id
        assert not await store.family_is_live(family_id)


@pytest.mark.requirement(req.OAUTH21_4_1_3_CODE_REPLAY_REVOKES)
async def test_a_replay_before_the_winner_issues_leaves_its_tokens_born_revoked(
    store: SqlStore, replica: SqlStore, build: type[Build]
) -> None:
    await store.save_code(build.code("h", family_id="f"))
    won = await store.consume_code("h", NOW + 1)
    replay = await replica.consume_code("h", NOW + 1)
    assert won.code is not None and replay.replayed is not None
    assert await replica.revoke_family(replay.replayed.family_id, "authorization code replayed", NOW + 1) is True
    await store.create_family(build.family("f"), build.token("t", family_id="f"))
    family = await store.get_family("f")
    assert family is not None and (family.revoked_at, family.scopes) == (NOW + 1, ("mcp:read",))
    assert not await store.family_is_live("f")


async def test_an_unredeemed_codes_family_lives_as_long_as_the_code(store: SqlStore, build: type[Build]) -> None:
    await store.save_code(build.code("h", family_id="f", created_at=NOW - 120, expires_at=NOW - 60))
    assert await store.purge_expired(NOW - 3600) == 0  # the code has not expired before then
    assert await store.get_family("f") is not None
    assert await store.purge_expired(NOW) == 2  # the code expired unused: it and its family go
    assert await store.get_family("f") is None


# -- refresh token families -------------------------------------------------------------------


async def test_family_round_trip(store: SqlStore, build: type[Build]) -> None:
    family, token = build.family("f"), build.token("t", family_id="f")
    await store.create_family(family, token)
    assert await store.get_family("f") == family
    assert await store.get_refresh_token("t") == token
    assert await store.get_family("nope") is None
    assert await store.get_refresh_token("nope") is None


@pytest.mark.requirement(req.RFC9700_4_14_2_ONE_SUCCESSOR)
async def test_rotation_marks_the_old_token_and_keeps_its_successor(store: SqlStore, build: type[Build]) -> None:
    await store.create_family(build.family("f"), build.token("t1", family_id="f"))
    new = build.token("t2", family_id="f")
    successor = b"\x00\xff\x80sealed token response\x00"
    assert await store.rotate_refresh_token("t1", new, successor, NOW + 5) is True

    old = await store.get_refresh_token("t1")
    assert old is not None
    assert (old.rotated_at, old.successor) == (NOW + 5, successor)
    assert isinstance(old.successor, bytes)
    assert await store.get_refresh_token("t2") == new


async def test_rotating_a_rotated_token_changes_nothing(store: SqlStore, build: type[Build]) -> None:
    await store.create_family(build.family("f"), build.token("t1", family_id="f"))
    assert await store.rotate_refresh_token("t1", build.token("t2", family_id="f"), b"s2", NOW)
    assert not await store.rotate_refresh_token("t1", build.token("t3", family_id="f"), b"s3", NOW + 1)
    assert await store.get_refresh_token("t3") is None
    old = await store.get_refresh_token("t1")
    assert old is not None and (old.rotated_at, old.successor) == (NOW, b"s2")
    assert not await store.rotate_refresh_token("unknown", build.token("t4", family_id="f"), b"s4", NOW)
    assert await store.get_refresh_token("t4") is None


@pytest.mark.requirement(req.RFC9700_4_14_2_ONE_SUCCESSOR)
async def test_concurrent_rotations_have_one_winner(store: SqlStore, replica: SqlStore, build: type[Build]) -> None:
    for i in range(10):
        old, family_id = f"t{i}", f"f{i}"
        await store.create_family(build.family(family_id), build.token(old, family_id=family_id))
        new_a = build.token(f"{old}-a", family_id=family_id)
        new_b = build.token(f"{old}-b", family_id=family_id)
        results = await asyncio.gather(
            store.rotate_refresh_token(old, new_a, b"a", NOW),
            replica.rotate_refresh_token(old, new_b, b"b", NOW),
        )
        assert sorted(results) == [False, True]
        winner, loser = ("a", "b") if results[0] else ("b", "a")
        assert await store.get_refresh_token(f"{old}-{winner}") is not None
        assert await store.get_refresh_token(f"{old}-{loser}") is None
        rotated = await store.get_refresh_token(old)
        assert rotated is not None and rotated.successor == winner.encode()


@pytest.mark.requirement(req.RFC9700_4_14_2_REUSE_REVOKES_FAMILY)
async def test_revoke_family_is_idempotent_and_keeps_the_first_reason(store: SqlStore, build: type[Build]) -> None:
    await store.create_family(build.family("f"), build.token("t", family_id="f"))
    assert await store.revoke_family("f", "refresh token reused", NOW) is True
    assert await store.revoke_family("f", "later", NOW + 1) is False
    assert await store.revoke_family("unknown", "x", NOW) is False
    family = await store.get_family("f")
    assert family is not None
    assert (family.revoked_at, family.revoked_reason) == (NOW, "refresh token reused")


async def test_revoke_families_by_client_or_user(store: SqlStore, build: type[Build]) -> None:
    specs = [("f1", "c1", "u1"), ("f2", "c1", "u2"), ("f3", "c2", "u1"), ("f4", "c2", "u2")]
    for family_id, client_id, user_id in specs:
        await store.create_family(
            build.family(family_id, client_id=client_id, user_id=user_id),
            build.token(f"t-{family_id}", family_id=family_id),
        )
    assert await store.revoke_families(client_id="c1", reason="client secret reset", now=NOW) == 2
    # Already-revoked families are not counted again.
    assert await store.revoke_families(user_id="u1", reason="password reset", now=NOW) == 1
    assert await store.revoke_families(client_id="c2", user_id="u2", reason="x", now=NOW) == 1
    families = [await store.get_family(f) for f, _, _ in specs]
    reasons = {f.family_id: f.revoked_reason for f in families if f is not None}
    assert reasons == {"f1": "client secret reset", "f2": "client secret reset", "f3": "password reset", "f4": "x"}
    with pytest.raises(ValueError):
        await store.revoke_families(reason="everything", now=NOW)


async def test_family_is_live_needs_user_client_and_no_revocation(store: SqlStore, build: type[Build]) -> None:
    alice = build.user("alice")
    await store.add_user(alice)
    await store.add_client(build.client("stored"))
    cimd = "https://app.example/oauth/client.json"
    cases = [
        ("live", "stored"),
        ("cimd", cimd),
        ("revoked", "stored"),
        ("ghost-client", "not-stored"),
        ("http-cimd", "http://localhost/c"),
    ]
    for family_id, client_id in cases:
        await store.create_family(
            build.family(family_id, client_id=client_id), build.token(f"t-{family_id}", family_id=family_id)
        )
    await store.revoke_family("revoked", "test", NOW)

    live = {
        f: await store.family_is_live(f) for f in ("live", "cimd", "revoked", "ghost-client", "http-cimd", "unknown")
    }
    assert live == {
        "live": True,
        "cimd": True,
        "revoked": False,
        "ghost-client": False,
        "http-cimd": True,
        "unknown": False,
    }
    # a refresh's one read (get_refresh_grant) says the same, with the token, family and user
    for family_id, client_id in cases:
        grant = await store.get_refresh_grant(f"t-{family_id}")
        assert grant is not None and grant.live == live[family_id]
        assert grant.token == await store.get_refresh_token(f"t-{family_id}")
        assert grant.family == await store.get_family(family_id) and grant.family.client_id == client_id
        assert grant.user == alice
    assert await store.get_refresh_grant("t-unknown") is None


async def test_family_dies_with_its_client(store: SqlStore, build: type[Build]) -> None:
    await store.add_user(build.user("alice"))
    await store.add_client(build.client("c"))
    await store.create_family(build.family("f", client_id="c"), build.token("t", family_id="f"))
    assert await store.family_is_live("f")
    await store.delete_client("c")
    assert not await store.family_is_live("f")


async def test_family_dies_with_its_user(store: SqlStore, build: type[Build]) -> None:
    await store.add_user(build.user("alice"))
    await store.create_family(
        build.family("f", client_id="https://app.example/c.json"), build.token("t", family_id="f")
    )
    assert await store.family_is_live("f")
    await store.remove_user("uid-alice", NOW)
    assert not await store.family_is_live("f")
    grant = await store.get_refresh_grant("t")
    assert grant is not None and not grant.live and grant.user is None
    assert grant.family.revoked_reason == "user removed"


# -- purging what expired -----------------------------------------------------------------------


async def test_purge_removes_expired_codes_tokens_and_the_grants_left_empty(
    store: SqlStore,
    build: type[Build],
) -> None:
    await store.add_client(build.client())
    await store.add_user(build.user())
    # family-old: its only token and its code expired long ago -> goes, with them
    await store.save_code(build.code("code-old", family_id="family-old", expires_at=NOW - 7200))
    old_family = dataclasses.replace(build.family("family-old"), created_at=NOW - 86400)
    await store.create_family(old_family, build.token("rt-old", family_id="family-old", expires_at=NOW - 7200))
    # family-live: one expired (rotated) token and one live one -> the family and the live token stay
    live_family = dataclasses.replace(build.family("family-live"), created_at=NOW - 86400)
    await store.create_family(live_family, build.token("rt-live-1", family_id="family-live", expires_at=NOW - 7200))
    await store.rotate_refresh_token(
        "rt-live-1", build.token("rt-live-2", family_id="family-live", expires_at=NOW + 3600), b"sealed", NOW - 7300
    )
    # a fresh code whose family has no token yet (not redeemed) -> both stay
    await store.save_code(build.code("code-new", family_id="family-new", expires_at=NOW + 60))
    await store.create_family(
        build.family("family-new"), build.token("rt-new", family_id="family-new", expires_at=NOW + 3600)
    )

    removed = await store.purge_expired(NOW - 3600)

    assert removed == 4  # code-old, rt-old, rt-live-1, family-old
    assert await store.get_family("family-old") is None
    assert await store.get_refresh_token("rt-old") is None and await store.get_refresh_token("rt-live-1") is None
    assert (await store.consume_code("code-old", NOW)).code is None
    assert await store.get_family("family-live") is not None and await store.family_is_live("family-live")
    assert await store.get_refresh_token("rt-live-2") is not None
    assert (await store.consume_code("code-new", NOW)).code is not None
    assert await store.purge_expired(NOW - 3600) == 0  # nothing more


@pytest.mark.requirement(req.OAUTH21_4_3_1_KEEP_ROTATED_TOKEN)
async def test_purge_keeps_a_rotated_token_until_it_expires(store: SqlStore, build: type[Build]) -> None:
    await store.add_client(build.client())
    await store.add_user(build.user())
    await store.create_family(build.family(), build.token("rt-1", expires_at=NOW + 3600))
    await store.rotate_refresh_token("rt-1", build.token("rt-2", expires_at=NOW + 7200), b"sealed", NOW)
    assert await store.purge_expired(NOW) == 0
    old = await store.get_refresh_token("rt-1")
    assert old is not None and old.rotated_at == NOW  # a replay of rt-1 is still recognised as reuse
