"""From what a user (or a model) typed to a safe FTS5 query, and metadata values to comparable keys.

User text never reaches FTS5's query parser as syntax: it is cut into words (Unicode letters
and digits, as FTS5's `unicode61` tokenizer sees them), each word is double-quoted (so `AND`,
`NEAR`, `*`, `^`, `:` and parentheses are plain words or dropped), and the words are joined
with `OR`. BM25 then ranks passages by how many of the rarer words they hold and how often, so
a natural-language question works without any operator.
"""

from __future__ import annotations

import math
import re

from authgate.kb.documents import MetaValue
from authgate.kb.errors import InvalidQuery

MAX_TERMS = 32
MAX_QUERY_CHARS = 2000

# Words so common that they only add noise to an OR query; kept when nothing else is left.
_STOPWORDS = frozenset(
    """
a an and are as at be but by can do does for from how i if in into is it its me my of on or our
so that the their then there these this to was we what when where which who why will with you your
""".split()
)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """The distinct searchable words of `text`, lowercased, stopwords dropped unless only those."""
    if not text.strip():
        raise InvalidQuery("query is empty: pass the words to search for, e.g. 'refresh token rotation'")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"query is {len(text)} characters long; keep it under {MAX_QUERY_CHARS}")
    words = list(dict.fromkeys(w.casefold() for w in _WORD.findall(text)))
    if not words:
        raise InvalidQuery(f"query {text!r} has no searchable words (letters or digits)")
    meaningful = [w for w in words if w not in _STOPWORDS]
    return (meaningful or words)[:MAX_TERMS]


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression for `text` that cannot be a syntax error."""
    # Words hold only letters and digits, so none contains a double quote to escape.
    return " OR ".join(f'"{word}"' for word in query_terms(text))


def meta_key(key: str) -> str:
    return key.strip().casefold()


def meta_value(value: str | int | float | bool) -> str:
    """How a metadata value is stored and compared: case-insensitive text, 2 == 2.0 == "2"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value).strip().casefold()


def meta_rows(metadata: dict[str, MetaValue]) -> set[tuple[str, str]]:
    """(key, value) pairs a document can be filtered on; a list value matches each of its items."""
    rows: set[tuple[str, str]] = set()
    for key, value in metadata.items():
        items = value if isinstance(value, list) else [value]
        rows.update((meta_key(key), meta_value(item)) for item in items if item is not None)
    return rows
