"""Contract: the `AttemptStore` (the connection timeline) on each backend — a flow's steps
join one row whichever key each step knows, the first failure stays, the cap holds under a
flood and across replicas, filters, order and the purge."""

from __future__ import annotations

import asyncio

import pytest

from authgate.store.bundle import Stores
from authgate.store.models import AttemptNote
from support import requirements as req

from .conftest import NOW, StoresFactory

WINDOW = 3600.0


def _note(at: float, *steps: str, **kw: object) -> AttemptNote:
    return AttemptNote(at=at, steps=steps, **kw)  # type: ignore[arg-type]


async def _record(stores: Stores, note: AttemptNote, max_rows: int = 1000) -> None:
    await stores.attempts.record_attempts([note], max_rows=max_rows, window=WINDOW)


@pytest.mark.requirement(req.ISSUE13_CONNECTION_TIMELINE)
async def test_a_flows_steps_become_one_story(stores: Stores) -> None:
    c = "dcr-client-1"
    await _record(stores, _note(NOW, "metadata", "register", client_id=c, client_name="Claude", client_kind="dcr"))
    await _record(stores, _note(NOW + 1, "authorize", client_id=c, flow_key="f1"))  # adopts the registration
    await _record(stores, _note(NOW + 2, "sign-in", client_id=c, flow_key="f1"))
    await _record(stores, _note(NOW + 3, "consent", "token", client_id=c, flow_key="f1", family_key="g1"))
    await _record(stores, _note(NOW + 4, "mcp", family_key="g1", join_only=True))
    await _record(stores, _note(NOW + 4, "mcp", family_key="another grant", join_only=True))  # no story: dropped
    await _record(stores, _note(NOW + 5, "refresh", family_key="g1", client_id=c))
    [story] = await stores.attempts.list_attempts(since=0)
    assert story.steps == ("metadata", "register", "authorize", "sign-in", "consent", "token", "mcp", "refresh")
    assert (story.client_id, story.client_name, story.client_kind) == (c, "Claude", "dcr")
    assert (story.started_at, story.updated_at, story.failed) == (NOW, NOW + 5, False)


async def test_the_first_failure_stays_and_a_second_flow_is_a_second_row(stores: Stores) -> None:
    c = "https://chatgpt.com/oauth/client.json"
    await _record(stores, _note(NOW, "authorize", client_id=c, client_kind="cimd", flow_key="f1"))
    first = dict(failed_step="token", reason="token request refused: PKCE", fix="send the verifier")
    await _record(stores, _note(NOW + 1, client_id=c, flow_key="f1", **first))
    await _record(stores, _note(NOW + 2, client_id=c, flow_key="f1", failed_step="refresh", reason="x", fix="y"))
    await _record(stores, _note(NOW + 3, "authorize", client_id=c, flow_key="f2"))  # the client tries again
    # a failure that knows only the client joins its newest attempt
    await _record(stores, _note(NOW + 4, client_id=c, follow_client=True, failed_step="token", reason="r", fix="f"))
    second, first_row = await stores.attempts.list_attempts(since=0)
    assert (first_row.failed_step, first_row.reason, first_row.fix) == ("token", first["reason"], first["fix"])
    assert first_row.steps == ("authorize",)
    assert (second.failed_step, second.reason) == ("token", "r")
    assert [a.attempt_id for a in await stores.attempts.list_attempts(since=0, failed_only=True)] == [
        second.attempt_id,
        first_row.attempt_id,
    ]


async def test_filters_since_client_and_name_limit(stores: Stores) -> None:
    for i in range(5):
        await _record(stores, _note(NOW + i, "authorize", client_id=f"c{i % 2}", client_name=f"App {i % 2}"))
    assert len(await stores.attempts.list_attempts(since=NOW + 2)) == 3
    assert [a.started_at for a in await stores.attempts.list_attempts(since=0, client_id="c1")] == [NOW + 3, NOW + 1]
    assert len(await stores.attempts.list_attempts(since=0, client_id="App 0")) == 3
    assert len(await stores.attempts.list_attempts(since=0, limit=2)) == 2


@pytest.mark.requirement(req.ISSUE13_ATTEMPTS_BOUNDED)
async def test_a_flood_leaves_the_table_at_its_cap_keeping_the_newest(stores: Stores) -> None:
    for i in range(60):
        await _record(stores, _note(NOW + i, client_id=f"x{i}", failed_step="authorize", reason="r"), max_rows=25)
    kept = await stores.attempts.list_attempts(since=0, limit=1000)
    assert len(kept) == 25
    assert kept[0].client_id == "x59" and kept[-1].client_id == "x35"


async def test_replicas_flooding_together_stay_within_the_cap(open_stores: StoresFactory) -> None:
    a, b = await open_stores(), await open_stores()

    async def flood(stores: Stores, tag: str) -> None:
        for i in range(30):
            await _record(stores, _note(NOW + i, client_id=f"{tag}{i}", failed_step="token"), max_rows=20)

    await asyncio.gather(flood(a, "a"), flood(b, "b"))
    assert len(await a.attempts.list_attempts(since=0, limit=1000)) == 20


async def test_a_batch_is_one_story_in_order(stores: Stores) -> None:
    """What the recorder's writer sends: the notes queued while it wrote, in one transaction."""
    c = "dcr-client-2"
    batch = [
        _note(NOW, "register", client_id=c, client_kind="dcr"),
        _note(NOW + 1, "authorize", client_id=c, flow_key="f9"),  # adopts the row made just before
        _note(NOW + 2, "sign-in", "consent", client_id=c, flow_key="f9"),
        _note(NOW + 2, client_id="stranger", failed_step="authorize", reason="r", fix="f"),
    ]
    await stores.attempts.record_attempts(batch, max_rows=1000, window=WINDOW)
    await stores.attempts.record_attempts([], max_rows=1000, window=WINDOW)
    stranger, story = await stores.attempts.list_attempts(since=0)
    assert story.steps == ("register", "authorize", "sign-in", "consent") and stranger.failed


async def test_purge_deletes_only_what_was_last_updated_before(stores: Stores) -> None:
    await _record(stores, _note(NOW, "authorize", client_id="old", flow_key="f-old"))
    await _record(stores, _note(NOW, "authorize", client_id="kept", flow_key="f-kept"))
    await _record(stores, _note(NOW + 100, "sign-in", client_id="kept", flow_key="f-kept"))  # still going
    assert await stores.attempts.purge_attempts(NOW + 50) == 1
    assert [a.client_id for a in await stores.attempts.list_attempts(since=0)] == ["kept"]
