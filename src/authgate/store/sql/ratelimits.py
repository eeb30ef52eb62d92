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

**Failures: never open.** Each limiter also keeps this process's share of the counts, in the
same windows and by the same arithmetic (`_LocalCounts`). While the store answers, that share
is never more than the shared count, so it refuses nothing the store would allow (and an
attempt it refuses spares the database a write). When the store cannot count (SQLite "database is locked", PostgreSQL down: any `StoreError`), the
in-process count decides alone — one WARNING when that starts, one INFO when the store
answers again — and the store is tried again only after `STORE_RETRY_AFTER` seconds, so an
outage does not add a busy timeout to every attempt. A refusal is never turned into a pass,
nor a database hiccup into "too many attempts" for everyone. `purge_expired` (housekeeping)
raises `StoreError` like the other purges.
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

STORE_RETRY_AFTER = 5.0  # seconds the in-process count decides alone after a store failure


def _digest(key: str, secret: bytes | None) -> str:
    if secret is None:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()
    return hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()


class SqlRateLimits:
    """`RateLimits` named `name` (e.g. "logins") in the `rate_limits` table."""

    def __init__(self, store: SqlStore, name: str, limit: int, window: int = 60, *,
                 key_secret: bytes | None = None, clock: Callable[[], float] = time.time,
                 store_retry_after: float = STORE_RETRY_AFTER) -> None:
        if limit < 1 or window < 1:
            raise ValueError(f"limit and window must be at least 1, not {limit} and {window}")
        self.name = name
        self.limit = limit
        self.window = window
        self._store = store
        self._clock = clock  # wall-clock seconds: the windows are shared between replicas
        self._key_secret = key_secret
        self._local = _LocalCounts(limit, window)  # decides alone when the store cannot
        self._store_down_until: float | None = None  # set while the store failed
        self._store_retry_after = store_retry_after

    # -- the RateLimits Protocol --------------------------------------------------------------

    async def hit(self, key: str) -> bool:
        if self._local.wait(key, *self._now()) > 0:  # this process alone has seen enough
            return False
        if self._store_resting():
            return self._local.hit(key, *self._now())
        try:
            counted = await self._count_in_store(key)
        except StoreError as exc:
            self._store_failed(exc)
            return self._local.hit(key, *self._now())
        self._store_answered()
        if counted:
            self._local.count(key, self._now()[0])
        return counted

    async def retry_after(self, key: str) -> int:
        start, elapsed = self._now()
        local = self._local.wait(key, start, elapsed)
        if self._store_resting():
            return local
        digest = _digest(key, self._key_secret)
        try:
            async with self._store._tx(write=False) as conn:
                previous = await self._hits(conn, digest, start - self.window)
                current = await self._hits(conn, digest, start)
        except StoreError as exc:
            self._store_failed(exc)
            return local
        return max(local, weighted_wait(self.limit, self.window, previous, current, elapsed))

    async def reset(self, key: str) -> None:
        self._local.reset(key)
        if self._store_resting():
            return  # the stored attempts then count until their windows pass
        try:
            async with self._store._tx() as conn:
                await conn.execute(sa.delete(LIMITS).where(LIMITS.c.limiter == self.name,
                                                           LIMITS.c.key_hash == _digest(key, self._key_secret)))
        except StoreError as exc:
            self._store_failed(exc)

    # -- housekeeping -------------------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Delete this limiter's windows older than the previous one; returns how many."""
        start, _ = self._now()
        async with self._store._tx() as conn:
            result = await conn.execute(sa.delete(LIMITS).where(
                LIMITS.c.limiter == self.name, LIMITS.c.window_start < start - self.window))
        return result.rowcount

    # -- inside -------------------------------------------------------------------------------

    async def _count_in_store(self, key: str) -> bool:
        start, elapsed = self._now()
        digest = _digest(key, self._key_secret)
        async with self._store._tx() as conn:  # same package: the store's transaction rules
            previous = await self._hits(conn, digest, start - self.window)
            # this window's count must stay below what the previous one leaves (hits are whole)
            cap = math.ceil(self.limit - previous * (1 - elapsed / self.window))
            if cap < 1:
                return False
            return (await conn.execute(self._count(digest, start, cap))).first() is not None

    def _store_resting(self) -> bool:
        return self._store_down_until is not None and time.monotonic() < self._store_down_until

    def _store_failed(self, exc: StoreError) -> None:
        if self._store_down_until is None:  # logged once per outage
            log.warning("rate limit %s: the store cannot count (%s); this process counts alone "
                        "until it can", self.name, exc)
        self._store_down_until = time.monotonic() + self._store_retry_after

    def _store_answered(self) -> None:
        if self._store_down_until is not None:
            log.info("rate limit %s: counted in the store again", self.name)
            self._store_down_until = None

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


class _LocalCounts:
    """This process's attempts per key in the store's fixed windows: (window start, previous
    window's count, current count), read by the same `weighted_wait`. Counted when the store
    counted (so never more than the store holds while it answers) and when it cannot answer."""

    def __init__(self, limit: int, window: int, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._counts: dict[str, tuple[int, int, int]] = {}

    def wait(self, key: str, start: int, elapsed: float) -> int:
        previous, current = self._windows(key, start)
        return weighted_wait(self.limit, self.window, previous, current, elapsed)

    def hit(self, key: str, start: int, elapsed: float) -> bool:
        """Count one attempt if it fits (no await: atomic on the event loop)."""
        if self.wait(key, start, elapsed) > 0:
            return False
        self.count(key, start)
        return True

    def count(self, key: str, start: int) -> None:
        previous, current = self._windows(key, start)
        if key not in self._counts and len(self._counts) >= self._max_keys:
            self._evict(start)
        self._counts[key] = (start, previous, current + 1)

    def reset(self, key: str) -> None:
        self._counts.pop(key, None)

    def _windows(self, key: str, start: int) -> tuple[int, int]:
        at, previous, current = self._counts.get(key, (start, 0, 0))
        if at == start:
            return previous, current
        return (current, 0) if at == start - self.window else (0, 0)

    def _evict(self, start: int) -> None:
        for key in [k for k, (at, _, _) in self._counts.items() if at < start - self.window]:
            del self._counts[key]
