"""`AuditLog`: getting audit events into the store without slowing allowed calls down.

* A refusal is committed before its answer is sent (`record_now`): nobody is refused without a
  trace.
* An allowed operation is queued when its answer has been sent (`record`) and a background
  writer commits what is queued, up to BATCH_SIZE rows per transaction, LINGER_SECONDS after
  the first of them arrived (so one commit serves many calls: a commit per call cost about
  200 µs of CPU per request under load). The queue holds at most MAX_QUEUED events; when it is full the next
  allowed operation waits for room (never dropped for being fast).

What a kill -9 can lose: the allowed operations not yet committed, i.e. at most MAX_QUEUED
queued plus BATCH_SIZE being written (1 500 events) — in normal operation only those of the
last LINGER_SECONDS plus one commit. A batch the database refuses WRITE_ATTEMPTS times is
dropped with an error in the log that counts it. A clean shutdown (`aclose`) writes
everything queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from authgate.errors import StoreError
from authgate.store.models import AuditEvent
from authgate.store.protocols import AuditStore

log = logging.getLogger("authgate.audit")

MAX_QUEUED = 1_000
BATCH_SIZE = 500
WRITE_ATTEMPTS = 3
RETRY_SECONDS = 0.5
LINGER_SECONDS = 0.25


class AuditLog:
    def __init__(
        self,
        store: AuditStore,
        *,
        max_queued: int = MAX_QUEUED,
        batch_size: int = BATCH_SIZE,
        retry_seconds: float = RETRY_SECONDS,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self.store = store
        self._queue: asyncio.Queue[AuditEvent] | None = None
        self._max_queued = max_queued
        self._batch_size = batch_size
        self._retry = retry_seconds
        self._linger = linger_seconds
        self._writer: asyncio.Task[None] | None = None

    async def record_now(self, event: AuditEvent) -> None:
        """Commit before returning (refusals). A store failure is logged, not raised: the
        refusal stands either way."""
        await self._write([event])

    async def record(self, event: AuditEvent) -> None:
        """Queue for the background writer (allowed operations)."""
        if self._queue is None:
            self._queue = asyncio.Queue(self._max_queued)
            self._writer = asyncio.create_task(self._run(self._queue), name="authgate-audit-writer")
        await self._queue.put(event)

    async def aclose(self) -> None:
        """Write everything queued, then stop the writer (if the writer is gone already, e.g.
        cancelled with everything else, what is queued cannot be written: say how much)."""
        if self._queue is not None and self._writer is not None:
            joined = asyncio.ensure_future(self._queue.join())
            await asyncio.wait([joined, self._writer], return_when=asyncio.FIRST_COMPLETED)
            if not joined.done():
                joined.cancel()
                log.error("audit: %d event(s) lost: the writer stopped before they were written", self._queue.qsize())
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        self._queue = self._writer = None

    async def _run(self, queue: asyncio.Queue[AuditEvent]) -> None:
        while True:
            batch = [await queue.get()]
            if self._linger > 0 and queue.qsize() < self._batch_size:
                await asyncio.sleep(self._linger)  # let the batch fill
            while len(batch) < self._batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _write(self, events: Sequence[AuditEvent]) -> None:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                await self.store.add_audit_events(events)
                return
            except StoreError as exc:
                if attempt == WRITE_ATTEMPTS:
                    log.error("audit: %d event(s) lost, the store refused them %d times: %s", len(events), attempt, exc)
                    return
                log.warning("audit: write failed (%s); retrying", exc)
                await asyncio.sleep(self._retry * attempt)
