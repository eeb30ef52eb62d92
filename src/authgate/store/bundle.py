"""`Stores`: every store of one database, each behind its Protocol, in one frozen value.

A backend builds it (`authgate.store.sql.sql_stores`); callers ask it for the store they
need (`stores.clients`, `stores.audit`, …) and never for the backend's own class. Opening,
closing and housekeeping go through it too, so no caller knows what is behind.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from authgate.store.protocols import (
    AttemptStore,
    AuditStore,
    ClientStore,
    ConnectionStore,
    GrantStore,
    KeyStore,
    RateLimitStore,
    SessionBindingStore,
    Store,
    UpstreamTokenStore,
    UserStore,
)

__all__ = ["Purge", "Stores"]

Purge = tuple[str, Callable[[], Awaitable[int]]]  # (what, delete what expired; returns how many)


@dataclass(frozen=True, slots=True)
class Stores:
    """One database's stores. `core` is the authorization server's handle (`Authority.store`):
    clients, users, grants and signing keys, which also come one by one below."""

    core: Store
    audit: AuditStore
    upstream_tokens: UpstreamTokenStore
    session_bindings: SessionBindingStore
    rate_limits: RateLimitStore  # also the known sign-in addresses
    attempts: AttemptStore  # the connection timeline (oauth/attempts.py)
    connections: ConnectionStore  # third-party connections, remote registrations, connect links

    @property
    def clients(self) -> ClientStore:
        return self.core

    @property
    def users(self) -> UserStore:
        return self.core

    @property
    def grants(self) -> GrantStore:
        return self.core

    @property
    def keys(self) -> KeyStore:
        return self.core

    async def open(self) -> None:
        """Connect and check the schema is current (migrating first if the backend was asked to)."""
        await self.core.open()

    async def close(self) -> None:
        await self.session_bindings.close()
        await self.core.close()

    def purges(self) -> list[Purge]:
        """What housekeeping deletes besides expired grants and idle clients (which take the
        settings' ages): old rate-limit windows and known addresses, expired session bindings."""
        return [
            ("rate-limit windows and known sign-in addresses", self.rate_limits.purge_expired),
            ("MCP session bindings", self.session_bindings.purge_expired),
            ("client assertion jtis", self._purge_used_jtis),
            ("expired connect links", self._purge_connect_requests),
        ]

    async def _purge_used_jtis(self) -> int:
        return await self.core.purge_used_jtis(time.time())

    async def _purge_connect_requests(self) -> int:
        return await self.connections.purge_connect_requests(time.time())
