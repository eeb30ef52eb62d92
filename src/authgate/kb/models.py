"""The knowledge base's values: what is stored, what the indexer changes, what a search finds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from authgate.kb.chunking import Chunk
from authgate.kb.documents import Document, MetaValue

DataSourceStatus = Literal["new", "ok", "missing"]


@dataclass(frozen=True, slots=True)
class DataSource:
    kb_id: str
    ds_id: str
    path: Path
    status: DataSourceStatus = "new"  # new: never indexed; missing: the folder was gone last time
    indexed_at: float | None = None
    document_count: int = 0


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    kb_id: str
    description: str
    builtin: bool
    created_at: float
    data_sources: tuple[DataSource, ...] = ()
    document_count: int = 0
    chunk_count: int = 0

    @property
    def indexed_at(self) -> float | None:
        """When every data source was last indexed (None while one never was)."""
        times = [ds.indexed_at for ds in self.data_sources]
        return None if not times or None in times else min(t for t in times if t is not None)


@dataclass(frozen=True, slots=True)
class IndexedFile:
    """What the index remembers of a file, to tell whether it changed."""

    doc_id: int
    mtime_ns: int
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Upsert:
    """A new or changed file: (re)place its document and passages."""

    rel_path: str
    document: Document
    chunks: tuple[Chunk, ...]
    mtime_ns: int
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Touch:
    """A file whose mtime or size changed but whose content did not."""

    doc_id: int
    mtime_ns: int
    size: int


@dataclass(frozen=True, slots=True)
class Delete:
    doc_id: int


Change = Upsert | Touch | Delete


@dataclass(frozen=True, slots=True)
class SearchRequest:
    kb_id: str
    query: str
    top_k: int = 5
    data_source_ids: tuple[str, ...] | None = None
    metadata_filters: dict[str, str | int | float | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Passage:
    ds_id: str
    rel_path: str
    title: str
    heading: str
    text: str
    score: float  # BM25, higher is better; comparable only within one search
    modified: float  # the file's mtime, seconds since the epoch
    file_type: str
    metadata: dict[str, MetaValue]
