"""`SqlKnownAddresses`: the `KnownAddresses` of sign-in (`authgate.oauth.signin`) in the
store, so an address that signed in through one replica is known to all of them.

Kept in the `rate_limits` table under the limiter name `known-addresses`: one row per
(HMAC of the `account|address` key, UTC day of a successful sign-in), the key hashed as the
rate-limit keys are. An address is known while it has a row from the last `known_for`
seconds; `purge_expired` drops older rows.

**Failures.** What this process remembered itself is kept in memory as well
(`KnownAddressesInMemory`); when the store cannot answer, that memory answers (the outage
is shared with the rate limits, `StoreOutage`: one failure rests both, logged once). So an
owner who signed in through this replica stays known during an outage, and nobody becomes
known without a successful sign-in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from authgate.errors import StoreError
from authgate.oauth.signin import KNOWN_FOR, KnownAddressesInMemory
from authgate.store.sql import tables as t
from authgate.store.sql.ratelimits import StoreOutage, _digest
from authgate.store.sql.store import SqlStore

__all__ = ["SqlKnownAddresses"]

LIMITS = t.rate_limits
NAME = "known-addresses"
DAY = 86400


class SqlKnownAddresses:
    def __init__(
        self,
        store: SqlStore,
        *,
        key_secret: bytes | None = None,
        known_for: int = KNOWN_FOR,
        clock: Callable[[], float] = time.time,
        outage: StoreOutage | None = None,
    ) -> None:
        self.known_for = known_for
        self._store = store
        self._key_secret = key_secret
        self._clock = clock
        self._local = KnownAddressesInMemory(known_for, clock=clock)
        self._outage = outage or StoreOutage()

    async def is_known(self, key: str) -> bool:
        if await self._local.is_known(key):
            return True
        if self._outage.resting():
            return False  # what this process remembered was asked first
        query = (
            sa.select(LIMITS.c.hits)
            .where(
                LIMITS.c.limiter == NAME,
                LIMITS.c.key_hash == _digest(key, self._key_secret),
                LIMITS.c.window_start >= self._day() - self.known_for,
            )
            .limit(1)
        )
        try:
            async with self._store._tx(write=False) as conn:
                found = (await conn.execute(query)).first() is not None
        except StoreError as exc:
            self._outage.failed("known sign-in addresses", exc)
            return False
        return found

    async def remember(self, key: str) -> None:
        await self._local.remember(key)
        if self._outage.resting():
            return
        values = {"limiter": NAME, "key_hash": _digest(key, self._key_secret), "window_start": self._day(), "hits": 1}
        try:
            async with self._store._tx() as conn:
                await conn.execute(
                    self._store.upsert(LIMITS)
                    .values(values)
                    .on_conflict_do_update(
                        index_elements=["limiter", "key_hash", "window_start"], set_={"hits": LIMITS.c.hits + 1}
                    )
                )
        except StoreError as exc:
            self._outage.failed("known sign-in addresses", exc)
            return
        self._outage.answered()

    async def purge_expired(self) -> int:
        """Delete days older than `known_for`; returns how many rows."""
        async with self._store._tx() as conn:
            result = await conn.execute(
                sa.delete(LIMITS).where(LIMITS.c.limiter == NAME, LIMITS.c.window_start < self._day() - self.known_for)
            )
        return result.rowcount

    def _day(self) -> int:
        return int(self._clock() // DAY) * DAY
