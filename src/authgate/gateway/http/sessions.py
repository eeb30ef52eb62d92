"""Who opened which MCP session: a session id is never authentication.

Legacy Streamable HTTP (2025-03-26 … 2025-11-25) lets a server assign `Mcp-Session-Id`;
anyone holding the id could otherwise use the session. The gateway binds each id the
upstream hands out to the (subject, client) that received it, and answers 404 to anyone
else presenting it — the same answer as for an unknown id, so a stolen id reveals nothing
(MCP 2025-11-25 security best practices: session hijacking). 2026-07-28 has no sessions.

Bindings live behind the `SessionBindings` Protocol, and `Owner` is the store's value
(`authgate.store.protocols`, `authgate.store.models`). `InMemorySessionBindings` keeps them
in process memory: several gateways then need sticky load balancing, and a gateway that
restarts answers 404 for the sessions it forgot (clients then start a new session, as the
transport requires of them). The store's `SessionBindingStore` (`Stores.session_bindings`,
`authgate.store.sql.sessions.SqlSessionBindings`) keeps them in the database, so that any
replica serves any session of an HTTP upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from authgate.store.models import Owner
from authgate.store.protocols import SessionBindings

__all__ = ["InMemorySessionBindings", "Owner", "SessionBindings"]


@dataclass(slots=True)
class _Binding:
    owner: Owner
    seen: float
    streams: int = 0


class InMemorySessionBindings:
    """Bindings in a dict ordered by last use; idle ones expire after `idle_ttl` seconds and
    at most `max_sessions` are kept (the least recently used idle one goes first)."""

    def __init__(
        self, idle_ttl: float = 3600.0, max_sessions: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_ttl = idle_ttl
        self.max_sessions = max_sessions
        self._clock = clock
        self._bindings: dict[str, _Binding] = {}

    def __len__(self) -> int:
        return len(self._bindings)

    async def owner(self, session_id: str) -> Owner | None:
        binding = self._bindings.get(session_id)
        if binding is None:
            return None
        now = self._clock()
        if binding.streams == 0 and now - binding.seen > self.idle_ttl:
            del self._bindings[session_id]
            return None
        self._touch(session_id, binding, now)
        return binding.owner

    async def bind(self, session_id: str, owner: Owner) -> Owner:
        existing = await self.owner(session_id)
        if existing is not None:
            return existing
        self._evict(self._clock())
        self._bindings[session_id] = _Binding(owner, self._clock())
        return owner

    async def hold(self, session_id: str) -> None:
        if (binding := self._bindings.get(session_id)) is not None:
            binding.streams += 1

    async def release(self, session_id: str) -> None:
        if (binding := self._bindings.get(session_id)) is not None:
            binding.streams = max(0, binding.streams - 1)
            self._touch(session_id, binding, self._clock())

    async def drop(self, session_id: str) -> None:
        self._bindings.pop(session_id, None)

    def _touch(self, session_id: str, binding: _Binding, now: float) -> None:
        binding.seen = now
        self._bindings[session_id] = self._bindings.pop(session_id)  # most recently used last

    def _evict(self, now: float) -> None:
        """Drop expired bindings from the old end, and the oldest idle ones past the cap."""
        excess = len(self._bindings) - self.max_sessions + 1
        doomed: list[str] = []
        for session_id, binding in self._bindings.items():
            if binding.streams:
                continue  # an open stream keeps its session alive
            if now - binding.seen > self.idle_ttl or len(doomed) < excess:
                doomed.append(session_id)
            else:
                break  # everything after this one was used more recently
        for session_id in doomed:
            del self._bindings[session_id]
