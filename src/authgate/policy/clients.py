"""Which clients get a refused `tools/call` answered as a tool error (`tool_error_clients`).

ChatGPT acts on `_meta["mcp/www_authenticate"]` in a tool result (OpenAI Apps SDK, tool-level
sign-in); the MCP clients that follow the spec act on the HTTP 403 challenge instead. A client
is recognised by its OAuth `client_id` (ChatGPT's CIMD document URL), or by the MCP clientInfo
name it sends (`openai-mcp`): in every request's `_meta` from 2026-07-28 on, and in `initialize`
before that — remembered per session id, bounded. Only the answer's form depends on this, never
the decision.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from authgate.guard.identity import Identity
from authgate.policy.operations import client_name, header

if TYPE_CHECKING:
    from starlette.types import Scope

MAX_SESSIONS = 10_000


class ClientRecognizer:
    def __init__(self, entries: list[str], max_sessions: int = MAX_SESSIONS) -> None:
        self.entries = tuple(entries)
        self.everyone = "*" in self.entries
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._max = max_sessions

    def wants_tool_error(self, scope: Scope, identity: Identity | None, message: dict[str, Any]) -> bool:
        if self.everyone or (identity is not None and identity.client_id in self.entries):
            return True
        if not self.entries:
            return False
        name = client_name(message)
        if name is None and (session := header(scope, b"mcp-session-id")) is not None:
            name = self._sessions.get(session)
        return name is not None and any(name.startswith(e) for e in self.entries)

    def remember(self, session_id: str | None, message: dict[str, Any]) -> None:
        """After an `initialize` answered with a session id: that session's client name."""
        name = client_name(message)
        if session_id is None or name is None or not self.entries:
            return
        self._sessions[session_id] = name
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
