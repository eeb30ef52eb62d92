"""One renewal per key at a time in this process: callers who ask while it runs share it.

What the proxy's upstream vault (idp/proxy/vault.py) and the connection broker both need before
their cross-replica claim: a second refresh of the same tokens from this process would spend
a rotated refresh token twice (RFC 9700 §4.14.2). The running task is shielded: a caller that
gives up (its client went away) does not cancel the others' renewal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[T]] = {}

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`'s result, or that of the `work` already running for `key`."""
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(work())
            self._running[key] = running
            running.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(running)

    def _settled(self, key: K, done: asyncio.Future[T]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have given up on it
