"""`GracefulServer` (server/shutdown.py) on a real socket, for what the drain cannot answer: a
request outside the MCP endpoint that is still running after the drain and `shutdown_timeout`
is cut: its connection closed, one WARNING, no "Exception in ASGI application" traceback and
no text/plain 500. The whole stop with calls in flight is tests/integration/test_shutdown_drain.py.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import httpx
import pytest
import uvicorn

from authgate.gateway.drain import Drain
from authgate.server.shutdown import GracefulServer
from support import requirements as req
from support.ports import free_port

WAIT = 20.0


async def stuck(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    """An app whose every request runs for an hour (think of a slow sign-in page)."""
    if scope["type"] == "http":
        await asyncio.sleep(3600)


@pytest.mark.requirement(req.ISSUE19_SIGTERM_DRAIN)
def test_a_request_still_running_after_the_drain_and_the_timeout_is_cut_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    config = uvicorn.Config(
        stuck, host="127.0.0.1", port=port, lifespan="off", timeout_graceful_shutdown=1, log_config=None
    )  # as `authgate serve`: uvicorn's records reach the root logger
    server = GracefulServer(config, drain=Drain(), drain_seconds=0.5)
    thread = threading.Thread(target=server.run, daemon=True)  # not the main thread: no signal handlers
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(f"http://127.0.0.1:{port}/slow", timeout=WAIT))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    client = threading.Thread(target=call, daemon=True)
    client.start()
    while not server.server_state.tasks and time.monotonic() < deadline:
        time.sleep(0.02)
    server.should_exit = True  # what SIGTERM sets
    thread.join(WAIT)
    client.join(WAIT)
    assert not thread.is_alive() and not client.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.HTTPError), outcome  # closed, not a 500
    messages = [r.getMessage() for r in caplog.records]
    assert any("cut 1 request(s) still running 1 s after the drain" in m for m in messages), messages
    assert not [r for r in caplog.records if r.exc_info], "a cut request is not an error"
    assert not any("Exception in ASGI application" in m for m in messages)
