"""What the knowledge base refuses, in one small branch of authgate's error tree.

    AuthgateError                      (authgate.errors)
    └── KnowledgeBaseError             a knowledge-base request cannot be served as asked
        ├── UnknownKnowledgeBase       no knowledge base has that id
        ├── UnknownDataSource          a data source id is not in that knowledge base
        ├── InvalidQuery               the query has no searchable words, or a filter is malformed
        ├── InvalidKnowledgeBase       a name or folder given to `kb add` is not acceptable
        └── SkippedFile                a file the indexer will not read (kb/indexer.py; reported,
                                       never raised past the indexer)

Each message says what is wrong and what to do instead: the MCP tools hand it to the model
verbatim (as a tool error), the CLI prints it.
"""

from __future__ import annotations

from authgate.errors import AuthgateError


class KnowledgeBaseError(AuthgateError):
    """A knowledge-base request cannot be served as asked."""


class UnknownKnowledgeBase(KnowledgeBaseError):
    def __init__(self, kb_id: str, known: list[str]) -> None:
        choices = ", ".join(known) if known else "none yet (add one with `authgate kb add`)"
        super().__init__(f"unknown knowledge base {kb_id!r}; the knowledge bases are: {choices}")


class UnknownDataSource(KnowledgeBaseError):
    def __init__(self, kb_id: str, unknown: list[str], known: list[str]) -> None:
        super().__init__(
            f"knowledge base {kb_id!r} has no data source {', '.join(map(repr, unknown))}; "
            f"its data sources are: {', '.join(known) or 'none'}"
        )


class InvalidQuery(KnowledgeBaseError):
    """The query text or a filter cannot be searched."""


class InvalidKnowledgeBase(KnowledgeBaseError):
    """A knowledge base name or folder is not acceptable."""
