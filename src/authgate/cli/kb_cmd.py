"""`authgate kb …`: knowledge bases (add, list, reindex, remove) and the stdio server.

Every subcommand takes the usual settings flags, so `--data-dir` / `AUTHGATE_DATA_DIR` choose
the index (`DATA_DIR/kb.sqlite3`) that `authgate serve` uses too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from authgate.cli.output import Column, add_json_flag, iso, print_rows
from authgate.cli.settings_flags import add_setting_flags, setting_overrides
from authgate.config.settings import load_settings

if TYPE_CHECKING:
    from authgate.kb.indexer import Indexer, IndexReport
    from authgate.kb.models import KnowledgeBase
    from authgate.kb.store import KnowledgeStore


def _store(args: argparse.Namespace) -> KnowledgeStore:
    from authgate.kb.service import index_path
    from authgate.kb.store import KnowledgeStore

    store = KnowledgeStore(index_path(_data_dir(args)))
    store.open()
    return store


def _data_dir(args: argparse.Namespace) -> Path:
    return load_settings(args.config, **setting_overrides(args)).data_dir


def _indexer(args: argparse.Namespace, store: KnowledgeStore, progress: Progress) -> Indexer:
    from authgate.kb.indexer import Indexer

    # never publish authgate's own secrets
    return Indexer(store, excluded=(_data_dir(args),), on_file=progress.update)


class Progress:
    """One line on stderr, rewritten as files are indexed (at most ten times a second), and
    cleared at the end; only on a terminal, so a pipe or a log gets the summary alone."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.on = stream.isatty()
        self.last = -1.0

    def update(self, report: IndexReport) -> None:
        now = time.monotonic()
        if not self.on or 0 <= now - self.last < 0.1:
            return
        self.last = now
        done = report.added + report.updated + report.unchanged + len(report.skipped)
        self.stream.write(
            f"\r\x1b[K{report.kb_id}: {done} files examined ({report.added} added, {report.updated} updated, "
            f"{len(report.skipped)} skipped)"
        )
        self.stream.flush()

    def end(self) -> None:
        if self.last >= 0:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.last = -1.0


def _print_report(report: IndexReport) -> None:
    print(report.summary())
    for line in report.skipped:
        print(f"  skipped {line}")


def _reindex(indexer: Indexer, progress: Progress, kb_id: str) -> IndexReport:
    try:
        return indexer.reindex(kb_id)
    finally:
        progress.end()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _folders(raw: list[str]) -> list[Path]:
    from authgate.kb.errors import InvalidKnowledgeBase

    folders = []
    for name in raw:
        path = Path(name).expanduser().resolve()
        if not path.is_dir():
            raise InvalidKnowledgeBase(f"{name} is not a folder; pass folders of .md, .txt or .html files")
        folders.append(path)
    return folders


def cmd_add(args: argparse.Namespace) -> int:
    from authgate.kb.service import index_path

    folders = _folders(args.dirs)
    store = _store(args)
    kb = store.add_knowledge_base(args.name, folders, description=args.description or "", now=time.time())
    where = index_path(_data_dir(args))
    if args.no_index:
        print(
            f"knowledge base {kb.kb_id}: {_count(len(kb.data_sources), 'folder')} registered in {where}, "
            "not indexed yet "
            f"(`authgate kb reindex {kb.kb_id}` or the next `authgate serve` indexes them)"
        )
    else:
        progress = Progress(sys.stderr)
        report = _reindex(_indexer(args, store, progress), progress, kb.kb_id)
        kb = store.get_knowledge_base(kb.kb_id)
        print(
            f"knowledge base {kb.kb_id}: {_count(kb.document_count, 'document')}, "
            f"{_count(kb.chunk_count, 'passage')} from {_count(len(kb.data_sources), 'folder')}, "
            f"{_count(len(report.skipped), 'file')} skipped; index: {where}"
        )
        _print_report(report)
    for ds in kb.data_sources:
        print(f"  folder {ds.ds_id}: {ds.path}")
    return 0


def _folders_cell(folders: list[dict[str, object]]) -> str:
    return ",".join(f"{f['path']}{' (missing)' if f['status'] == 'missing' else ''}" for f in folders or [])


KB_COLUMNS = (
    Column("name", "NAME"),
    Column("builtin", "BUILT-IN"),
    Column("documents", "DOCUMENTS"),
    Column("passages", "PASSAGES"),
    Column("indexed", "INDEXED"),
    Column("folders", "FOLDERS", show=_folders_cell, width=80),
    Column("description", "DESCRIPTION"),
)


def _kb_row(kb: KnowledgeBase) -> dict[str, object]:
    folders = [
        {"id": ds.ds_id, "path": str(ds.path), "documents": ds.document_count, "status": ds.status}
        for ds in kb.data_sources
    ]
    return {
        "name": kb.kb_id,
        "builtin": kb.builtin,
        "documents": kb.document_count,
        "passages": kb.chunk_count,
        "indexed": iso(kb.indexed_at),
        "folders": folders,
        "description": kb.description,
    }


def cmd_list(args: argparse.Namespace) -> int:
    bases = _store(args).list_knowledge_bases()
    empty = (
        "no knowledge bases: add one with `authgate kb add NAME DIR…` "
        "(`authgate serve` registers the built-in authgate-docs when there is none)"
    )
    print_rows([_kb_row(kb) for kb in bases], KB_COLUMNS, as_json=args.json, empty=empty)
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    store, progress = _store(args), Progress(sys.stderr)
    indexer = _indexer(args, store, progress)
    names = [args.name] if args.name else [kb.kb_id for kb in store.list_knowledge_bases()]
    reports = [_reindex(indexer, progress, name) for name in names]
    for report in reports:
        _print_report(report)
    return 1 if any(r.missing_sources for r in reports) else 0


def cmd_remove(args: argparse.Namespace) -> int:
    _store(args).remove_knowledge_base(args.name)
    print(f"removed knowledge base {args.name} (its folders are untouched)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import anyio

    from authgate.kb.server import serve_stdio

    if not args.stdio:
        print(
            "authgate: `kb serve` needs --stdio; over HTTP, `authgate serve` serves the knowledge base behind OAuth",
            file=sys.stderr,
        )
        return 2
    settings = load_settings(args.config, **setting_overrides(args))
    anyio.run(serve_stdio, settings.data_dir)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `kb` and its subcommands to the `authgate` parser."""
    kb = sub.add_parser("kb", help="knowledge bases searched by the built-in MCP server")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)

    add = kb_sub.add_parser("add", help="create a knowledge base from folders (or add folders to it) and index it")
    add.add_argument("name", help="knowledge base id: letters, digits, '.', '_', '-'")
    add.add_argument("dirs", nargs="+", metavar="DIR", help="folder of .md, .txt or .html files")
    add.add_argument("--description", help="what the knowledge base holds (shown to MCP clients)")
    add.add_argument("--no-index", action="store_true", help="register only; index at the next start or reindex")
    add.set_defaults(func=cmd_add)

    listing = kb_sub.add_parser("list", help="list knowledge bases and their folders")
    add_json_flag(listing)
    listing.set_defaults(func=cmd_list)

    reindex = kb_sub.add_parser("reindex", help="pick up added, changed and removed files now")
    reindex.add_argument("name", nargs="?", help="one knowledge base (default: all)")
    reindex.set_defaults(func=cmd_reindex)

    remove = kb_sub.add_parser("remove", help="forget a knowledge base and its index (files are untouched)")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_remove)

    serve = kb_sub.add_parser("serve", help="run the knowledge-base MCP server without authgate's OAuth")
    serve.add_argument("--stdio", action="store_true", help="over stdin/stdout (for MCP clients that start it)")
    serve.set_defaults(func=cmd_serve)

    for parser in (add, reindex, remove, serve, kb_sub.choices["list"]):
        add_setting_flags(parser, shown=("data_dir",))
