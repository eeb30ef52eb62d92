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

**Failures: never open.** Each limiter also counts this process's attempts in an exact
sliding window (`RateLimiter`, same limit and window), and an attempt needs both counts to
let it through. This process's attempts are a part of the shared ones, so while the store
answers this adds only the exact window's rule (never more than `limit` in any `window`
seconds here) to the weighted estimate, and an attempt it refuses spares the database a
write. When the store cannot count (SQLite "database is locked", PostgreSQL down: any
`StoreError`), the in-process count decides alone: one WARNING when that starts, one INFO
when the store counts again. The limiters of one store share a `StoreOutage`: after a
failure they all count in-process for `STORE_RETRY_AFTER` seconds before trying the store
again, so an outage costs one busy timeout, not one per limiter per attempt. A refusal is
never turned into a pass, nor a database hiccup into "too many attempts" for everyone.
`purge_expired` (housekeeping) raises `StoreError` like the other purges.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable

import sqlalchemy as sa

from authgate.errors import StoreError
from authgate.oauth.ratelimit import RateLimiter, weighted_wait
from authgate.store import durability
from authgate.store.sql import tables as t
from authgate.store.sql.database import Connection
from authgate.store.sql.sqlite_prepared import prepared
from authgate.store.sql.store import SqlStore

__all__ = ["SqlRateLimits", "StoreOutage"]

LIMITS = t.rate_limits
_HITS = prepared(
    sa.select(LIMITS.c.hits).where(
        LIMITS.c.limiter == sa.bindparam("limiter"),
        LIMITS.c.key_hash == sa.bindparam("key_hash"),
        LIMITS.c.window_start == sa.bindparam("window_start"),
    )
)

log = logging.getLogger("authgate")

STORE_RETRY_AFTER = 5.0  # seconds the in-process count decides alone after a store failure


def _digest(key: str, secret: bytes | None) -> str:
    if secret is None:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()
    return hmac.new(secret, key.encode("utf-8"), hashlib.sha256).hexdigest()


class StoreOutage:
    """Whether the store failed lately, shared by the limiters on one store: after a failure
    they all count in this process for `rest` seconds, then try the store again."""

    def __init__(self, rest: float = STORE_RETRY_AFTER) -> None:
        self.rest = rest
        self._until: float | None = None  # set while the store fails

    def resting(self) -> bool:
        return self._until is not None and time.monotonic() < self._until

    def failed(self, what: str, exc: StoreError) -> None:
        if self._until is None:  # logged once per outage
            log.warning("%s: the store cannot count (%s); this process counts alone until it can", what, exc)
        self._until = time.monotonic() + self.rest

    def answered(self) -> None:
        if self._until is not None:
            log.info("rate limits: counted in the store again")
            self._until = None


class SqlRateLimits:
    """`RateLimits` named `name` (e.g. "logins") in the `rate_limits` table."""

    def __init__(
        self,
        store: SqlStore,
        name: str,
        limit: int,
        window: int = 60,
        *,
        key_secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
        outage: StoreOutage | None = None,
    ) -> None:
        if limit < 1 or window < 1:
            raise ValueError(f"limit and window must be at least 1, not {limit} and {window}")
        self.name = name
        self.limit = limit
        self.window = window
        self._store = store
        self._clock = clock  # wall-clock seconds: the windows are shared between replicas
        self._key_secret = key_secret
        self._local = RateLimiter(limit, window, clock=clock)  # decides alone when the store cannot
        self._outage = outage or StoreOutage()

    # -- the RateLimits Protocol --------------------------------------------------------------

    async def hit(self, key: str) -> bool:
        if await self._local.retry_after(key) > 0:  # this process alone has seen enough
            return False
        if self._outage.resting():
            return await self._local.hit(key)
        try:
            counted = await self._count_in_store(key)
        except StoreError as exc:
            self._outage.failed(f"rate limit {self.name}", exc)
            return await self._local.hit(key)
        self._outage.answered()
        return counted and await self._local.hit(key)

    async def retry_after(self, key: str) -> int:
        local = await self._local.retry_after(key)
        if self._outage.resting():
            return local
        start, elapsed = self._now()
        digest = _digest(key, self._key_secret)
        try:
            async with self._store._tx(write=False, prepared=True) as conn:
                previous = await self._hits(conn, digest, start - self.window)
                current = await self._hits(conn, digest, start)
        except StoreError as exc:
            self._outage.failed(f"rate limit {self.name}", exc)
            return local
        return max(local, weighted_wait(self.limit, self.window, previous, current, elapsed))

    async def reset(self, key: str) -> None:
        await self._local.reset(key)
        if self._outage.resting():
            return  # the stored attempts then count until their windows pass
        try:
            with durability.relaxed():  # as a hit's count (_count_in_store)
                await self._forget(key)
        except StoreError as exc:
            self._outage.failed(f"rate limit {self.name}", exc)

    async def _forget(self, key: str) -> None:
        async with self._store._tx() as conn:
            await conn.execute(
                sa.delete(LIMITS).where(
                    LIMITS.c.limiter == self.name, LIMITS.c.key_hash == _digest(key, self._key_secret)
                )
            )

    # -- housekeeping -------------------------------------------------------------------------

    async def purge_expired(self) -> int:
        """Delete this limiter's windows older than the previous one; returns how many."""
        start, _ = self._now()
        async with self._store._tx() as conn:
            result = await conn.execute(
                sa.delete(LIMITS).where(LIMITS.c.limiter == self.name, LIMITS.c.window_start < start - self.window)
            )
        return result.rowcount

    # -- inside -------------------------------------------------------------------------------

    async def _count_in_store(self, key: str) -> bool:
        start, elapsed = self._now()
        digest = _digest(key, self._key_secret)
        # a count a power loss may take back (no answer waits for its flush: store/durability.py)
        with durability.relaxed():
            return await self._count_hit(digest, start, elapsed)

    async def _count_hit(self, digest: str, start: int, elapsed: float) -> bool:
        # same package: the store's transaction rules. `single`: on PostgreSQL the previous
        # window's count and the upsert each commit on their own (READ COMMITTED gives each its
        # own snapshot within a transaction too; the upsert alone settles races): no BEGIN/COMMIT
        async with self._store._tx(prepared=True, single=True) as conn:
            previous = await self._hits(conn, digest, start - self.window)
            # this window's count must stay below what the previous one leaves (hits are whole)
            cap = math.ceil(self.limit - previous * (1 - elapsed / self.window))
            if cap < 1:
                return False
            counted = {"limiter": self.name, "key_hash": digest, "window_start": start, "hits": 1, "cap": cap}
            return (await conn.execute(self._count, counted)).first() is not None

    def _now(self) -> tuple[int, float]:
        """The current window's start (whole seconds) and how far into it we are."""
        now = self._clock()
        start = int(now // self.window) * self.window
        return start, now - start

    async def _hits(self, conn: Connection, digest: str, start: int) -> int:
        return int(await conn.scalar(_HITS, {"limiter": self.name, "key_hash": digest, "window_start": start}) or 0)

    @functools.cached_property
    def _count(self) -> sa.Insert:
        """One more hit of (limiter, key_hash, window_start) if it stays below `cap` (the
        parameters), returning the count; no row back means refused. Built once: building it
        costs more than running it."""
        return prepared(
            self._store.upsert(LIMITS)
            .on_conflict_do_update(
                index_elements=["limiter", "key_hash", "window_start"],
                set_={"hits": LIMITS.c.hits + 1},
                where=LIMITS.c.hits < sa.bindparam("cap", type_=sa.Integer),
            )
            .returning(LIMITS.c.hits)
        )
