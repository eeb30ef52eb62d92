"""Contract: sign-in and registration rate limits in the database (SqlRateLimits) on each
backend — the limit, Retry-After, window roll-over with the weighted previous window, replicas
sharing one count, the race between replicas, hashing at rest, reset, purging, fail-open."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from typing import Any

import pytest
import sqlalchemy as sa

from authgate.store.sql import SqlStore
from authgate.store.sql.ratelimits import SqlRateLimits, StoreOutage
from authgate.store.sql.tables import rate_limits

from .conftest import NOW, StoreFactory

WINDOW = 60
START = (int(NOW) // WINDOW) * WINDOW  # a window boundary


class Clock:
    def __init__(self) -> None:
        self.now = START + 1.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limits(store: SqlStore, clock: Clock, limit: int = 5, name: str = "logins") -> SqlRateLimits:
    return SqlRateLimits(store, name, limit, WINDOW, clock=clock)


async def _rows(store: SqlStore) -> list[dict[str, Any]]:
    async with store._tx(write=False) as conn:
        return [dict(r) for r in (await conn.execute(sa.select(rate_limits))).mappings()]


async def test_the_hit_over_the_limit_is_refused_with_a_retry_after(store: SqlStore, clock: Clock) -> None:
    rl = limits(store, clock)
    assert [await rl.hit("alice|10.0.0.1") for _ in range(6)] == [True] * 5 + [False]
    # at START + 1: the shared window ends at START + 60, but this process's exact sliding
    # window frees a hit only when the first is 60 s old; the later of the two is the answer
    assert await rl.retry_after("alice|10.0.0.1") == WINDOW
    assert await rl.retry_after("bob|10.0.0.1") == 0  # other keys are untouched
    assert await rl.hit("bob|10.0.0.1")
    assert [
        r["hits"] for r in await _rows(store) if r["key_hash"] == hashlib.sha256(b"alice|10.0.0.1").hexdigest()
    ] == [5]


async def test_after_the_window_the_previous_one_still_weighs_then_fades(store: SqlStore, clock: Clock) -> None:
    rl = limits(store, clock)
    for _ in range(5):
        assert await rl.hit("k")
    clock.now = START + WINDOW + 18  # the previous 5 weigh 5 * 42/60 = 3.5: two more fit
    assert await rl.retry_after("k") == 0
    assert [await rl.hit("k") for _ in range(3)] == [True, True, False]
    # 2 + 5 * (1 - e/60) < 5 once e > 24: 5.5 s from e = 18.5, rounded up
    clock.now = START + WINDOW + 18.5
    assert await rl.retry_after("k") == 6
    clock.now = START + WINDOW + 24.5
    assert await rl.retry_after("k") == 0
    assert await rl.hit("k")
    assert not await rl.hit("k")
    clock.now = START + 3 * WINDOW  # two windows on: nothing weighs any more
    assert [await rl.hit("k") for _ in range(6)] == [True] * 5 + [False]


async def test_a_full_window_waits_into_the_next(store: SqlStore, clock: Clock) -> None:
    rl = limits(store, clock)
    for _ in range(5):
        await rl.hit("k")
    clock.now = START + WINDOW - 10
    # 10 s to the next window, where the 5 weigh 5 * (1 - e/60) < 5 at once (e > 0); and 11 s
    # until this process's exact window lets go of the first hit, made at START + 1
    assert await rl.retry_after("k") == 11
    clock.now = START + WINDOW + 1
    assert await rl.hit("k")


async def test_two_replicas_share_one_count(store: SqlStore, replica: SqlStore, clock: Clock) -> None:
    one, two = limits(store, clock), limits(replica, clock)
    assert [await one.hit("k") for _ in range(3)] == [True] * 3
    assert [await two.hit("k") for _ in range(2)] == [True] * 2
    assert not await one.hit("k")
    assert not await two.hit("k")
    assert await one.retry_after("k") > 0 and await two.retry_after("k") > 0


@pytest.mark.parametrize("limit", [1, 5])
async def test_concurrent_hits_on_two_replicas_never_pass_more_than_the_limit(
    store: SqlStore, replica: SqlStore, clock: Clock, limit: int
) -> None:
    one, two = limits(store, clock, limit), limits(replica, clock, limit)
    for round_ in range(3):
        key = f"race-{round_}"
        results = await asyncio.gather(*(rl.hit(key) for _ in range(8) for rl in (one, two)))
        assert results.count(True) == limit
    [row] = [r for r in await _rows(store) if r["key_hash"] == hashlib.sha256(b"race-0").hexdigest()]
    assert row["hits"] == limit  # refused attempts are not counted


async def test_keys_are_stored_only_as_sha256(store: SqlStore, clock: Clock) -> None:
    await limits(store, clock).hit("alice|203.0.113.9")
    [row] = await _rows(store)
    assert row["key_hash"] == hashlib.sha256(b"alice|203.0.113.9").hexdigest()
    assert "alice" not in repr(row) and "203.0.113.9" not in repr(row)
    assert row["limiter"] == "logins" and row["window_start"] == START


async def test_with_a_key_secret_the_stored_digest_is_an_hmac(store: SqlStore, clock: Clock) -> None:
    # A plain SHA-256 of an IPv4 address is undone by hashing all 2^32 of them.
    secret = b"k" * 32
    rl = SqlRateLimits(store, "logins", 5, WINDOW, key_secret=secret, clock=clock)
    assert await rl.hit("203.0.113.9")
    [row] = await _rows(store)
    assert row["key_hash"] == hmac.new(secret, b"203.0.113.9", hashlib.sha256).hexdigest()
    assert row["key_hash"] != hashlib.sha256(b"203.0.113.9").hexdigest()
    other = SqlRateLimits(store, "logins", 5, WINDOW, key_secret=secret, clock=clock)  # another replica
    assert [await other.hit("203.0.113.9") for _ in range(5)] == [True] * 4 + [False]


async def test_limiters_with_different_names_count_apart(store: SqlStore, clock: Clock) -> None:
    logins, registrations = limits(store, clock, 1), limits(store, clock, 1, name="registrations")
    assert await logins.hit("10.0.0.1")
    assert await registrations.hit("10.0.0.1")
    assert not await logins.hit("10.0.0.1")


async def test_reset_forgets_the_key_only(store: SqlStore, clock: Clock) -> None:
    rl = limits(store, clock, 2)
    for key in ("a", "a", "b", "b"):
        await rl.hit(key)
    clock.now += WINDOW  # a previous window too
    await rl.hit("a")
    await rl.reset("a")
    assert await rl.retry_after("a") == 0
    assert [await rl.hit("a") for _ in range(3)] == [True, True, False]
    assert [await rl.hit("b") for _ in range(2)] == [True, False]  # b's previous window still weighs


async def test_purge_removes_only_windows_older_than_the_previous(store: SqlStore, clock: Clock) -> None:
    rl, other = limits(store, clock), limits(store, clock, name="registrations")
    await rl.hit("old")
    await other.hit("old-elsewhere")  # another limiter's windows are its own purge's
    clock.now += WINDOW
    await rl.hit("previous")
    clock.now += WINDOW
    await rl.hit("current")
    assert await rl.purge_expired() == 1
    assert await rl.purge_expired() == 0
    left = {(r["limiter"], r["window_start"]) for r in await _rows(store)}
    assert left == {("logins", START + WINDOW), ("logins", START + 2 * WINDOW), ("registrations", START)}


async def test_a_database_failure_never_lets_an_attempt_over_the_limit_through(
    open_store: StoreFactory, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # The store stops answering mid-window: this process's own count decides, and it already
    # holds the attempts the store counted, so the limit holds across the failure.
    store = await open_store()
    rl = limits(store, clock, 3)
    assert await rl.hit("k") and await rl.hit("k")
    await store.close()  # every query now fails with StoreError
    with caplog.at_level(logging.INFO, logger="authgate"):
        assert [await rl.hit("k") for _ in range(3)] == [True, False, False]
        assert await rl.retry_after("k") == WINDOW  # the in-process window, first hit at START + 1
        assert [await rl.hit("other") for _ in range(4)] == [True] * 3 + [False]
        await rl.reset("other")
        assert await rl.hit("other")
    failures = [r for r in caplog.records if "rate limit logins" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING  # logged once per outage


async def test_after_an_outage_the_store_counts_again_and_says_so(
    open_store: StoreFactory, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store, other = await open_store(), await open_store()
    rl = SqlRateLimits(store, "logins", 2, WINDOW, clock=clock, outage=StoreOutage(rest=0.0))
    await store.close()
    with caplog.at_level(logging.INFO, logger="authgate"):
        assert await rl.hit("k")  # counted in this process only: the store never saw it
        await store.open()
        assert await rl.hit("k")  # counted in the store again
        assert not await rl.hit("k")  # this process has seen two
    view = limits(other, clock, 2)  # another replica: the store holds one of the two
    assert [await view.hit("k") for _ in range(2)] == [True, False]
    assert any("counted in the store again" in r.getMessage() for r in caplog.records)
