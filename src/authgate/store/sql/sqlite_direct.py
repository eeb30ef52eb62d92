"""`DirectSqlite`: the store's transactions on an SQLite file, run with the stdlib `sqlite3`
module on the event loop's own thread (SQLAlchemy Core, synchronous, on a connection held
open), instead of aiosqlite behind SQLAlchemy's asyncio layer.

Why: aiosqlite runs every call — BEGIN, each statement, each fetch, COMMIT, the pool's reset —
in a thread of its own and hands each result back through the loop, and SQLAlchemy's asyncio
layer adds a greenlet and a pooled check-out per transaction: 700–900 µs of CPU per
transaction, measured, for SQLite work of a few µs on a local file. Here a read transaction
costs ~25–40 µs (docs/benchmarks.md, "OAuth flows").

Only two things could block the loop, and do not:

- **The flush to the disk** (an fsync of the WAL, 0.1–10 ms by disk). The writer connection
  runs with `synchronous=NORMAL`: its COMMIT, on the loop, only hands the WAL frames to the
  operating system (~10 µs; a `kill -9` of this process loses none of them), and the fsync
  that makes them survive a power loss runs in a flush thread (group commit). A write waits
  for the flush that covers it before it returns — or, inside a request's
  `durability.answer_after_flush()`, before the request's answer is sent: one flush for all of
  a request's writes, shared with whatever else committed meanwhile. A read waits too, when
  it may have seen a commit of this process whose flush is still on its way, so no answer
  depends on what a power loss could take back. Checkpoints (which copy the WAL into the
  database file, with two fsyncs) run in the flush thread as well, not in a COMMIT on the loop;
  each RESTARTs the WAL, so that it stays bounded under writes that never pause.
- **The write lock.** This process's writers queue on an asyncio lock and share one writer
  connection; its BEGIN IMMEDIATE never waits in SQLite's busy handler (busy timeout 0 on
  that connection), it is retried after asyncio sleeps while another process (a replica, the
  audit writer's connection) holds the lock, up to `SQLITE_BUSY_TIMEOUT_MS`.

Readers keep the busy timeout (WAL readers wait only while a crashed writer's log is
recovered). A single prepared read (`read`) runs on the writer's connection when no write holds
it: that connection's page cache is warm, a reader's is emptied by every commit it did not make.
What a body may do is `DirectTx`'s: `execute` and `scalar`, awaited as on
SQLAlchemy's `AsyncConnection`. An in-memory database keeps the asyncio engine (its one
shared connection holds the schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from authgate.errors import StoreUnavailable
from authgate.store import durability
from authgate.store.sql import engine as engines
from authgate.store.sql.sqlite_prepared import DirectResult, Prepared, is_prepared, prepare

__all__ = ["DirectSqlite", "DirectTx"]

MAX_IDLE_READERS = 4  # reader connections kept open between transactions
_FIRST_RETRY, _LONGEST_RETRY = 0.001, 0.05  # seconds between BEGIN IMMEDIATE attempts
CHECKPOINT_EVERY = 200  # commits between two checkpoints in the flush thread (SQLite's own: 1000 pages)
_Cache = dict[tuple[int, tuple[str, ...]], Prepared]  # the prepared statements' compiled forms


class DirectTx:
    """What a transaction's body sees: `execute` and `scalar` of SQLAlchemy Core, awaited as on
    `AsyncConnection`, run at once on this thread (an SQLite statement is µs of CPU). A
    statement marked `sqlite_prepared.prepared` runs from its compiled SQL text on the sqlite3
    connection itself, the rest through SQLAlchemy on the same connection and transaction."""

    __slots__ = ("_cache", "_conn", "_dialect", "_raw")

    def __init__(self, conn: sa.Connection, raw: sqlite3.Connection, cache: _Cache) -> None:
        self._conn, self._raw, self._cache, self._dialect = conn, raw, cache, conn.dialect

    async def execute(self, statement: sa.Executable, parameters: Any = None) -> sa.CursorResult[Any]:
        if is_prepared(statement):
            found = prepare(self._cache, statement, parameters, self._dialect)
            if found is not None:
                return cast("sa.CursorResult[Any]", found.run(self._raw, parameters))
        return self._conn.execute(statement, parameters)

    async def scalar(self, statement: sa.Executable, parameters: Any = None) -> Any:
        if is_prepared(statement):
            found = prepare(self._cache, statement, parameters, self._dialect)
            if found is not None:
                return found.run(self._raw, parameters).scalar()
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
        self._prepared: _Cache = {}
        path = engines.sqlite_file(url)
        assert path is not None, "an in-memory database keeps the asyncio engine"
        self._flusher = _Flusher(path)

    def close(self) -> None:
        for conn in [*self._readers, *([self._writer] if self._writer else [])]:
            with contextlib.suppress(Exception):
                conn.close()
        self._readers, self._writer = [], None
        self._flusher.close()
        self._engine.dispose()

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[DirectTx]:
        """One transaction, committed on exit, rolled back on an error. It returns once what it
        may depend on is on the disk, or, in a request's flush scope, leaves that to the
        request's end (`durability`): see the module's docstring."""
        if write:
            await self._lock_writer()
        conn: sa.Connection | None = None
        flusher = self._flusher
        seen = flusher.committed  # a read may see every commit of this process up to here
        try:
            conn = self._writer_connection() if write else self._reader_connection()
            raw = self._raw(conn)
            try:
                if write:
                    await _begin_immediate(raw)
                else:
                    raw.execute("BEGIN")
                yield DirectTx(conn, raw, self._prepared)
                # SQLAlchemy's own bookkeeping (its transaction began with the first statement)
                # and the COMMIT: for a write, the WAL frames handed to the operating system
                if conn.in_transaction():
                    conn.commit()
                elif raw.in_transaction:
                    raw.commit()
                if write and not durability.is_relaxed():  # numbered: what answers may depend on
                    seen = flusher.committed = flusher.committed + 1
            except BaseException:
                self._roll_back(conn)
                raise
        finally:
            if write:
                self._write_lock.release()
            elif conn is not None:
                self._release_reader(conn)
        if seen > flusher.durable and not (write and durability.is_relaxed()):  # relaxed: answers nobody
            await self._durable(seen)

    async def read(self, statement: sa.Executable, parameters: Any = None) -> DirectResult | None:
        """A read of one prepared statement (`sqlite_prepared`) outside BEGIN and COMMIT (the
        connection is in autocommit mode: one statement is its own read transaction, one
        snapshot), waiting like a read transaction for the flush of what it may have seen. None
        when the statement cannot be prepared: `transaction` then runs it."""
        found = prepare(self._prepared, statement, parameters, self._engine.dialect)
        if found is None:
            return None
        seen = self._flusher.committed
        result = self._read_on_writer(found, parameters) if not self._write_lock.locked() else None
        if result is None:
            conn = self._reader_connection()
            try:
                result = found.run(self._raw(conn), parameters)
            except BaseException:
                with contextlib.suppress(Exception):  # as `_roll_back` does with a connection that failed
                    conn.close()
                raise
            self._release_reader(conn)
        if seen > self._flusher.durable:
            await self._durable(seen)
        return result

    def _read_on_writer(self, found: Prepared, parameters: Any) -> DirectResult | None:
        """The read on the writer's connection, while no write holds it (the statement runs to
        its end here, no write can begin meanwhile): its page cache has every page this
        process wrote, where a reader's is emptied by each commit it did not make — a flow's
        read costs ~25 % less. None when it is busy (its busy timeout is 0): a reader, which
        waits, runs the read instead."""
        raw = self._raw(self._writer_connection())
        if raw.in_transaction:  # never, with the lock free; a reader's snapshot then
            return None
        try:
            return found.run(raw, parameters)
        except sa.exc.OperationalError:
            return None

    def _release_reader(self, conn: sa.Connection) -> None:
        if not conn.closed and len(self._readers) < MAX_IDLE_READERS:
            self._readers.append(conn)
        else:
            conn.close()

    async def _durable(self, seen: int) -> None:
        """Wait for the flush of commit `seen`, or leave it to the request's end (`durability`)."""
        flusher = self._flusher
        if seen > flusher.durable:
            scope = durability.current_scope()
            pending = scope.pending if scope is not None else None
            if scope is None or (pending is not None and getattr(pending, "flusher", None) is not flusher):
                await flusher.flush(seen)
            else:  # the request's answer waits for it (server/app.py)
                scope.pending = _Pending(flusher, max(seen, getattr(pending, "seq", 0)))

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
            raw = self._raw(self._writer)
            raw.execute("PRAGMA busy_timeout = 0")  # see _begin_immediate
            # the fsync is the flush thread's (see the module docstring), and so are checkpoints
            raw.execute("PRAGMA synchronous = NORMAL")
            raw.execute("PRAGMA wal_autocheckpoint = 0")
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

    @staticmethod
    def _raw(conn: sa.Connection) -> sqlite3.Connection:
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        return raw


class _Pending:
    """What a request's scope awaits at its end: the flush of this database up to `seq`."""

    __slots__ = ("flusher", "seq")

    def __init__(self, flusher: _Flusher, seq: int) -> None:
        self.flusher, self.seq = flusher, seq

    def __call__(self) -> Any:
        return self.flusher.flush(self.seq)


class _Flusher:
    """Group commit: the flush thread fsyncs the WAL for every commit made before it started
    (one fsync, however many commits), then answers each waiter on its loop. Commits are
    numbered in this process (`committed`); `durable` is the highest number known on the disk.
    While one flush runs, the next waiters gather for one more. Every `CHECKPOINT_EVERY`
    commits the thread also checkpoints on a connection of its own, so the loop never copies the
    WAL into the database (`_checkpoint`)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wal = Path(f"{path}-wal")
        self.committed = 0
        self.durable = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._running = False  # a flush is on its way (state kept on the loop's thread)
        self._checkpointed = 0  # `committed` at the last checkpoint asked for
        self._queue: queue.SimpleQueue[tuple[int, bool, asyncio.AbstractEventLoop] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def flush(self, seq: int) -> None:
        """Return once commit `seq` (and every one before it) is on the disk."""
        if seq <= self.durable:
            return
        done = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, done))
        if not self._running:
            self._start()
        await done  # cancelled: the commit stands; the flush goes on for the others

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="authgate-sqlite-flush", daemon=True)
            self._thread.start()
        self._running = True
        checkpoint = self.committed - self._checkpointed >= CHECKPOINT_EVERY
        if checkpoint:
            self._checkpointed = self.committed
        self._queue.put((self.committed, checkpoint, asyncio.get_running_loop()))

    def _flushed(self, seq: int, error: BaseException | None) -> None:
        """On the loop: answer the waiters this flush covered; start the next for the rest."""
        self._running = False
        if error is None:
            self.durable = max(self.durable, seq)
        covered = [(s, f) for s, f in self._waiters if s <= seq]
        self._waiters = [(s, f) for s, f in self._waiters if s > seq]
        for _, done in covered:
            if not done.done():
                done.set_result(None) if error is None else done.set_exception(error)
        self._waiters = [(s, f) for s, f in self._waiters if not f.done()]
        if self._waiters:
            self._start()

    def _run(self) -> None:
        checkpointer: sqlite3.Connection | None = None
        while (item := self._queue.get()) is not None:
            seq, checkpoint, loop = item
            error = self._fsync()
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._flushed, seq, error)
            if checkpoint and error is None:
                checkpointer = _checkpoint(self._path, checkpointer)
        self._fsync()  # a clean stop: the relaxed writes too
        if checkpointer is not None:
            checkpointer.close()

    def _fsync(self) -> StoreUnavailable | None:
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except FileNotFoundError:  # no WAL: the last connection's checkpoint moved it all (synced)
            return None
        except OSError as exc:
            return StoreUnavailable(f"the database could not be flushed to the disk: {exc}")
        try:
            os.fsync(fd)
        except OSError as exc:  # the disk refused: the commits it covered cannot be answered
            return StoreUnavailable(f"the database could not be flushed to the disk: {exc}")
        finally:
            os.close(fd)
        return None


def _checkpoint(path: Path, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
    """A RESTART checkpoint on the flush thread's own connection: the WAL copied into the
    database (with its fsyncs), then, once no reader still reads the WAL, the WAL started over
    from its beginning; a failure (or a busy timeout) only waits for the next. Not PASSIVE:
    SQLite starts the WAL over only when a write begins with all of it checkpointed, which
    writes arriving between a checkpoint in this thread and the next write never allow, and the
    WAL grew without end (821 MB after 56 k flows, docs/benchmarks.md §3). Meanwhile this
    process's BEGIN IMMEDIATE is retried after asyncio sleeps (`_begin_immediate`): the loop
    never waits in the busy handler."""
    try:
        if conn is None:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {engines.SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
    except sqlite3.Error:
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        return None
    return conn


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
