"""The knowledge base index: one SQLite file with an FTS5 table, queried with BM25.

Synchronous on purpose (the stdlib `sqlite3`): callers in async code run it in a worker
thread. Each call opens its own connection, so any thread may call any method; writes take
`BEGIN IMMEDIATE`, and the file is in WAL mode, so a search never waits for an indexer (in
this process or in `authgate kb reindex` next to it).

Tables: `knowledge_bases` 1—n `data_sources` 1—n `documents` 1—n `chunks`; `doc_meta` holds a
document's front matter as normalized (key, value) rows for filters; `chunks_fts` (FTS5) holds
each passage's title, heading path and text under the chunk's rowid. Deletes cascade down
from a knowledge base to the FTS rows (a trigger on `chunks`).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from authgate.errors import StoreError
from authgate.kb.errors import InvalidKnowledgeBase, UnknownDataSource, UnknownKnowledgeBase
from authgate.kb.models import (
    Change,
    DataSource,
    DataSourceStatus,
    Delete,
    IndexedFile,
    KnowledgeBase,
    Passage,
    SearchRequest,
    Touch,
    Upsert,
)
from authgate.kb.query import fts_query, meta_key, meta_rows, meta_value
from authgate.store.files import private_file

SCHEMA_VERSION = 1
# BM25 column weights: a word in the title counts more than in a heading, more than in the text.
BM25_WEIGHTS = (4.0, 2.0, 1.0)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge_bases (
    kb_id TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '',
    builtin INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS data_sources (
    kb_id TEXT NOT NULL REFERENCES knowledge_bases(kb_id) ON DELETE CASCADE,
    ds_id TEXT NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'new', indexed_at REAL,
    PRIMARY KEY (kb_id, ds_id), UNIQUE (kb_id, path));
CREATE TABLE IF NOT EXISTS documents (
    doc_id INTEGER PRIMARY KEY, kb_id TEXT NOT NULL, ds_id TEXT NOT NULL, rel_path TEXT NOT NULL,
    title TEXT NOT NULL, file_type TEXT NOT NULL, metadata TEXT NOT NULL,
    mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
    UNIQUE (kb_id, ds_id, rel_path),
    FOREIGN KEY (kb_id, ds_id) REFERENCES data_sources(kb_id, ds_id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE, ordinal INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS doc_meta (
    doc_id INTEGER NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key, value, doc_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS doc_meta_by_doc ON doc_meta(doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, heading, body, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS chunks_deleted AFTER DELETE ON chunks BEGIN
    DELETE FROM chunks_fts WHERE rowid = old.chunk_id;
END;
"""


def check_id(kind: str, value: str) -> str:
    if not _ID.fullmatch(value):
        raise InvalidKnowledgeBase(
            f"{kind} {value!r} is not a valid id: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def data_source_id_for(folder: Path, taken: set[str]) -> str:
    """A readable, unique id for a folder: its name, made id-safe, numbered if taken."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-._")[:56] or "source"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


class KnowledgeStore:
    """The index file `path` (normally `data_dir / "kb.sqlite3"`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the knowledge base index {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if write:
                conn.execute("BEGIN IMMEDIATE")
            yield conn
            if write:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"knowledge base index {self.path}: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def open(self) -> None:
        """Create the file and schema if needed; refuse a schema from a newer authgate."""
        private_file(self.path)  # 0600 in a 0700 folder: the index holds the documents' text
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer authgate (schema {version}); "
                    "upgrade authgate or remove the file and re-add the knowledge bases"
                )
            if version < SCHEMA_VERSION:
                # Every statement is IF NOT EXISTS, so two processes creating it at once is harmless.
                conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")

    # -- knowledge bases and data sources -----------------------------------------------------

    def add_knowledge_base(
        self, kb_id: str, folders: Sequence[Path], *, description: str = "", builtin: bool = False, now: float
    ) -> KnowledgeBase:
        """Create `kb_id`, or add folders to it; folders it already has are left as they are."""
        check_id("knowledge base name", kb_id)
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT INTO knowledge_bases (kb_id, description, builtin, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (kb_id) DO NOTHING",
                (kb_id, description, int(builtin), now),
            )
            if description:
                conn.execute("UPDATE knowledge_bases SET description = ? WHERE kb_id = ?", (description, kb_id))
            rows = conn.execute("SELECT ds_id, path FROM data_sources WHERE kb_id = ?", (kb_id,)).fetchall()
            taken, paths = {r[0] for r in rows}, {r[1] for r in rows}
            for folder in folders:
                if str(folder) in paths:
                    continue
                ds_id = data_source_id_for(folder, taken)
                conn.execute(
                    "INSERT INTO data_sources (kb_id, ds_id, path) VALUES (?, ?, ?)", (kb_id, ds_id, str(folder))
                )
                taken.add(ds_id)
                paths.add(str(folder))
        return self.get_knowledge_base(kb_id)

    def remove_knowledge_base(self, kb_id: str) -> None:
        with self._connect(write=True) as conn:
            if conn.execute("DELETE FROM knowledge_bases WHERE kb_id = ?", (kb_id,)).rowcount == 0:
                raise UnknownKnowledgeBase(kb_id, self._kb_ids(conn))

    def set_data_source_path(self, kb_id: str, ds_id: str, path: Path) -> None:
        with self._connect(write=True) as conn:
            conn.execute(
                "UPDATE data_sources SET path = ? WHERE kb_id = ? AND ds_id = ? AND path != ?",
                (str(path), kb_id, ds_id, str(path)),
            )

    def list_knowledge_bases(self) -> list[KnowledgeBase]:
        with self._connect() as conn:
            return [self._load(conn, kb_id) for kb_id in self._kb_ids(conn)]

    def get_knowledge_base(self, kb_id: str) -> KnowledgeBase:
        with self._connect() as conn:
            return self._load(conn, kb_id)

    @staticmethod
    def _kb_ids(conn: sqlite3.Connection) -> list[str]:
        return [r[0] for r in conn.execute("SELECT kb_id FROM knowledge_bases ORDER BY kb_id")]

    def _load(self, conn: sqlite3.Connection, kb_id: str) -> KnowledgeBase:
        row = conn.execute(
            "SELECT description, builtin, created_at FROM knowledge_bases WHERE kb_id = ?", (kb_id,)
        ).fetchone()
        if row is None:
            raise UnknownKnowledgeBase(kb_id, self._kb_ids(conn))
        counts = dict(
            conn.execute("SELECT ds_id, count(*) FROM documents WHERE kb_id = ? GROUP BY ds_id", (kb_id,)).fetchall()
        )
        sources = tuple(
            DataSource(kb_id, ds_id, Path(path), _status(status), indexed_at, counts.get(ds_id, 0))
            for ds_id, path, status, indexed_at in conn.execute(
                "SELECT ds_id, path, status, indexed_at FROM data_sources WHERE kb_id = ? ORDER BY ds_id", (kb_id,)
            )
        )
        chunk_count = conn.execute(
            "SELECT count(*) FROM chunks JOIN documents USING (doc_id) WHERE documents.kb_id = ?", (kb_id,)
        ).fetchone()[0]
        return KnowledgeBase(kb_id, row[0], bool(row[1]), row[2], sources, sum(counts.values()), chunk_count)

    # -- indexing -------------------------------------------------------------------------------

    def indexed_files(self, kb_id: str, ds_id: str) -> dict[str, IndexedFile]:
        with self._connect() as conn:
            return {
                rel: IndexedFile(doc_id, mtime_ns, size, sha)
                for doc_id, rel, mtime_ns, size, sha in conn.execute(
                    "SELECT doc_id, rel_path, mtime_ns, size, sha256 FROM documents WHERE kb_id = ? AND ds_id = ?",
                    (kb_id, ds_id),
                )
            }

    def apply(self, kb_id: str, ds_id: str, changes: Sequence[Change]) -> None:
        """Apply the indexer's changes to one data source, all in one transaction."""
        with self._connect(write=True) as conn:
            for change in changes:
                if isinstance(change, Upsert):
                    self._upsert(conn, kb_id, ds_id, change)
                elif isinstance(change, Touch):
                    conn.execute(
                        "UPDATE documents SET mtime_ns = ?, size = ? WHERE doc_id = ?",
                        (change.mtime_ns, change.size, change.doc_id),
                    )
                elif isinstance(change, Delete):
                    conn.execute("DELETE FROM documents WHERE doc_id = ?", (change.doc_id,))

    @staticmethod
    def _upsert(conn: sqlite3.Connection, kb_id: str, ds_id: str, change: Upsert) -> None:
        doc = change.document
        # Replacing the row (not updating it) cascades to its passages and metadata rows.
        conn.execute(
            "DELETE FROM documents WHERE kb_id = ? AND ds_id = ? AND rel_path = ?", (kb_id, ds_id, change.rel_path)
        )
        cursor = conn.execute(
            "INSERT INTO documents (kb_id, ds_id, rel_path, title, file_type, metadata, mtime_ns, size, sha256) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                kb_id,
                ds_id,
                change.rel_path,
                doc.title,
                doc.file_type,
                json.dumps(doc.metadata, default=str),
                change.mtime_ns,
                change.size,
                change.sha256,
            ),
        )
        doc_id = cursor.lastrowid
        conn.executemany(
            "INSERT INTO doc_meta (doc_id, key, value) VALUES (?, ?, ?)",
            [(doc_id, k, v) for k, v in meta_rows({**doc.metadata, "file_type": doc.file_type})],
        )
        for ordinal, chunk in enumerate(change.chunks):
            chunk_id = conn.execute("INSERT INTO chunks (doc_id, ordinal) VALUES (?, ?)", (doc_id, ordinal)).lastrowid
            conn.execute(
                "INSERT INTO chunks_fts (rowid, title, heading, body) VALUES (?, ?, ?, ?)",
                (chunk_id, doc.title, chunk.heading, chunk.text),
            )

    def mark_indexed(self, kb_id: str, ds_id: str, status: DataSourceStatus, when: float) -> None:
        with self._connect(write=True) as conn:
            conn.execute(
                "UPDATE data_sources SET status = ?, indexed_at = ? WHERE kb_id = ? AND ds_id = ?",
                (status, when, kb_id, ds_id),
            )

    # -- search ---------------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> list[Passage]:
        """The best `top_k` passages of one knowledge base for `query`, best first."""
        match = fts_query(request.query)
        sql = [
            "SELECT d.ds_id, d.rel_path, d.title, f.heading, f.body, bm25(chunks_fts, ?, ?, ?) AS rank,",
            "       d.mtime_ns, d.file_type, d.metadata",
            "FROM chunks_fts AS f JOIN chunks AS c ON c.chunk_id = f.rowid",
            "JOIN documents AS d ON d.doc_id = c.doc_id",
            "WHERE chunks_fts MATCH ? AND d.kb_id = ?",
        ]
        params: list[Any] = [*BM25_WEIGHTS, match, request.kb_id]
        with self._connect() as conn:
            kb = self._load(conn, request.kb_id)
            if request.data_source_ids is not None:
                self._check_sources(kb, request.data_source_ids)
                sql.append(f"AND d.ds_id IN ({', '.join('?' * len(request.data_source_ids))})")
                params.extend(request.data_source_ids)
            for key, value in request.metadata_filters.items():
                sql.append("AND d.doc_id IN (SELECT doc_id FROM doc_meta WHERE key = ? AND value = ?)")
                params.extend((meta_key(key), meta_value(value)))
            sql.append("ORDER BY rank, c.chunk_id LIMIT ?")
            params.append(request.top_k)
            rows = conn.execute("\n".join(sql), params).fetchall()
        return [
            Passage(ds_id, rel, title, heading, body, round(-rank, 4), mtime_ns / 1e9, file_type, json.loads(meta))
            for ds_id, rel, title, heading, body, rank, mtime_ns, file_type, meta in rows
        ]

    @staticmethod
    def _check_sources(kb: KnowledgeBase, wanted: Sequence[str]) -> None:
        known = [ds.ds_id for ds in kb.data_sources]
        unknown = [ds for ds in wanted if ds not in known]
        if unknown:
            raise UnknownDataSource(kb.kb_id, unknown, known)


def _status(value: str) -> DataSourceStatus:
    return "ok" if value == "ok" else "missing" if value == "missing" else "new"
