"""`SqlKnownAddresses`: the `KnownAddresses` of sign-in (`authgate.oauth.signin`) in the
store, so an address that signed in through one replica is known to all of them.

Kept in the `rate_limits` table under the limiter name `known-addresses`: one row per
(HMAC of the `account|address` key, UTC day of a successful sign-in), the key hashed as the
rate-limit keys are. An address is known while it has a row from the last `known_for`
seconds; `purge_expired` drops older rows.

**Failures.** What this process remembered itself is kept in memory as well
(`KnownAddressesInMemory`); when the store cannot answer, that memory answers, with one
WARNING per outage. So an owner who signed in through this replica stays known during an
outage, and nobody becomes known without a successful sign-in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import sqlalchemy as sa

from authgate.errors import StoreError
from authgate.oauth.signin import KNOWN_FOR, KnownAddressesInMemory
from authgate.store.sql import tables as t
from authgate.store.sql.ratelimits import _digest
from authgate.store.sql.store import SqlStore

__all__ = ["SqlKnownAddresses"]

LIMITS = t.rate_limits
NAME = "known-addresses"
DAY = 86400

log = logging.getLogger("authgate")


class SqlKnownAddresses:
    def __init__(self, store: SqlStore, *, key_secret: bytes | None = None, known_for: int = KNOWN_FOR,
                 clock: Callable[[], float] = time.time) -> None:
        self.known_for = known_for
        self._store = store
        self._key_secret = key_secret
        self._clock = clock
        self._local = KnownAddressesInMemory(known_for, clock=clock)
        self._failing = False

    async def is_known(self, key: str) -> bool:
        if await self._local.is_known(key):
            return True
        query = sa.select(LIMITS.c.hits).where(
            LIMITS.c.limiter == NAME, LIMITS.c.key_hash == _digest(key, self._key_secret),
            LIMITS.c.window_start >= self._day() - self.known_for).limit(1)
        try:
            async with self._store._tx(write=False) as conn:
                found = (await conn.execute(query)).first() is not None
        except StoreError as exc:
            self._failed(exc)
            return False  # what this process remembered was asked first
        self._answered()
        return found

    async def remember(self, key: str) -> None:
        await self._local.remember(key)
        values = {"limiter": NAME, "key_hash": _digest(key, self._key_secret), "window_start": self._day(),
                  "hits": 1}
        try:
            async with self._store._tx() as conn:
                await conn.execute(self._store.upsert(LIMITS).values(values).on_conflict_do_update(
                    index_elements=["limiter", "key_hash", "window_start"], set_={"hits": LIMITS.c.hits + 1}))
        except StoreError as exc:
            self._failed(exc)
            return
        self._answered()

    async def purge_expired(self) -> int:
        """Delete days older than `known_for`; returns how many rows."""
        async with self._store._tx() as conn:
            result = await conn.execute(sa.delete(LIMITS).where(
                LIMITS.c.limiter == NAME, LIMITS.c.window_start < self._day() - self.known_for))
        return result.rowcount

    def _day(self) -> int:
        return int(self._clock() // DAY) * DAY

    def _failed(self, exc: StoreError) -> None:
        if not self._failing:
            log.warning("known sign-in addresses: the store cannot answer (%s); this process "
                        "answers from what it remembered itself", exc)
        self._failing = True

    def _answered(self) -> None:
        if self._failing:
            log.info("known sign-in addresses: the store answers again")
        self._failing = False
