"""`AuditLog`: getting audit events into the store without the serving event loop paying for it.

* An allowed operation is appended to a bounded in-memory queue once its answer has been sent
  (`record`: a deque append, O(1), never waits). The writer thread (`audit/writer.py`) commits
  what is queued in batches of up to BATCH_SIZE rows, LINGER_SECONDS after the first of them
  arrived, on a database connection of its own.
* A refusal is committed before its answer is sent (`record_now` waits for the writer thread
  to commit it, without lingering): nobody is refused without a trace.
* When MAX_QUEUED allowed events wait already (the database is slower than the traffic), the
  next one is dropped — never the request: the drop is counted (`dropped`) and logged, at most
  once every OVERFLOW_LOG_SECONDS.

What a kill -9 can lose: the allowed operations not yet committed — in normal operation those
of the last LINGER_SECONDS plus the batch being written; never more than MAX_QUEUED +
BATCH_SIZE. A clean stop (`aclose`) writes everything queued first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from authgate.audit.writer import Commit, Queued, WriterThread, via_loop
from authgate.store.models import AuditEvent
from authgate.store.protocols import AuditStore

log = logging.getLogger("authgate.audit")

MAX_QUEUED = 10_000
BATCH_SIZE = 500
RETRY_SECONDS = 0.5
LINGER_SECONDS = 0.25
OVERFLOW_LOG_SECONDS = 10.0
CLOSE_SECONDS = 30.0  # a clean stop waits this long at most for the last batches


class AuditLog:
    def __init__(
        self,
        store: AuditStore,
        *,
        max_queued: int = MAX_QUEUED,
        batch_size: int = BATCH_SIZE,
        retry_seconds: float = RETRY_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
        close_seconds: float = CLOSE_SECONDS,
    ) -> None:
        self.store = store
        self.dropped = 0  # allowed events dropped because the queue was full
        self._queue: deque[Queued] = deque()
        self._max_queued = max_queued
        self._batch_size = batch_size
        self._retry = retry_seconds
        self._linger = linger_seconds
        self._close_seconds = close_seconds
        self._writer: WriterThread | None = None
        self._overflow_logged_at = -OVERFLOW_LOG_SECONDS

    @property
    def queued(self) -> int:
        """Events waiting for the writer thread (the metrics read it at scrape time)."""
        return len(self._queue)

    def record(self, event: AuditEvent) -> None:
        """Queue an allowed operation for the writer thread; drop it (counted) when full."""
        queue = self._queue
        if len(queue) >= self._max_queued:
            self._overflow()
            return
        queue.append(event)
        (self._writer or self._start()).wake()

    async def record_now(self, event: AuditEvent) -> None:
        """Commit before returning (refusals). A store failure is logged, not raised: the
        refusal stands either way."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(Commit(event, done))  # past the bound too: the caller waits for it
        (self._writer or self._start()).wake(hurry=True)
        await done

    async def aclose(self) -> None:
        """Write everything queued, then stop the writer (if it cannot finish within
        `close_seconds`, say how much is lost)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.stop()
        if not await asyncio.to_thread(writer.join, self._close_seconds):
            log.error("audit: %d event(s) lost: the writer did not finish writing them", len(self._queue))
        if self.dropped:
            log.warning("audit: %d event(s) were dropped in all because the queue was full", self.dropped)

    def _start(self) -> WriterThread:
        loop = asyncio.get_running_loop()
        batch = self.store.batch_writer()
        self._writer = WriterThread(
            self._queue,
            batch.write if batch is not None else via_loop(self.store.add_audit_events, loop),
            loop,
            batch_size=self._batch_size,
            linger_seconds=self._linger,
            retry_seconds=self._retry,
            close=batch.close if batch is not None else (lambda: None),
        )
        return self._writer

    def _overflow(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._overflow_logged_at >= OVERFLOW_LOG_SECONDS:
            self._overflow_logged_at = now
            log.error(
                "audit: the queue of %d events is full (the database writes slower than calls arrive): "
                "%d event(s) dropped so far",
                self._max_queued,
                self.dropped,
            )
