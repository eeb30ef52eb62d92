"""Background indexing: start-up does not wait for it, tools wait (boundedly) for the first
pass, changes on disk are picked up every `reindex_interval`, shutdown stops it promptly."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

import authgate.kb.indexer as indexer_module
from authgate.kb.documents import Document, parse_document
from authgate.kb.models import SearchRequest
from authgate.kb.service import KnowledgeService
from authgate.kb.store import KnowledgeStore

WAIT = 20.0


def _register(data: Path, folder: Path) -> None:
    store = KnowledgeStore(data / "kb.sqlite3")
    store.open()
    store.add_knowledge_base("company", [folder], now=time.time())


async def test_changes_on_disk_are_picked_up_in_the_background(tmp_path: Path, corpus: Path) -> None:
    _register(tmp_path / "data", corpus / "handbook")
    service = KnowledgeService(tmp_path / "data", reindex_interval=0.1)
    with anyio.fail_after(WAIT):
        async with service.running():
            assert [p.rel_path for p in await service.search(SearchRequest("company", "vacation"))][0] == "vacation.md"
            (corpus / "handbook" / "pets.md").write_text("# Pets\n\nkangaroo\n")
            while not await service.search(SearchRequest("company", "kangaroo")):
                await anyio.sleep(0.05)
    kb = await service.knowledge_base("company")
    assert service.status(kb) == "ready" and kb.document_count == 4


async def test_start_up_does_not_wait_for_indexing_and_shutdown_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(200):
        (folder / f"doc{i}.md").write_text(f"# Doc {i}\n\nword{i}\n")
    _register(tmp_path / "data", folder)
    real_parse = parse_document

    def slow_parse(rel_path: str, raw: bytes) -> Document:
        time.sleep(0.05)  # 200 files: ~10 s if nothing stopped the pass
        return real_parse(rel_path, raw)

    monkeypatch.setattr(indexer_module, "parse_document", slow_parse)
    service = KnowledgeService(tmp_path / "data", reindex_interval=None)
    with anyio.fail_after(WAIT):
        started = time.monotonic()
        async with service.running():
            assert time.monotonic() - started < 3.0
            kb = service.store.get_knowledge_base("company")
            while service.status(kb) != "indexing":
                await anyio.sleep(0.02)
        assert time.monotonic() - started < 6.0, "shutdown waited for the whole indexing pass"
    assert service.store.get_knowledge_base("company").document_count < 200
