"""Bringing the index in line with the folders: added, changed and removed files.

A file is unchanged while its mtime and size are; when either moved, its SHA-256 decides
whether it is re-parsed (content changed) or only its stat is recorded (touched). A file no
longer under its folder (deleted, renamed, now hidden or too large) loses its passages. A folder
that is missing altogether keeps its passages and is reported: an unmounted disk should not
empty a knowledge base.

Changes are written in batches, one transaction each, so searches keep being served from the
last committed state while a large folder is indexed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat as stat_mode
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from authgate.kb.chunking import chunk_document
from authgate.kb.documents import file_type_of, parse_document
from authgate.kb.errors import KnowledgeBaseError
from authgate.kb.models import Change, DataSource, Delete, IndexedFile, KnowledgeBase, Touch, Upsert
from authgate.kb.store import KnowledgeStore

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 5 * 1024 * 1024
BATCH_SIZE = 64
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv"})

SAMPLE_KB = "authgate-docs"
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
SAMPLE_SOURCE = "sample"  # the data source id the sample folder gets (its name)
SAMPLE_DESCRIPTION = (
    "authgate's own documentation: what authgate is, how to connect ChatGPT, Claude "
    "and other MCP clients, configuration, and this knowledge base server."
)


@dataclass(slots=True)
class IndexReport:
    kb_id: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: why"
    missing_sources: list[str] = field(default_factory=list)
    stopped: bool = False  # interrupted by shutdown; the next run finishes the job

    def summary(self) -> str:
        parts = [
            f"{self.kb_id}: {self.added} added, {self.updated} updated, {self.removed} removed, "
            f"{self.unchanged} unchanged"
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.missing_sources:
            parts.append(f"missing folders: {', '.join(self.missing_sources)}")
        if self.stopped:
            parts.append("stopped before the end")
        return "; ".join(parts)


class Indexer:
    """Indexes knowledge bases of one store. `should_stop` is polled between files; `excluded`
    folders (authgate's own data directory) are never indexed, even inside a data source;
    `on_file` is told the report so far after each file (the CLI's progress line)."""

    def __init__(
        self,
        store: KnowledgeStore,
        *,
        clock: Callable[[], float] = time.time,
        should_stop: Callable[[], bool] = lambda: False,
        excluded: tuple[Path, ...] = (),
        on_file: Callable[[IndexReport], None] = lambda _: None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.should_stop = should_stop
        self.on_file = on_file
        self.excluded = tuple(Path(os.path.realpath(p)) for p in excluded)

    def reindex_all(self) -> list[IndexReport]:
        return [self.reindex(kb.kb_id) for kb in self.store.list_knowledge_bases()]

    def reindex(self, kb_id: str) -> IndexReport:
        kb = self.store.get_knowledge_base(kb_id)
        report = IndexReport(kb_id)
        for source in kb.data_sources:
            self._index_source(source, report)
            if report.stopped:
                break
        log.info("knowledge base %s", report.summary())
        return report

    def _index_source(self, source: DataSource, report: IndexReport) -> None:
        started = self.clock()
        if not source.path.is_dir():
            report.missing_sources.append(source.ds_id)
            self.store.mark_indexed(source.kb_id, source.ds_id, "missing", started)
            return
        known = self.store.indexed_files(source.kb_id, source.ds_id)
        seen: set[str] = set()
        batch: list[Change] = []
        root = Path(os.path.realpath(source.path))
        for rel_path, path in walk_folder(source.path, report.skipped, excluded=self.excluded):
            if self.should_stop():
                report.stopped = True
                break
            change = self._examine(root, rel_path, path, known.get(rel_path), report)
            self.on_file(report)
            if change is not False:
                seen.add(rel_path)
            if isinstance(change, (Upsert, Touch)):
                batch.append(change)
            if len(batch) >= BATCH_SIZE:
                self.store.apply(source.kb_id, source.ds_id, batch)
                batch = []
        if not report.stopped:
            gone = [Delete(f.doc_id) for rel, f in known.items() if rel not in seen]
            report.removed += len(gone)
            batch.extend(gone)
        self.store.apply(source.kb_id, source.ds_id, batch)
        if not report.stopped:
            self.store.mark_indexed(source.kb_id, source.ds_id, "ok", started)

    @staticmethod
    def _examine(
        root: Path, rel_path: str, path: Path, known: IndexedFile | None, report: IndexReport
    ) -> Change | None | bool:
        """The change a file needs, None when up to date, False when it cannot be indexed."""
        try:
            stat, raw = read_inside(root, path, known)
        except SkippedFile as why:
            report.skipped.append(f"{rel_path}: {why}")
            return False
        except OSError as exc:
            report.skipped.append(f"{rel_path}: {exc.strerror or exc}")
            return False
        if raw is None:
            report.unchanged += 1
            return None
        digest = hashlib.sha256(raw).hexdigest()
        if known is not None and known.sha256 == digest:
            report.unchanged += 1
            return Touch(known.doc_id, stat.st_mtime_ns, stat.st_size)
        document = parse_document(rel_path, raw)
        chunks = tuple(chunk_document(document.text, headings=document.has_headings))
        if known is None:
            report.added += 1
        else:
            report.updated += 1
        return Upsert(rel_path, document, chunks, stat.st_mtime_ns, stat.st_size, digest)


class SkippedFile(KnowledgeBaseError):
    """A file the indexer refuses to read; the message says why (shown by `kb add`/`reindex`)."""


def read_inside(root: Path, path: Path, known: IndexedFile | None) -> tuple[os.stat_result, bytes | None]:
    """Open `path` without following a link and read it, only if it is a plain file with one
    name whose real path is under `root`. The checks are made on the open descriptor, so a file
    swapped for a link after the folder was listed is refused too. Returns (stat, None) when the
    file is unchanged since `known`."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        stat = os.fstat(fd)
        _refuse_unless_own_file(root, fd, stat)
        if stat.st_size > MAX_FILE_BYTES:
            raise SkippedFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        if known is not None and (known.mtime_ns, known.size) == (stat.st_mtime_ns, stat.st_size):
            return stat, None
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise SkippedFile(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        return stat, raw
    finally:
        os.close(fd)


def _refuse_unless_own_file(root: Path, fd: int, stat: os.stat_result) -> None:
    if not stat_mode.S_ISREG(stat.st_mode):
        raise SkippedFile("not a regular file")
    if stat.st_nlink > 1:
        # Another name of the same file may live anywhere on the disk (e.g. a hard link to a
        # secret): its content is not the folder owner's to publish.
        raise SkippedFile("hard link (the file has other names; copy it into the folder instead)")
    real = _real_path_of(fd)
    if real is not None and not real.is_relative_to(root):
        raise SkippedFile("resolves outside the data source's folder")


def _real_path_of(fd: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:  # no /proc (not Linux): the O_NOFOLLOW open and the walk's checks remain
        return None


def walk_folder(
    root: Path, skipped: list[str] | None = None, *, excluded: tuple[Path, ...] = ()
) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every indexable file under `root`, in a stable order.

    Hidden files and folders (a leading dot), and dependency/cache folders, are left out.
    Symbolic links, to files or folders, are never followed: a knowledge base publishes what is
    in its folder, not what a link points at (no cycles, no escaping the data source). Folders
    in `excluded` (real paths) are left out. What is left out for safety is noted in `skipped`.
    """
    note = skipped.append if skipped is not None else (lambda _: None)
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        if any(Path(os.path.realpath(here)).is_relative_to(ex) for ex in excluded):
            note(f"{here.relative_to(root).as_posix()}/: authgate's own data directory")
            dirs[:] = []
            continue
        kept = []
        for d in sorted(dirs):
            if d.startswith(".") or d in SKIPPED_DIRS:
                continue
            if (here / d).is_symlink():
                note(f"{(here / d).relative_to(root).as_posix()}/: symbolic link (not followed)")
                continue
            kept.append(d)
        dirs[:] = kept
        for name in sorted(files):
            if name.startswith(".") or file_type_of(name) is None:
                continue
            path = here / name
            if path.is_symlink():
                note(f"{path.relative_to(root).as_posix()}: symbolic link (not followed)")
                continue
            yield path.relative_to(root).as_posix(), path


def ensure_sample(store: KnowledgeStore, now: float) -> KnowledgeBase | None:
    """Register the shipped sample corpus as `authgate-docs` when there is no knowledge base,
    and keep a registered built-in pointing at this installation's copy of it."""
    bases = store.list_knowledge_bases()
    if not bases:
        return store.add_knowledge_base(SAMPLE_KB, [SAMPLE_DIR], description=SAMPLE_DESCRIPTION, builtin=True, now=now)
    for kb in bases:
        if kb.builtin and any(source.ds_id == SAMPLE_SOURCE for source in kb.data_sources):
            store.set_data_source_path(kb.kb_id, SAMPLE_SOURCE, SAMPLE_DIR)
    return None
