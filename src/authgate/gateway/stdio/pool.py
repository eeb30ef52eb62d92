"""Which stdio server processes run, for whom, and for how long.

Every child belongs to one caller, the (subject, client_id) of the token that caused it to
start, and only ever serves that caller: a session id or a `requestState` handle presented
by anyone else is treated as unknown. Limits: `max_children` overall and
`max_per_identity` per caller; at the per-caller limit the caller's least recently used
idle child is stopped to make room, otherwise the request is refused (503, `ChildLimit`).
Children idle longer than `idle_timeout` are stopped by `reap()`. A child is idle when no
request is in flight, no legacy GET stream is open and no `subscriptions/listen` stream
holds it (`hold()`).

Spares (`spares` per caller, `upstream_stdio_spares`): after a caller's child starts, another
process of the command is started for that caller in the background, so that its next session
(or new stateless child) is handed a process that has already loaded, instead of waiting for the
command's start-up. A spare is started for the caller only, with the caller's environment, and
is never shared. It counts toward `max_children` but not toward `max_per_identity`; it is
stopped first when room is needed, and like any idle child after `idle_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from authgate.gateway.stdio.child import StdioChild
from authgate.gateway.stdio.errors import ChildLimit
from authgate.gateway.stdio.resume import StreamLog
from authgate.store.models import Owner

__all__ = ["ChildPool", "LegacySession", "Owner"]

logger = logging.getLogger("authgate.stdio")
MAX_BUFFERED = 1000  # messages held for a legacy session's GET stream while none is open


@dataclass(eq=False)
class LegacySession:
    """A stateful (initialize-handshake) MCP session: one child, owned by one caller."""

    session_id: str
    owner: Owner
    child: StdioChild
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    stream_open: bool = False
    ended: bool = False
    streams: StreamLog | None = None  # 2025-11-25 sessions: resumable POST streams (resume.py)

    def push(self, message: dict[str, Any]) -> None:
        """A message for the GET stream (2025-03-26 transports §Listening for Messages)."""
        if self.outbox.qsize() >= MAX_BUFFERED:
            logger.warning(
                "session %s: no GET stream is reading; dropped %s", self.session_id[:8], message.get("method")
            )
            return
        self.outbox.put_nowait(message)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.outbox.put_nowait(None)  # closes an open GET stream
            if self.streams is not None:
                self.streams.close()


@dataclass(eq=False)
class _Entry:
    owner: Owner
    session: LegacySession | None = None
    capabilities: str | None = None  # stateless children: the client capabilities they were initialized with
    held: int = 0  # open `subscriptions/listen` streams bound to this child
    spare: bool = False  # started ahead for its owner, not handed out yet


class ChildPool:
    def __init__(
        self,
        spawn: Callable[[Owner], StdioChild],
        *,
        max_children: int,
        max_per_identity: int,
        idle_timeout: float,
        spares: int = 0,
    ) -> None:
        self._spawn = spawn
        self.max_children = max_children
        self.max_per_identity = max_per_identity
        self.idle_timeout = idle_timeout
        self.spares = spares
        self.entries: dict[StdioChild, _Entry] = {}
        self.sessions: dict[str, LegacySession] = {}
        self._starting: set[asyncio.Task[None]] = set()  # spares being started

    def owner_of(self, child: StdioChild) -> Owner | None:
        entry = self.entries.get(child)
        return entry.owner if entry is not None else None

    def entry(self, child: StdioChild) -> _Entry | None:
        return self.entries.get(child)

    async def start_child(self, owner: Owner, capabilities: str | None = None) -> StdioChild:
        """A child for `owner` (its spare when one is running), within the limits; a new spare
        for `owner` is then started in the background."""
        spare = next((c for c, e in self.entries.items() if e.spare and e.owner == owner and c.alive), None)
        if spare is not None:
            await self._make_room(owner, spare)
            entry = self.entries[spare]
            entry.spare, entry.capabilities = False, capabilities
            spare.last_used = time.monotonic()
        else:
            await self._make_room(owner)
            spare = await self._start(owner, _Entry(owner, capabilities=capabilities))
        self._start_spare(owner)
        return spare

    async def _start(self, owner: Owner, entry: _Entry) -> StdioChild:
        child = self._spawn(owner)
        self.entries[child] = entry  # the slot is taken before any await
        child.on_exit = self._exited
        try:
            await child.start()
        except BaseException:
            self.entries.pop(child, None)
            raise
        return child

    def _start_spare(self, owner: Owner) -> None:
        """Start spares for `owner` in the background, up to `spares`, only where there is room."""
        have = sum(1 for e in self.entries.values() if e.owner == owner and e.spare)
        for _ in range(self.spares - have):
            if len(self.entries) >= self.max_children:
                return
            task = asyncio.get_running_loop().create_task(self._spare(owner))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _spare(self, owner: Owner) -> None:
        try:
            await self._start(owner, _Entry(owner, spare=True))
        except Exception as exc:  # a spare that cannot start is no request's failure
            logger.warning("stdio bridge: a spare process could not start (%s)", exc)

    async def _make_room(self, owner: Owner, taking: StdioChild | None = None) -> None:
        mine = [c for c, e in self.entries.items() if e.owner == owner and not e.spare]
        if len(mine) >= self.max_per_identity:
            idle = [c for c in mine if self._idle(c)]
            if not idle:
                raise ChildLimit(
                    f"this client already runs {len(mine)} MCP server processes (the limit); "
                    "end a session (DELETE) or wait for one to finish"
                )
            victim = min(idle, key=lambda c: c.last_used)
            logger.info("%s: stopped to make room for a new one for the same caller", victim.label)
            await self.stop(victim)
        if taking is None and len(self.entries) >= self.max_children:
            spares = [c for c, e in self.entries.items() if e.spare]
            if spares:  # a spare (anyone's) makes room before a request is refused
                await self.stop(min(spares, key=lambda c: c.last_used))
        if taking is None and len(self.entries) >= self.max_children:
            raise ChildLimit(f"authgate runs {len(self.entries)} MCP server processes (the limit); try again later")

    def _idle(self, child: StdioChild) -> bool:
        entry = self.entries.get(child)
        if entry is None or child.exchanges or entry.held:  # a request waiting for input responses is pending too
            return False
        return not (entry.session is not None and entry.session.stream_open)

    @contextlib.contextmanager
    def hold(self, child: StdioChild) -> Iterator[None]:
        """Keep `child` from being reaped or stopped to make room while a stream depends on it."""
        entry = self.entries.get(child)
        if entry is not None:
            entry.held += 1
        try:
            yield
        finally:
            if entry is not None:
                entry.held -= 1
            child.last_used = time.monotonic()  # idle from now on, not from its last message

    def bind_session(self, session: LegacySession) -> None:
        self.sessions[session.session_id] = session
        entry = self.entries.get(session.child)
        if entry is not None:
            entry.session = session
        session.child.unsolicited = session.push

    def session_for(self, session_id: str, owner: Owner) -> LegacySession | None:
        """The live session `session_id` if `owner` opened it; None for anyone else (→ 404)."""
        session = self.sessions.get(session_id)
        if session is None or session.owner != owner or session.ended or not session.child.alive:
            return None
        return session

    def stateless_children(self, owner: Owner, capabilities: str) -> list[StdioChild]:
        return [
            c
            for c, e in self.entries.items()
            if e.owner == owner
            and e.session is None
            and e.capabilities == capabilities
            and c.alive
            and c.init_result is not None
        ]

    def _exited(self, child: StdioChild) -> None:
        """A child ended (crash or stop): its session is gone, so the client re-initializes."""
        entry = self.entries.pop(child, None)
        if entry is not None and entry.session is not None:
            entry.session.end()
            self.sessions.pop(entry.session.session_id, None)

    async def stop(self, child: StdioChild) -> None:
        entry = self.entries.pop(child, None)
        if entry is not None and entry.session is not None:
            entry.session.end()
            self.sessions.pop(entry.session.session_id, None)
        await child.terminate()

    async def reap(self, now: float | None = None) -> int:
        """Stop children idle for longer than `idle_timeout`; returns how many."""
        now = time.monotonic() if now is None else now
        doomed = [c for c in list(self.entries) if self._idle(c) and now - c.last_used > self.idle_timeout]
        for child in doomed:
            logger.info("%s: idle for %.0f s; stopped", child.label, now - child.last_used)
            await self.stop(child)
        return len(doomed)

    async def close(self) -> None:
        """Stop every child (at shutdown), concurrently, each bounded by its SIGKILL deadline."""
        for task in list(self._starting):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._starting, return_exceptions=True)
        children = list(self.entries)
        for child in children:
            entry = self.entries.pop(child, None)
            if entry is not None and entry.session is not None:
                entry.session.end()
        self.sessions.clear()
        with contextlib.suppress(Exception):
            await asyncio.gather(*(c.terminate() for c in children), return_exceptions=True)
