"""`WriterThread`: the one thread that takes the audit trail's queued events and writes them in
batches, so the serving event loop only ever appends to a deque.

    event loop                              writer thread (its own database connection)
    AuditLog.record ─> deque.append ─wake─> wait for the first event, then LINGER_SECONDS for
                                            more (or none: a refusal waits for its commit) ─>
                                            up to BATCH_SIZE events per transaction ─> commit ─>
                                            a refusal's future resolved on the loop

The thread writes with the store's `AuditBatchWriter` (a connection of its own: stdlib sqlite3,
or asyncpg on a loop private to the thread). When the store has none (an in-memory SQLite
database, a store of the tests), it hands each batch to the serving loop instead
(`add_audit_events` there), which costs that loop one transaction per batch.

A batch the database refuses WRITE_ATTEMPTS times is dropped and the log says how many
events were lost; nothing else stops the thread but `stop()`, which writes what is queued first.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from authgate.errors import StoreError
from authgate.store.models import AuditEvent

log = logging.getLogger("authgate.audit")

WRITE_ATTEMPTS = 3

WriteBatch = Callable[[Sequence[AuditEvent]], None]  # one transaction, committed on return


@dataclass(eq=False, slots=True)
class Commit:
    """A refusal: its event, and the future `record_now` waits on (True once committed)."""

    event: AuditEvent
    done: asyncio.Future[bool]


Queued = AuditEvent | Commit


class WriterThread:
    def __init__(
        self,
        queue: deque[Queued],
        write: WriteBatch,
        loop: asyncio.AbstractEventLoop,
        *,
        batch_size: int,
        linger_seconds: float,
        retry_seconds: float,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self._queue = queue
        self._write = write
        self._close = close
        self._loop = loop
        self._batch_size = batch_size
        self._linger = linger_seconds
        self._retry = retry_seconds
        self._wake = threading.Event()  # something was queued
        self._hurry = threading.Event()  # a refusal waits, or the log is closing: no lingering
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="authgate-audit-writer", daemon=True)
        self._thread.start()

    def wake(self, *, hurry: bool = False) -> None:
        """Called on the event loop after an append; an attribute read when already awake."""
        if hurry and not self._hurry.is_set():
            self._hurry.set()
        if not self._wake.is_set():
            self._wake.set()

    def stop(self) -> None:
        """Write everything queued, then end (see `join`)."""
        self._stopping = True
        self._hurry.set()
        self._wake.set()

    def join(self, timeout: float) -> bool:
        """True when the thread has ended within `timeout` seconds."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait()
                if not self._hurry.is_set() and len(self._queue) < self._batch_size:
                    self._hurry.wait(self._linger)  # let the batch fill; a refusal or stop cuts it short
                self._wake.clear()
                self._hurry.clear()
                # what is queued now, not what arrives meanwhile (that lingers for the next round)
                for _ in range(0, len(self._queue), self._batch_size):
                    self._write_batch(self._take())
                if self._stopping and not self._queue:
                    return
                if self._queue:
                    self._wake.set()  # arrived while writing: the next round's first events
        finally:
            try:
                self._close()
            except Exception:  # the connection is going anyway
                log.debug("audit: closing the writer's connection failed", exc_info=True)

    def _take(self) -> list[Queued]:
        batch: list[Queued] = []
        while self._queue and len(batch) < self._batch_size:
            batch.append(self._queue.popleft())
        return batch

    def _write_batch(self, batch: list[Queued]) -> None:
        events = [item.event if isinstance(item, Commit) else item for item in batch]
        written = self._write_with_retries(events)
        for item in batch:
            if isinstance(item, Commit):
                self._resolve(item.done, written)

    def _write_with_retries(self, events: Sequence[AuditEvent]) -> bool:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                self._write(events)
                return True
            except StoreError as exc:
                if attempt == WRITE_ATTEMPTS:
                    log.error("audit: %d event(s) lost, the store refused them %d times: %s", len(events), attempt, exc)
                    return False
                log.warning("audit: write failed (%s); retrying", exc)
                time.sleep(self._retry * attempt)
            except Exception:  # a bug must not end the thread: every later event would be lost
                log.exception("audit: %d event(s) lost: the write failed unexpectedly", len(events))
                return False
        return False

    def _resolve(self, done: asyncio.Future[bool], written: bool) -> None:
        def resolve() -> None:
            if not done.done():
                done.set_result(written)

        try:
            self._loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


def via_loop(
    add: Callable[[Sequence[AuditEvent]], Awaitable[None]], loop: asyncio.AbstractEventLoop, *, timeout: float = 60
) -> WriteBatch:
    """A `WriteBatch` for a store without a batch writer of its own: each batch is written by
    `add` (the store's `add_audit_events`) on the serving loop, the thread waiting for it."""

    async def run(events: Sequence[AuditEvent]) -> None:
        await add(events)

    def write(events: Sequence[AuditEvent]) -> None:
        asyncio.run_coroutine_threadsafe(run(events), loop).result(timeout)

    return write
