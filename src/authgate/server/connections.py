"""`OpenConnections`: the connections one server holds, which of them are idle, and who
makes room when a new one arrives past `max_connections`.

    new connection ─┬─ under the cap ───────────────────────────> admitted
                    ├─ at the cap, some connection idle ─> the one idle longest is
                    │                                      closed; the new one admitted
                    └─ at the cap, every one busy ──────> turned away (503, then closed)

Idle means serving no request: waiting for a first request head, between two requests of
a keep-alive connection, or still receiving a head (a slowloris client is idle for as long
as it dribbles). Busy means a request head is complete and its answer is not. So sockets
that never finish a request can hold no seat a real request needs: each newcomer closes
the oldest of them, and the header-read timeout (server/http_protocol.py) ends the rest.
Only when every seat serves a request is a newcomer turned away.

The registry is plain bookkeeping on the event loop's thread, one per uvicorn server
(keyed by its `ServerState`); the protocol calls it from its callbacks.
"""

from __future__ import annotations

import weakref
from typing import Protocol


class Seat(Protocol):
    """What the registry asks of a connection: to go, when it must make room."""

    def make_room(self) -> None: ...


class OpenConnections:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: set[Seat] = set()
        self._idle: dict[Seat, None] = {}  # insertion order: the one idle longest first
        self.turned_away = 0  # connections answered 503 and not yet closed
        self.warned_at = float("-inf")  # when the cap was last logged (monotonic)

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, seat: Seat) -> bool:
        """Take `seat` in (idle), closing the longest-idle connection if the cap is reached;
        False when every open connection is busy: the caller turns `seat` away."""
        if len(self._open) >= self.limit:
            if not self._idle:
                return False
            oldest = next(iter(self._idle))
            self.leave(oldest)
            oldest.make_room()
        self._open.add(seat)
        self._idle[seat] = None
        return True

    def busy(self, seat: Seat) -> None:
        self._idle.pop(seat, None)

    def idle(self, seat: Seat) -> None:
        if seat in self._open:
            self._idle.pop(seat, None)
            self._idle[seat] = None  # now the youngest idle one

    def leave(self, seat: Seat) -> None:
        self._open.discard(seat)
        self._idle.pop(seat, None)


_BY_SERVER: weakref.WeakKeyDictionary[object, OpenConnections] = weakref.WeakKeyDictionary()


def connections_of(server_state: object, limit: int) -> OpenConnections:
    """The registry of the server `server_state` belongs to (uvicorn's ServerState, one per
    server), made on its first connection."""
    found = _BY_SERVER.get(server_state)
    if found is None:
        found = _BY_SERVER[server_state] = OpenConnections(limit)
    return found
