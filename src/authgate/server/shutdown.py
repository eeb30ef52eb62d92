"""`GracefulServer`: the uvicorn server of `authgate serve`, with a drain on SIGTERM and SIGINT.

uvicorn alone closes the listener, waits `timeout_graceful_shutdown` for every connection
(streams that never end by themselves included), cancels what is left (an "Exception in ASGI
application" traceback each, and a cut response without a JSON-RPC error), then re-raises the
signal it caught, so the process ends with status -15. Here a stop is:

1. the listener closes, idle keep-alive connections with it, and busy ones close once their
   response is done: no new request starts;
2. `Drain.begin()` (gateway/drain.py): standalone GET streams and listen streams end cleanly;
3. requests in flight run on, up to `shutdown_drain_seconds`;
4. `Drain.expire()`: the gateway requests still running get a JSON-RPC error for their id
   (503 JSON, or the last SSE event), retryable;
5. up to `shutdown_timeout` seconds more for those answers and any other request to end; what
   is left then is cut (its connection closed, one WARNING line, no traceback);
6. the lifespan ends (stdio children stopped, the upstream pool, audit and store closed) and
   the process exits with status 0: a stop that was asked for is not a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from authgate.gateway.drain import Drain

__all__ = ["GracefulServer"]

log = logging.getLogger("authgate")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _not_a_cancellation(record: logging.LogRecord) -> bool:
    """uvicorn logs each request it cancels as an exception; a cut at shutdown is no error."""
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain: Drain | None, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_seconds = drain_seconds

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's own handlers, without re-raising the signal once the server has stopped."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        busy = len(self.server_state.tasks)
        log.info("stopping: no new connections; %d request(s) in flight get up to %g s", busy, self.drain_seconds)
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        if self.drain is not None:
            self.drain.begin()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        if not await self._settled(self.drain_seconds) and self.drain is not None:
            cut = self.drain.expire(self.drain_seconds)
            if cut:
                log.warning(
                    "stopping: %d request(s) still running after the %g s drain time answered 'shutting down'",
                    cut,
                    self.drain_seconds,
                )
        grace = float(self.config.timeout_graceful_shutdown or 0)
        if not await self._settled(grace):
            await self._cut_the_rest(grace)
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _settled(self, seconds: float) -> bool:
        """True once every connection and request has ended, within `seconds` (False on a forced exit)."""
        deadline = time.monotonic() + seconds
        while self.server_state.connections or self.server_state.tasks:
            if self.force_exit or time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def _cut_the_rest(self, grace: float) -> None:
        tasks = list(self.server_state.tasks)
        log.warning(
            "stopping: cut %d request(s) still running %g s after the drain (their connections closed)",
            len(tasks),
            grace,
        )
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        await asyncio.sleep(0.05)  # connection_lost runs: a cut request's 500 goes nowhere
        logging.getLogger("uvicorn.error").addFilter(_not_a_cancellation)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
