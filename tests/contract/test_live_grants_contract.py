"""Contract: what `authgate clients`/`grants` read and revoke — the live grants, a client's
grants revoked at once, and a prune's dry run — on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from authgate.store.models import Consent, LiveGrant
from authgate.store.sql import SqlStore
from support import requirements as req

from .conftest import NOW, Build

CIMD_ID = "https://chatgpt.example/oauth/client.json"


async def _grant(
    store: SqlStore, build: type[Build], family_id: str, client_id: str, user: str, *tokens: tuple[float, float]
) -> None:
    """A family of `client_id` for `user`, its tokens (issued_at, expires_at) in order."""
    first, *rest = tokens or ((NOW, NOW + 3600),)
    family = build.family(family_id, client_id=client_id, user_id=f"uid-{user}")
    token = dataclasses.replace(build.token(f"{family_id}-0", family_id=family_id), issued_at=first[0])
    await store.create_family(family, dataclasses.replace(token, expires_at=first[1]))
    for i, (issued, expires) in enumerate(rest, 1):
        nxt = dataclasses.replace(token, token_hash=f"{family_id}-{i}", issued_at=issued, expires_at=expires)
        assert await store.rotate_refresh_token(f"{family_id}-{i - 1}", nxt, b"sealed", issued)


@pytest.fixture
async def populated(store: SqlStore, build: type[Build]) -> SqlStore:
    for name in ("alice", "bob"):
        await store.add_user(build.user(name))
    for client_id in ("dcr-1", "dcr-2"):
        await store.add_client(build.client(client_id))
    await _grant(store, build, "f-alice-1", "dcr-1", "alice", (NOW, NOW + 3600), (NOW + 50, NOW + 3650))
    await _grant(store, build, "f-bob-1", "dcr-1", "bob", (NOW + 10, NOW + 3610))
    await _grant(store, build, "f-alice-cimd", CIMD_ID, "alice", (NOW + 20, NOW + 3620))
    await _grant(store, build, "f-expired", "dcr-2", "alice", (NOW - 7200, NOW - 3600))
    await _grant(store, build, "f-revoked", "dcr-2", "bob")
    await store.revoke_family("f-revoked", "test", NOW)
    await store.save_code(build.code("unredeemed", client_id="dcr-2", family_id="f-code-only"))  # no token yet
    return store


async def test_live_grants_are_listed_newest_use_first_with_names(populated: SqlStore) -> None:
    grants = await populated.list_live_grants(now=NOW + 60)
    assert [g.family_id for g in grants] == ["f-alice-1", "f-alice-cimd", "f-bob-1"]
    first = grants[0]
    assert first == LiveGrant(
        family_id="f-alice-1",
        client_id="dcr-1",
        client_name="dcr-1",
        user_id="uid-alice",
        username="alice",
        scopes=("mcp:read",),
        created_at=NOW,
        last_used_at=NOW + 50,  # the rotation, not the code exchange
        expires_at=NOW + 3650,
    )
    assert grants[1].client_name == CIMD_ID  # a CIMD client's document is not stored: its id
    # expired, revoked and not-yet-redeemed families are not live
    assert not {"f-expired", "f-revoked", "f-code-only"} & {g.family_id for g in grants}


async def test_live_grants_filter_by_user_and_client_and_limit(populated: SqlStore) -> None:
    def ids(grants: list[LiveGrant]) -> list[str]:
        return [g.family_id for g in grants]

    assert ids(await populated.list_live_grants(user_id="uid-bob", now=NOW + 60)) == ["f-bob-1"]
    assert ids(await populated.list_live_grants(client_id=CIMD_ID, now=NOW + 60)) == ["f-alice-cimd"]
    both = await populated.list_live_grants(user_id="uid-alice", client_id="dcr-1", now=NOW + 60)
    assert ids(both) == ["f-alice-1"]
    assert ids(await populated.list_live_grants(limit=1, now=NOW + 60)) == ["f-alice-1"]
    assert await populated.list_live_grants(now=NOW + 4000) == []  # every token expired by then


async def test_a_removed_user_or_client_holds_no_live_grant(populated: SqlStore) -> None:
    await populated.remove_user("uid-bob", NOW)
    await populated.delete_client("dcr-1")
    assert [g.family_id for g in await populated.list_live_grants(now=NOW + 60)] == ["f-alice-cimd"]


@pytest.mark.requirement(req.ISSUE13_CLIENT_REVOKE_ENDS_TOKENS)
async def test_revoking_a_client_ends_all_it_holds_and_nothing_else(populated: SqlStore, build: type[Build]) -> None:
    await populated.save_consent(Consent("uid-alice", "dcr-2", ("mcp",), (), NOW))
    await populated.save_consent(Consent("uid-alice", "dcr-1", ("mcp",), (), NOW))
    # f-expired and f-code-only were not revoked yet; f-revoked stays as it was
    assert await populated.revoke_client_grants("dcr-2", "revoked by the operator", NOW + 5) == 2
    for family_id in ("f-expired", "f-code-only"):
        family = await populated.get_family(family_id)
        assert family is not None and family.revoked_reason == "revoked by the operator"
        assert not await populated.family_is_live(family_id)
    revoked = await populated.get_family("f-revoked")
    assert revoked is not None and revoked.revoked_reason == "test"
    # its unredeemed code is gone (redeeming it finds nothing), its consent too; the client stays
    assert (await populated.consume_code("unredeemed", NOW + 6)).code is None
    assert await populated.get_consent("uid-alice", "dcr-2") is None
    assert await populated.get_client("dcr-2") is not None
    # other clients keep theirs; a CIMD client's grants are revoked the same way
    assert await populated.get_consent("uid-alice", "dcr-1") is not None
    assert await populated.family_is_live("f-alice-1")
    assert await populated.revoke_client_grants(CIMD_ID, "revoked by the operator", NOW + 5) == 1
    assert [g.client_id for g in await populated.list_live_grants(now=NOW + 60)] == ["dcr-1", "dcr-1"]
    assert await populated.revoke_client_grants("no-such-client", "x", NOW) == 0


@pytest.mark.requirement(req.ISSUE13_PRUNE_DRY_RUN_EXACT)
async def test_a_prunes_dry_run_lists_exactly_what_it_removes(store: SqlStore, build: type[Build]) -> None:
    await store.add_user(build.user("alice"))
    idle, recent = NOW - 40 * 86400, NOW - 60
    clients = {
        "idle-unverified": dict(last_used_at=recent - 7200),  # unverified, idle for 2 h
        "new-unverified": dict(last_used_at=recent),  # unverified, used a minute ago
        "idle-consented-no-grant": dict(last_used_at=idle),
        "idle-consented-live-grant": dict(last_used_at=idle),
        "idle-consented-revoked-grant": dict(last_used_at=idle),
        "idle-operator": dict(last_used_at=idle, source="operator"),
    }
    for client_id, kw in clients.items():
        await store.add_client(build.client(client_id, **kw))  # type: ignore[arg-type]
        if "consented" in client_id:
            await store.save_consent(Consent("uid-alice", client_id, ("mcp",), (), NOW))
    await _grant(store, build, "live", "idle-consented-live-grant", "alice", (NOW, NOW + 3600))
    await _grant(store, build, "gone", "idle-consented-revoked-grant", "alice", (NOW, NOW + 3600))
    await store.revoke_family("gone", "test", NOW)
    horizons = dict(unverified_since=NOW - 3600, unused_since=NOW - 30 * 86400, now=NOW)
    listed = {c.client_id for c in await store.prunable_clients(**horizons)}
    assert listed == {"idle-unverified", "idle-consented-no-grant", "idle-consented-revoked-grant"}
    assert len(await store.list_clients()) == len(clients)  # a dry run removes nothing
    removed = await store.prune_unverified_clients(horizons["unverified_since"])
    removed += await store.prune_clients(horizons["unused_since"], NOW)
    left = {c.client_id for c in await store.list_clients()}
    assert removed == len(listed) and left == set(clients) - listed
