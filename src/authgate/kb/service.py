"""The knowledge base as the MCP server sees it: async, with indexing in the background.

`running()` is entered once per server (the MCP server's lifespan): it opens the index file,
registers the sample corpus when there is no knowledge base, and starts a background task that
re-indexes every knowledge base now and then every `reindex_interval` seconds. Start-up does not
wait for indexing. A tool call about a knowledge base that was never indexed, made during that
first pass, waits for the pass at most `FIRST_PASS_WAIT` seconds (the shipped sample corpus
takes milliseconds), then answers from what is indexed so far. SQLite work runs in worker
threads, never on the event loop.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, TypeVar

import anyio
import anyio.to_thread

from authgate.kb.indexer import Indexer, IndexReport, ensure_sample
from authgate.kb.models import KnowledgeBase, Passage, SearchRequest
from authgate.kb.store import KnowledgeStore

log = logging.getLogger(__name__)

INDEX_FILE = "kb.sqlite3"
DEFAULT_REINDEX_INTERVAL = 300.0
FIRST_PASS_WAIT = 10.0

IndexStatus = Literal["ready", "indexing", "not_indexed"]
T = TypeVar("T")


def index_path(data_dir: Path) -> Path:
    return data_dir / INDEX_FILE


class KnowledgeService:
    def __init__(self, data_dir: Path, *, reindex_interval: float | None = DEFAULT_REINDEX_INTERVAL) -> None:
        self.store = KnowledgeStore(index_path(data_dir))
        self.reindex_interval = reindex_interval
        self._stop = threading.Event()
        self._indexer = Indexer(self.store, should_stop=self._stop.is_set, excluded=(data_dir,))
        self._indexing: set[str] = set()
        self._first_pass: anyio.Event | None = None
        self._prepared = False

    async def _run(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn)

    def _prepare(self) -> None:
        if not self._prepared:
            self.store.open()
            ensure_sample(self.store, time.time())
            self._prepared = True

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the index, then keep it fresh in the background until the block exits."""
        await self._run(self._prepare)
        self._stop.clear()
        self._first_pass = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._keep_fresh)
            try:
                yield
            finally:
                # The indexer checks the flag between files, so the worker thread ends promptly.
                self._stop.set()
                tg.cancel_scope.cancel()

    async def _keep_fresh(self) -> None:
        try:
            await self.reindex_all()
        finally:
            if self._first_pass is not None:
                self._first_pass.set()
        while self.reindex_interval:
            await anyio.sleep(self.reindex_interval)
            await self.reindex_all()

    async def reindex_all(self) -> list[IndexReport]:
        """Re-index every knowledge base; failures are logged, never raised."""
        reports: list[IndexReport] = []
        try:
            bases = await self._run(self.store.list_knowledge_bases)
        except Exception:
            log.exception("cannot list knowledge bases to index")
            return reports
        for kb in bases:
            self._indexing.add(kb.kb_id)
            try:
                reports.append(await self._run(functools.partial(self._indexer.reindex, kb.kb_id)))
            except Exception:
                log.exception("indexing knowledge base %s failed", kb.kb_id)
            finally:
                self._indexing.discard(kb.kb_id)
        return reports

    async def _open(self) -> None:
        if not self._prepared:
            await self._run(self._prepare)

    async def _first_pass_done(self) -> bool:
        """Wait (boundedly) for the start-up pass if it is running; False if nothing to wait for."""
        if self._first_pass is None or self._first_pass.is_set():
            return False
        with anyio.move_on_after(FIRST_PASS_WAIT):
            await self._first_pass.wait()
        return True

    def status(self, kb: KnowledgeBase) -> IndexStatus:
        if kb.kb_id in self._indexing:
            return "indexing"
        return "not_indexed" if kb.indexed_at is None else "ready"

    async def knowledge_bases(self) -> list[KnowledgeBase]:
        await self._open()
        bases = await self._run(self.store.list_knowledge_bases)
        if any(kb.indexed_at is None for kb in bases) and await self._first_pass_done():
            bases = await self._run(self.store.list_knowledge_bases)
        return bases

    async def knowledge_base(self, kb_id: str) -> KnowledgeBase:
        await self._open()
        kb = await self._run(functools.partial(self.store.get_knowledge_base, kb_id))
        if kb.indexed_at is None and await self._first_pass_done():
            kb = await self._run(functools.partial(self.store.get_knowledge_base, kb_id))
        return kb

    async def search(self, request: SearchRequest) -> list[Passage]:
        await self.knowledge_base(request.kb_id)  # unknown id -> error; never indexed -> wait
        return await self._run(functools.partial(self.store.search, request))
