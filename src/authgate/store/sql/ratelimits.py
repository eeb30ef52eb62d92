"""`SqlRateLimits`: the `RateLimits` Protocol on the SQL store's database, shared by replicas.

A companion of `SqlStore` (like `SqlAuditStore`): same engine, same transaction rules. One
row per (limiter, digest of the key, fixed window): keys are IP addresses and usernames,
which have no business sitting in clear in a table nobody reads. The digest is an
HMAC-SHA-256 under a key derived from `secret_key` when one is given (authgate always gives
it): a plain hash of an IPv4 address or a common username is undone by hashing every
candidate.

**Window.** Fixed windows of `window` seconds on the wall clock (shared by the replicas: keep
their clocks in step, NTP), read as the two-window weighted estimate of
`authgate.oauth.ratelimit.weighted_wait`: `current + previous * (1 - elapsed / window)`.
An attempt is counted only if it fits, by one statement that settles races between replicas
in the database: `INSERT … ON CONFLICT DO UPDATE SET hits = hits + 1 WHERE hits < cap
RETURNING hits`, where `cap` is what the previous window leaves of the limit. No row back
means refused, and refused attempts are not counted (as in memory).

**Failures.** Fail-open, with a WARNING: see `authgate.oauth.ratelimit`. `purge_expired`
(housekeeping) raises `StoreError` like the other purges.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from authgate.errors import StoreError
from authgate.oauth.ratelimit import weighted_wait
from authgate.store.sql import tables as t
from authgate.store.sql.store import SqlStore

__all__ = ["SqlRateLimits"]

LIMITS = t.rate_limits

log = logging.getLogger("authgate")


def _digest(key: str, secret: bytes | None) -> str:
    if secret is None:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()
    return hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()


class SqlRateLimits:
    """`RateLimits` named `name` (e.g. "logins") in the `rate_limits` table."""

    def __init__(self, store: SqlStore, name: str, limit: int, window: int = 60, *,
                 key_secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        if limit < 1 or window < 1:
            raise ValueError(f"limit and window must be at least 1, not {limit} and {window}")
        self.name = name
        self.limit = limit
        self.window = window
        self._store = store
        self._clock = clock  # wall-clock seconds: the windows are shared between replicas
        self._key_secret = key_secret

    # -- the RateLimits Protocol --------------------------------------------------------------

    async def hit(self, key: str) -> bool:
        start, elapsed = self._now()
        digest = _digest(key, self._key_secret)
        try:
            async with self._store._tx() as conn:  # same package: the store's transaction rules
                previous = await self._hits(conn, digest, start - self.window)
                # this window's count must stay below what the previous one leaves (hits are whole)
                cap = math.ceil(self.limit - previous * (1 - elapsed / self.window))
                if cap < 1:
                    return False
                counted = (await conn.execute(self._count(digest, start, cap))).first()
        except StoreError as exc:
            log.warning("rate limit %s not checked, attempt let through: %s", self.name, exc)
            return True
        return counted is not None

    async def retry_after(self, key: str) -> int:
        start, elapsed = self._now()
        digest = _digest(key, self._key_secret)
        try:
            async with self._store._tx(write=False) as conn:
                previous = await self._hits(conn, digest, start - self.window)
                current = await self._hits(conn, digest, start)
        except StoreError as exc:
            log.warning("rate limit %s not checked, attempt let through: %s", self.name, exc)
            return 0
        return weighted_wait(self.limit, self.window, previous, current, elapsed)

    async def reset(self, key: str) -> None:
        try:
            async with self._store._tx() as conn:
                await conn.execute(sa.delete(LIMITS).where(LIMITS.c.limiter == self.name,
                                                           LIMITS.c.key_hash == _digest(key, self._key_secret)))
        except StoreError as exc:  # the attempts then count until their windows pass
            log.warning("rate limit %s not reset: %s", self.name, exc)

    # -- housekeeping -------------------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Delete this limiter's windows older than the previous one; returns how many."""
        start, _ = self._now()
        async with self._store._tx() as conn:
            result = await conn.execute(sa.delete(LIMITS).where(
                LIMITS.c.limiter == self.name, LIMITS.c.window_start < start - self.window))
        return result.rowcount

    # -- inside -------------------------------------------------------------------------------

    def _now(self) -> tuple[int, float]:
        """The current window's start (whole seconds) and how far into it we are."""
        now = self._clock()
        start = int(now // self.window) * self.window
        return start, now - start

    async def _hits(self, conn: AsyncConnection, digest: str, start: int) -> int:
        return int(await conn.scalar(sa.select(LIMITS.c.hits).where(
            LIMITS.c.limiter == self.name, LIMITS.c.key_hash == digest,
            LIMITS.c.window_start == start)) or 0)

    def _count(self, digest: str, start: int, cap: int) -> sa.Insert:
        values = {"limiter": self.name, "key_hash": digest, "window_start": start, "hits": 1}
        return self._store.upsert(LIMITS).values(values).on_conflict_do_update(
            index_elements=["limiter", "key_hash", "window_start"],
            set_={"hits": LIMITS.c.hits + 1}, where=LIMITS.c.hits < cap,
        ).returning(LIMITS.c.hits)
