"""Spare processes (`upstream_stdio_spares`, pool.py): started ahead for a caller, handed to that
caller's next session, never to anyone else, and the first stopped when the bridge needs room."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from authgate.gateway.stdio.bridge import StdioBridge
from authgate.gateway.stdio.child import StdioChild
from authgate.guard.identity import Identity

from .conftest import DEMO, Asgi, identity, open_session, rpc

ALICE, BOB, CAROL = identity("alice"), identity("bob"), identity("carol")


async def who_runs(asgi: Asgi, session: str, who: Identity) -> dict[str, Any]:
    body = rpc("tools/call", {"name": "pid", "arguments": {}}, 2)
    reply = await asgi.post(who, body, {"mcp-session-id": session})
    return dict((await reply.answer())["result"]["structuredContent"])


async def spare_of(bridge: StdioBridge, who: Identity) -> StdioChild:
    """The caller's spare once it runs (bounded wait: it starts in the background)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for child, entry in bridge.pool.entries.items():
            if entry.spare and entry.owner.subject == who.subject and child.alive:
                return child
        await asyncio.sleep(0.05)
    raise AssertionError(f"no spare for {who.subject} within 20 s")


async def test_the_next_session_of_a_caller_gets_its_spare_and_no_one_else_does() -> None:
    bridge = StdioBridge([sys.executable, str(DEMO)], identity_env=True, max_children=3, spares=1)
    async with bridge:
        asgi = Asgi(bridge)
        first = await who_runs(asgi, await open_session(asgi, ALICE), ALICE)
        spare = await spare_of(bridge, ALICE)
        assert spare.pid != first["pid"] and spare.env["AUTHGATE_CALLER_SUBJECT"] == ALICE.subject
        bob = await who_runs(asgi, await open_session(asgi, BOB), BOB)  # bridge full: 3 processes
        assert bob["pid"] != spare.pid and bob["subject"] == BOB.subject
        second = await who_runs(asgi, await open_session(asgi, ALICE), ALICE)
        assert second == {"pid": spare.pid, "subject": ALICE.subject, "client_id": ALICE.client_id}
        assert not any(e.spare for e in bridge.pool.entries.values()), "no room left for another spare"


async def test_a_spare_makes_room_before_a_request_is_refused() -> None:
    bridge = StdioBridge([sys.executable, str(DEMO)], max_children=3, spares=1)
    async with bridge:
        asgi = Asgi(bridge)
        await open_session(asgi, ALICE)
        spare = await spare_of(bridge, ALICE)
        await open_session(asgi, BOB)  # the third process: the bridge is full, with Alice's spare in it
        assert len(bridge.pool.entries) == 3
        carol = await who_runs(asgi, await open_session(asgi, CAROL), CAROL)  # not refused: the spare made room
        assert carol["pid"] != spare.pid and spare not in bridge.pool.entries and spare.returncode is not None
