"""`sql_stores`: the `Stores` bundle on one SQL database, SQLite or PostgreSQL.

Every store in it is a companion of one `SqlStore` (same engine, same transaction rules), so
opening and closing the bundle opens and closes that one engine.
"""

from __future__ import annotations

from authgate.store.bundle import Stores
from authgate.store.sql.attempts import SqlAttemptStore
from authgate.store.sql.audit import SqlAuditStore
from authgate.store.sql.connections import SqlConnectionStore
from authgate.store.sql.known_addresses import SqlKnownAddresses
from authgate.store.sql.ratelimits import SqlRateLimits, StoreOutage
from authgate.store.sql.sessions import SqlSessionBindings
from authgate.store.sql.store import SqlStore
from authgate.store.sql.upstream_tokens import SqlUpstreamTokenStore

__all__ = ["SqlRateLimitStore", "sql_stores"]


class SqlRateLimitStore:
    """`RateLimitStore` in the `rate_limits` table. Its limiters and known addresses share one
    `StoreOutage`: one failure of the store rests them all together, logged once."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self.outage = StoreOutage()
        self._made: list[SqlRateLimits | SqlKnownAddresses] = []  # what purge_expired purges

    def limiter(self, name: str, limit: int, window: int = 60, *, key_secret: bytes | None = None) -> SqlRateLimits:
        made = SqlRateLimits(self._store, name, limit, window, key_secret=key_secret, outage=self.outage)
        self._made.append(made)
        return made

    def known_addresses(self, *, key_secret: bytes | None = None) -> SqlKnownAddresses:
        made = SqlKnownAddresses(self._store, key_secret=key_secret, outage=self.outage)
        self._made.append(made)
        return made

    async def purge_expired(self) -> int:
        return sum([await made.purge_expired() for made in self._made])


def sql_stores(database_url: str, *, migrate: bool = True) -> Stores:
    """The bundle on `database_url` (not opened yet: `await stores.open()`)."""
    store = SqlStore(database_url, migrate=migrate)
    return Stores(
        core=store,
        audit=SqlAuditStore(store),
        upstream_tokens=SqlUpstreamTokenStore(store),
        session_bindings=SqlSessionBindings(store),
        rate_limits=SqlRateLimitStore(store),
        attempts=SqlAttemptStore(store),
        connections=SqlConnectionStore(store),
    )
