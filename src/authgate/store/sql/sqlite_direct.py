"""`DirectSqlite`: the store's transactions on an SQLite file, run with the stdlib `sqlite3`
module on the event loop's own thread (SQLAlchemy Core, synchronous, on a connection held
open), instead of aiosqlite behind SQLAlchemy's asyncio layer.

Why: aiosqlite runs every call — BEGIN, each statement, each fetch, COMMIT, the pool's reset —
in a thread of its own and hands each result back through the loop, and SQLAlchemy's asyncio
layer adds a greenlet and a pooled check-out per transaction: 700–900 µs of CPU per
transaction, measured, for SQLite work of a few µs on a local file. Here a read transaction
costs ~25–40 µs (docs/benchmarks.md, "OAuth flows").

Only two things could block the loop, and do not:

- **COMMIT of a write** (WAL with `synchronous=FULL`: an fsync, 0.1–10 ms by disk) runs in a
  commit thread while the loop goes on. It is shielded: a request cancelled meanwhile still
  waits for the commit it started, so a write is committed or failed, never half-known.
- **The write lock.** This process's writers queue on an asyncio lock and share one writer
  connection; its BEGIN IMMEDIATE never waits in SQLite's busy handler (busy timeout 0 on
  that connection), it is retried after asyncio sleeps while another process (a replica, the
  audit writer's connection) holds the lock, up to `SQLITE_BUSY_TIMEOUT_MS`.

Readers keep the busy timeout (WAL readers wait only while a crashed writer's log is
recovered). What a body may do is `DirectTx`'s: `execute` and `scalar`, awaited as on
SQLAlchemy's `AsyncConnection`. An in-memory database keeps the asyncio engine (its one
shared connection holds the schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from authgate.store.sql import engine as engines

__all__ = ["DirectSqlite", "DirectTx"]

MAX_IDLE_READERS = 4  # reader connections kept open between transactions
_FIRST_RETRY, _LONGEST_RETRY = 0.001, 0.05  # seconds between BEGIN IMMEDIATE attempts


class DirectTx:
    """What a transaction's body sees: `execute` and `scalar` of SQLAlchemy Core, awaited as on
    `AsyncConnection`, run at once on this thread (an SQLite statement is µs of CPU)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    async def execute(self, statement: sa.Executable, parameters: Any = None) -> sa.CursorResult[Any]:
        return self._conn.execute(statement, parameters)

    async def scalar(self, statement: sa.Executable, parameters: Any = None) -> Any:
        return self._conn.scalar(statement, parameters)


class DirectSqlite:
    """Connections to one SQLite file: one writer, readers on demand, a commit thread."""

    def __init__(self, url: URL) -> None:
        # pysqlite with no pool of its own: the connections are held here, open
        self._engine = sa.create_engine(url.set(drivername="sqlite+pysqlite"), poolclass=NullPool)
        sa.event.listen(self._engine, "connect", engines._sqlite_on_connect)  # WAL, FULL, busy timeout
        self._readers: list[sa.Connection] = []
        self._writer: sa.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._commits = _Committer()

    def close(self) -> None:
        for conn in [*self._readers, *([self._writer] if self._writer else [])]:
            with contextlib.suppress(Exception):
                conn.close()
        self._readers, self._writer = [], None
        self._commits.close()
        self._engine.dispose()

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[DirectTx]:
        """One transaction, committed on exit (a write's COMMIT in the commit thread), rolled
        back on an error."""
        if write:
            await self._lock_writer()
        conn: sa.Connection | None = None
        try:
            conn = self._writer_connection() if write else self._reader_connection()
            raw = self._raw(conn)
            try:
                if write:
                    await _begin_immediate(raw)
                else:
                    raw.execute("BEGIN")
                yield DirectTx(conn)
                if write:
                    await self._commit(raw)
                # SQLAlchemy's own bookkeeping (its transaction began with the first statement);
                # for a read this is the COMMIT, for a write it finds nothing left to commit
                if conn.in_transaction():
                    conn.commit()
                elif raw.in_transaction:
                    raw.commit()
            except BaseException:
                self._roll_back(conn)
                raise
        finally:
            if write:
                self._write_lock.release()
            elif conn is not None and not conn.closed and len(self._readers) < MAX_IDLE_READERS:
                self._readers.append(conn)
            elif conn is not None:
                conn.close()

    async def _lock_writer(self) -> None:
        if not self._write_lock.locked():
            await self._write_lock.acquire()
            return
        try:
            await asyncio.wait_for(self._write_lock.acquire(), engines.SQLITE_BUSY_TIMEOUT_MS / 1000)
        except TimeoutError:  # a write inside a write of this process would wait forever
            raise sqlite3.OperationalError("database is locked (by a write of this process)") from None

    def _writer_connection(self) -> sa.Connection:
        if self._writer is None or self._writer.closed:
            self._writer = self._engine.connect()
            self._raw(self._writer).execute("PRAGMA busy_timeout = 0")  # see _begin_immediate
        return self._writer

    def _reader_connection(self) -> sa.Connection:
        return self._readers.pop() if self._readers else self._engine.connect()

    def _roll_back(self, conn: sa.Connection) -> None:
        """After a failure (statements run to completion here: none is left half-way): roll
        back what is open; a connection that cannot even do that is closed, and a fresh one
        replaces it."""
        try:
            conn.rollback()
            self._raw(conn).rollback()
        except Exception:  # noqa: BLE001 - the first error is the one to report
            with contextlib.suppress(Exception):
                conn.close()

    async def _commit(self, raw: sqlite3.Connection) -> None:
        done = self._commits.commit(raw)
        cancelled = False
        while True:
            try:
                await asyncio.shield(done)
                break
            except asyncio.CancelledError:
                if done.cancelled():  # never ran (closing)
                    raise
                cancelled = True  # the commit is on its way to the disk: wait for it
        if cancelled:
            raise asyncio.CancelledError

    @staticmethod
    def _raw(conn: sa.Connection) -> sqlite3.Connection:
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        return raw


class _Committer:
    """The commit thread: COMMIT (its fsync) of the writer's transactions, one at a time, each
    answered on the loop that asked. A queue and `call_soon_threadsafe` rather than an
    executor: half the locks and futures per commit."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[sqlite3.Connection, asyncio.Future[None]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def commit(self, raw: sqlite3.Connection) -> asyncio.Future[None]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="authgate-sqlite-commit", daemon=True)
            self._thread.start()
        done = asyncio.get_running_loop().create_future()
        self._queue.put((raw, done))
        return done

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            raw, done = item
            try:
                raw.commit()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                done.get_loop().call_soon_threadsafe(_settle, done, exc)
            else:
                done.get_loop().call_soon_threadsafe(_settle, done, None)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


async def _begin_immediate(raw: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE: the write lock now, so a transaction that read first never has to
    upgrade after another replica committed. Tried at once (the writer's busy timeout is 0);
    while another process holds the lock, tried again after asyncio sleeps (1 ms doubling to
    50 ms) until `SQLITE_BUSY_TIMEOUT_MS` has passed, then the error is the busy timeout's."""
    deadline = time.monotonic() + engines.SQLITE_BUSY_TIMEOUT_MS / 1000
    wait = _FIRST_RETRY
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + wait > deadline:
                raise
        await asyncio.sleep(wait)
        wait = min(2 * wait, _LONGEST_RETRY)
