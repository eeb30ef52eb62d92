"""`SqlSessionBindings`: the `SessionBindingStore` Protocol (the gateway's session bindings) on
the SQL store's database.

With the bindings in the database every authgate replica knows every session, so a load
balancer may send any request of an HTTP upstream's session to any replica: the session
itself lives in the upstream, and who owns it lives here. A companion of `SqlStore` (like
`SqlAuditStore`): same engine, same transaction rules.

Stored per session: the SHA-256 of its id (a session id is a bearer-like secret, and secrets
are hashed at rest), the owner, and wall-clock times shared by the replicas (keep their
clocks in step, NTP; a few seconds of skew are harmless). A binding is live while
`now - last_seen <= idle_ttl` or `now <= held_until`:

- **Held streams.** How many streams are open is known only to the process relaying them,
  so a replica holding one keeps a lease, `held_until = now + lease_ttl`, renewed every
  `lease_ttl / 3` by a background task while any of its streams is open. A replica that dies
  stops renewing, and its sessions expire `lease_ttl` later (or `idle_ttl` after their last
  use, whichever comes later). A released lease is left to run out rather than cleared:
  another replica may hold a stream of the same session.
- **Cost.** The gateway asks `owner()` on every request that carries a session id. Positive
  answers are cached in the process for `cache_ttl` seconds (at most `cache_size` of them),
  and `last_seen` is written at most once per `touch_interval` (idle_ttl / 10, at most 60 s)
  per session, so a hot session costs no query most of the time. The idle clock may lag by
  that interval: a session expires between `idle_ttl - touch_interval` and `idle_ttl`
  after its last use.
- **Why the cache is safe.** Only positive answers are cached, each for the owner that the
  database returned: a cached entry never lets anyone but the session's own (subject,
  client) through, and an id bound on one replica is seen at once by every other. What the
  cache can delay is an end: a binding dropped or expired elsewhere may still be honoured
  here for `cache_ttl`, for its rightful owner only. The upstream has ended that session,
  so it answers 404, and the gateway then drops the binding here too. An id is never bound
  to someone else within that window: a binding needs a fresh id from the upstream.

`bind` is race-safe across replicas: `INSERT … ON CONFLICT DO NOTHING` then a read in the
same transaction, so of two replicas binding one id at once exactly one owner wins and both
are told who. `purge_expired` deletes what expired (for periodic housekeeping); `owner()`
also deletes the expired binding it meets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from authgate.errors import StoreError
from authgate.oauth import opaque  # a session id is a random secret too: its SHA-256 suffices
from authgate.store.models import Owner
from authgate.store.sql import tables as t
from authgate.store.sql.database import idempotent
from authgate.store.sql.store import SqlStore

__all__ = ["SqlSessionBindings"]

SESSIONS = t.session_bindings

log = logging.getLogger("authgate.gateway")

MAX_TOUCH_INTERVAL = 60.0
_RENEW_BATCH = 500  # ids per IN (...) list when renewing leases


@dataclass(slots=True)
class _Entry:
    """What this replica last read (or wrote) of one binding."""

    owner: Owner
    fetched: float
    last_seen: float
    held_until: float

    def live(self, now: float, idle_ttl: float) -> bool:
        return now - self.last_seen <= idle_ttl or now <= self.held_until


class SqlSessionBindings:
    """`SessionBindings` in the `session_bindings` table; see the module docstring.

    `owner`, `bind`, `drop` and `purge_expired` raise `StoreError` when the database fails;
    `hold` and `release` log it instead. Call `close()` at shutdown to stop the lease renewer.
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        idle_ttl: float = 3600.0,
        lease_ttl: float = 60.0,
        cache_ttl: float = 5.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if idle_ttl <= 0 or lease_ttl <= 0:
            raise ValueError(f"idle_ttl and lease_ttl must be positive, not {idle_ttl} and {lease_ttl}")
        if cache_ttl < 0 or cache_size < 0:
            raise ValueError(f"cache_ttl and cache_size must not be negative, not {cache_ttl} and {cache_size}")
        self.idle_ttl = idle_ttl
        self.lease_ttl = lease_ttl
        self.cache_ttl = cache_ttl  # 0: every lookup reads the database
        self.cache_size = cache_size
        self.touch_interval = min(idle_ttl / 10, MAX_TOUCH_INTERVAL)
        self._store = store
        self._clock = clock  # wall-clock seconds: the times are shared between replicas
        self._cache: dict[str, _Entry] = {}  # oldest first
        self._streams: dict[str, int] = {}  # open streams per session, in this process
        self._renewer: asyncio.Task[None] | None = None

    # -- the SessionBindings Protocol ---------------------------------------------------------

    @idempotent
    async def owner(self, session_id: str) -> Owner | None:
        now = self._clock()
        entry = self._fresh(session_id, now) or await self._load(session_id, now)
        if entry is None:
            return None
        if now - entry.last_seen >= self.touch_interval and not await self._touch(session_id, now):
            return None  # dropped meanwhile
        return entry.owner

    @idempotent
    async def bind(self, session_id: str, owner: Owner) -> Owner:
        now = self._clock()
        if (entry := self._fresh(session_id, now)) is not None:
            return entry.owner
        digest = opaque.digest(session_id)
        for _ in range(3):  # the winner's row read back, unless dropped in between: then again
            async with self._store._tx() as conn:  # same package: the store's transaction rules
                # An expired binding of this id gives way, as in memory; a live one wins.
                await conn.execute(sa.delete(SESSIONS).where(SESSIONS.c.session_hash == digest, self._expired(now)))
                await conn.execute(self._insert_new(digest, owner, now))
                row = (
                    (await conn.execute(sa.select(SESSIONS).where(SESSIONS.c.session_hash == digest)))
                    .mappings()
                    .first()
                )
            if row is not None:
                return self._remember(session_id, row, now).owner
        raise StoreError("an MCP session binding vanished while being bound, three times")

    async def hold(self, session_id: str) -> None:
        """Lease the session for a stream. A database failure is logged, not raised: the
        stream goes on (the session is live, it was just looked up) and the renewer retries."""
        now = self._clock()
        try:
            entry = self._cache.get(session_id) or await self._load(session_id, now)
            if entry is None:
                return  # not bound (any more): nothing to keep alive
            if entry.held_until - now < self.lease_ttl * 2 / 3:  # else a recent lease still runs
                await self._lease([session_id], now)
        except StoreError as exc:
            log.warning("could not lease an MCP session for its stream (retrying): %s", exc)
        self._streams[session_id] = self._streams.get(session_id, 0) + 1
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_while_held(), name="authgate session leases")

    async def release(self, session_id: str) -> None:
        """A database failure is logged, not raised: the idle clock then starts a little early."""
        count = self._streams.pop(session_id, 0)
        if count == 0:
            return  # never held, or dropped since
        if count > 1:
            self._streams[session_id] = count - 1
        now = self._clock()
        entry = self._cache.get(session_id)
        if entry is None or now - entry.last_seen >= self.touch_interval:
            try:
                await self._touch(session_id, now)  # idle from now on, as in memory
            except StoreError as exc:
                log.warning("could not record the end of an MCP session's stream: %s", exc)

    @idempotent
    async def drop(self, session_id: str) -> None:
        self._cache.pop(session_id, None)
        self._streams.pop(session_id, None)
        async with self._store._tx() as conn:
            await conn.execute(sa.delete(SESSIONS).where(SESSIONS.c.session_hash == opaque.digest(session_id)))

    # -- housekeeping -------------------------------------------------------------------------

    async def purge_expired(self, now: float | None = None) -> int:
        """Delete every expired binding; returns how many. Any replica may run it."""
        now = self._clock() if now is None else now
        async with self._store._tx() as conn:
            result = await conn.execute(sa.delete(SESSIONS).where(self._expired(now)))
        return result.rowcount

    async def renew_leases(self) -> None:
        """Extend the lease of every session with a stream open here (the renewer calls this)."""
        if self._streams:
            await self._lease(list(self._streams), self._clock())

    async def close(self) -> None:
        """Stop renewing leases (at shutdown): this replica's leases then run out."""
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    # -- inside -------------------------------------------------------------------------------

    def _fresh(self, session_id: str, now: float) -> _Entry | None:
        """The cached entry, if read recently and live as far as this replica knows."""
        entry = self._cache.get(session_id)
        if entry is None or not 0 <= now - entry.fetched < self.cache_ttl:  # stale, or the clock stepped back
            return None
        if not entry.live(now, self.idle_ttl) and session_id not in self._streams:
            return None  # perhaps renewed by another replica: ask the database
        return entry

    async def _load(self, session_id: str, now: float) -> _Entry | None:
        """Read the binding; an expired one is deleted (unless a stream here still holds it)."""
        digest = opaque.digest(session_id)
        async with self._store._tx(write=False) as conn:
            row = (await conn.execute(sa.select(SESSIONS).where(SESSIONS.c.session_hash == digest))).mappings().first()
        if row is None:
            self._cache.pop(session_id, None)
            return None
        entry = self._remember(session_id, row, now)
        if entry.live(now, self.idle_ttl) or session_id in self._streams:
            return entry
        self._cache.pop(session_id, None)
        async with self._store._tx() as conn:  # only if still expired: another replica may have used it
            await conn.execute(sa.delete(SESSIONS).where(SESSIONS.c.session_hash == digest, self._expired(now)))
        return None

    async def _touch(self, session_id: str, now: float) -> bool:
        """Record a use; False if the binding is gone."""
        async with self._store._tx() as conn:
            result = await conn.execute(
                sa.update(SESSIONS).where(SESSIONS.c.session_hash == opaque.digest(session_id)).values(last_seen=now)
            )
        if result.rowcount == 0:
            self._cache.pop(session_id, None)
            return False
        if (entry := self._cache.get(session_id)) is not None:
            entry.last_seen = now
        return True

    async def _lease(self, session_ids: Sequence[str], now: float) -> None:
        held_until = now + self.lease_ttl
        async with self._store._tx() as conn:
            for start in range(0, len(session_ids), _RENEW_BATCH):
                digests = [opaque.digest(s) for s in session_ids[start : start + _RENEW_BATCH]]
                await conn.execute(
                    sa.update(SESSIONS).where(SESSIONS.c.session_hash.in_(digests)).values(held_until=held_until)
                )
        for session_id in session_ids:
            if (entry := self._cache.get(session_id)) is not None:
                entry.held_until = held_until

    async def _renew_while_held(self) -> None:
        """Renew leases every lease_ttl / 3 while any stream is open here, then end."""
        while self._streams:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                await self.renew_leases()
            except StoreError as exc:  # the leases have 2/3 of their time left: retry next round
                log.warning("could not renew MCP session leases: %s", exc)

    def _remember(self, session_id: str, row: sa.RowMapping, now: float) -> _Entry:
        entry = _Entry(Owner(row["subject"], row["client_id"]), now, row["last_seen"], row["held_until"])
        self._cache.pop(session_id, None)  # re-inserted at the young end
        if self.cache_size:
            while len(self._cache) >= self.cache_size:
                del self._cache[next(iter(self._cache))]
            self._cache[session_id] = entry
        return entry

    def _expired(self, now: float) -> sa.ColumnElement[bool]:
        return sa.and_(SESSIONS.c.last_seen < now - self.idle_ttl, SESSIONS.c.held_until < now)

    def _insert_new(self, digest: str, owner: Owner, now: float) -> sa.Insert:
        values = {
            "session_hash": digest,
            "subject": owner.subject,
            "client_id": owner.client_id,
            "created_at": now,
            "last_seen": now,
            "held_until": 0.0,
        }
        return self._store.upsert(SESSIONS).values(values).on_conflict_do_nothing(index_elements=["session_hash"])
