"""What every listing command prints: a table with a header row, or with `--json` one JSON
object per line (JSON Lines: `jq`, `grep` and a line-by-line reader all take it).

Cells come from anyone (a DCR client's name, a username, a tool name an MCP client sent):
control characters are escaped before they reach the operator's terminal, and long cells are
cut with an ellipsis in the table (never in JSON, which escapes them itself).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = [
    "Column",
    "add_json_flag",
    "add_limit_flag",
    "iso",
    "print_more",
    "print_record",
    "print_rows",
    "printable",
]

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
GAP = "  "
DEFAULT_LIMIT = 100  # rows a listing of stored rows prints unless `--limit` says otherwise
MAX_LIMIT = 1_000_000


def printable(text: str) -> str:
    """Control characters as `\\xNN`: a name chosen by anyone never drives the terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def iso(at: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC to the second (`2026-12-04T10:32:00Z`); None stays None."""
    return None if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: Any) -> str:
    if value is None or value == "" or value == [] or value == ():
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True, slots=True)
class Column:
    """One table column: the row's `key`, its `header`, how a value is shown (default: `-`
    for nothing, lists joined by commas) and at most how wide."""

    key: str
    header: str
    show: Callable[[Any], str] = _cell
    width: int = 48


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


def _limit(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def add_limit_flag(parser: argparse.ArgumentParser, what: str, default: int = DEFAULT_LIMIT) -> None:
    """`--limit N`: the listing reads at most N of `what` from the store (a page, newest first)."""
    parser.add_argument(
        "--limit",
        type=_limit,
        default=default,
        metavar="N",
        help=f"at most N {what}, newest first (default {default}); stderr says how many more there are",
    )


def print_more(more: int, what: str, limit: int, *, out: TextIO | None = None) -> None:
    """The line a listing cut at `--limit` ends with: how many more there are. On stderr, so
    stdout stays the table or the JSON Lines (`--json | jq` reads no stray line)."""
    if more > 0:
        print(
            f"authgate: {more} more {what} not listed (newest first, --limit {limit}): raise --limit",
            file=out or sys.stderr,
        )


def _fit(text: str, width: int) -> str:
    text = printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def print_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    as_json: bool,
    empty: str | None = None,
    out: TextIO | None = None,
) -> None:
    """The rows as a table under a header row, or as JSON Lines (every key of each row, not
    only the columns'). With no row the table is its header alone, or `empty` if given."""
    out = out or sys.stdout
    rows = list(rows)
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str), file=out)
        return
    if not rows and empty is not None:
        print(empty, file=out)
        return
    table = [[c.header for c in columns]]
    table += [[_fit(c.show(row.get(c.key)), c.width) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print(GAP.join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip(), file=out)


def print_record(record: Mapping[str, Any], fields: Sequence[Column], *, out: TextIO | None = None) -> None:
    """One record as `header: value` lines (`clients show`); lists one item per line."""
    out = out or sys.stdout
    label = max(len(f.header) for f in fields) + 1
    for f in fields:
        value = record.get(f.key)
        items = value if isinstance(value, list | tuple) and value else [value]
        for i, item in enumerate(items):
            head = f"{f.header}:" if i == 0 else ""
            print(f"{head.ljust(label)} {printable(f.show(item))}".rstrip(), file=out)
