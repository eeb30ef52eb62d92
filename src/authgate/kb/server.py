"""The knowledge-base MCP server: seed 000's three tools over a local SQLite FTS5 index.

`list_knowledge_bases`, `list_data_sources` and `query_knowledge_base` answer with structured
content (the pydantic models below are their output schemas); `whoami` is the same tool the
`whoami` app serves. Over HTTP (`build_app`, what `authgate serve` protects) or stdio
(`serve_stdio`, what `authgate kb serve --stdio` runs).

Results name a file by its data source and its path inside it, never by its absolute path:
the caller is a remote model, and where the folders live on this machine is not its business.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.applications import Starlette

from authgate._version import __version__
from authgate.kb.errors import KnowledgeBaseError
from authgate.kb.models import KnowledgeBase, Passage, SearchRequest
from authgate.kb.service import DEFAULT_REINDEX_INTERVAL, IndexStatus, KnowledgeService
from authgate.mcpapp.spec_errors import SpecErrorsServer
from authgate.mcpapp.whoami import add_whoami_tool

INSTRUCTIONS = (
    "authgate's built-in knowledge-base server. Call list_knowledge_bases to see what can be "
    "searched, then query_knowledge_base with a knowledge_base_id and a few distinctive keywords. "
    "whoami tells who you are signed in as."
)
MAX_TOP_K = 50
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


# -- output schemas ---------------------------------------------------------------------------


class KnowledgeBaseInfo(BaseModel):
    knowledge_base_id: str = Field(description="pass this to list_data_sources and query_knowledge_base")
    description: str
    data_source_count: int
    document_count: int
    passage_count: int = Field(description="searchable passages (documents are cut at headings and paragraphs)")
    status: IndexStatus = Field(
        description="ready; indexing (results come from the previous pass); not_indexed (nothing searchable yet)"
    )
    last_indexed: str | None = Field(description="ISO 8601 UTC time of the last complete indexing pass")


class KnowledgeBaseList(BaseModel):
    knowledge_bases: list[KnowledgeBaseInfo]


class DataSourceInfo(BaseModel):
    data_source_id: str = Field(description="pass in data_source_ids to query_knowledge_base to search only it")
    name: str = Field(description="the folder's name")
    status: str = Field(
        description="ok; new (not indexed yet); missing (the folder was not found "
        "when last indexed; its earlier passages are kept)"
    )
    document_count: int
    last_indexed: str | None


class DataSourceList(BaseModel):
    knowledge_base_id: str
    data_sources: list[DataSourceInfo]


class PassageSource(BaseModel):
    data_source_id: str
    path: str = Field(description="the file's path inside its data source")
    title: str = Field(description="the document's title (front matter, first heading, or file name)")
    heading: str = Field(description="the passage's section, headings outermost first joined by ' > '")
    modified: str = Field(description="the file's modification time, ISO 8601 UTC")


class RetrievedPassage(BaseModel):
    rank: int = Field(description="1 is the best match")
    score: float = Field(description="BM25 relevance, higher is better; comparable only within one query")
    text: str = Field(description="the passage (about 1000 characters)")
    source: PassageSource
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="the document's front matter and file_type (null when include_metadata "
        "is false); any key here can be used in metadata_filters",
    )


class QueryResult(BaseModel):
    knowledge_base_id: str
    query: str
    status: IndexStatus
    results: list[RetrievedPassage]


# -- tools ------------------------------------------------------------------------------------

LIST_KBS = """List the knowledge bases this server can search.

Each has an id (pass it to the other tools), a description, how many documents and passages it
holds and whether its index is ready. Call this first."""

LIST_SOURCES = """List the data sources (folders of documents) of one knowledge base.

Use a data source's id in query_knowledge_base's data_source_ids to search only that folder."""

QUERY = """Search a knowledge base and return the best-matching passages, best first.

This is keyword search ranked by BM25 (SQLite FTS5), not semantic search: pass the distinctive
words the answer should contain ("refresh token rotation grace window"), not a whole sentence.
Words are matched after stemming (configure = configuration), case-insensitively, and any word
may match; passages holding more of the rarer words, and holding them in a title or heading,
rank higher. Operators and punctuation have no special meaning. Each result carries its text,
score, source (data source, file path, title, section heading) and, unless include_metadata is
false, the document's metadata (front matter such as tags or category, plus file_type).
Narrow the search with data_source_ids and with metadata_filters: {"key": value} pairs that must
all equal the document's metadata (case-insensitive; a list value such as tags matches if any
item is equal). If nothing relevant comes back, try other words or synonyms."""


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _kb_info(kb: KnowledgeBase, status: IndexStatus) -> KnowledgeBaseInfo:
    return KnowledgeBaseInfo(
        knowledge_base_id=kb.kb_id,
        description=kb.description,
        data_source_count=len(kb.data_sources),
        document_count=kb.document_count,
        passage_count=kb.chunk_count,
        status=status,
        last_indexed=_iso(kb.indexed_at),
    )


def _passage(rank: int, passage: Passage, include_metadata: bool) -> RetrievedPassage:
    metadata = {**passage.metadata, "file_type": passage.file_type} if include_metadata else None
    source = PassageSource(
        data_source_id=passage.ds_id,
        path=passage.rel_path,
        title=passage.title,
        heading=passage.heading,
        modified=_iso(passage.modified) or "",
    )
    return RetrievedPassage(rank=rank, score=passage.score, text=passage.text, source=source, metadata=metadata)


def add_knowledge_base_tools(server: MCPServer[Any], service: KnowledgeService) -> None:
    """Register the three knowledge-base tools on `server`, answering from `service`."""

    @server.tool(description=LIST_KBS, annotations=_READ_ONLY)
    async def list_knowledge_bases() -> KnowledgeBaseList:
        bases = await service.knowledge_bases()
        return KnowledgeBaseList(knowledge_bases=[_kb_info(kb, service.status(kb)) for kb in bases])

    @server.tool(description=LIST_SOURCES, annotations=_READ_ONLY)
    async def list_data_sources(
        knowledge_base_id: Annotated[str, Field(description="a knowledge_base_id from list_knowledge_bases")],
    ) -> DataSourceList:
        try:
            kb = await service.knowledge_base(knowledge_base_id)
        except KnowledgeBaseError as exc:
            raise ToolError(str(exc)) from exc
        return DataSourceList(
            knowledge_base_id=kb.kb_id,
            data_sources=[
                DataSourceInfo(
                    data_source_id=ds.ds_id,
                    name=ds.path.name,
                    status=ds.status,
                    document_count=ds.document_count,
                    last_indexed=_iso(ds.indexed_at),
                )
                for ds in kb.data_sources
            ],
        )

    @server.tool(description=QUERY, annotations=_READ_ONLY)
    async def query_knowledge_base(
        knowledge_base_id: Annotated[str, Field(description="a knowledge_base_id from list_knowledge_bases")],
        query: Annotated[str, Field(description="the words to search for", max_length=2000)],
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="how many passages to return")] = 5,
        data_source_ids: Annotated[
            list[str] | None,
            Field(description="search only these data sources (ids from list_data_sources); default all"),
        ] = None,
        metadata_filters: Annotated[
            dict[str, str | int | float | bool] | None,
            Field(
                description='only documents whose metadata has all these key/value pairs, e.g. {"category": "guide"}'
            ),
        ] = None,
        include_metadata: Annotated[bool, Field(description="return each document's metadata")] = True,
    ) -> QueryResult:
        request = SearchRequest(
            knowledge_base_id,
            query,
            top_k,
            None if data_source_ids is None else tuple(data_source_ids),
            dict(metadata_filters or {}),
        )
        try:
            passages = await service.search(request)
            kb = await service.knowledge_base(knowledge_base_id)  # its status after the search
        except KnowledgeBaseError as exc:
            raise ToolError(str(exc)) from exc
        return QueryResult(
            knowledge_base_id=knowledge_base_id,
            query=query,
            status=service.status(kb),
            results=[_passage(i, p, include_metadata) for i, p in enumerate(passages, 1)],
        )


# -- the server -------------------------------------------------------------------------------


def build_server(data_dir: Path, *, reindex_interval: float | None = DEFAULT_REINDEX_INTERVAL) -> MCPServer[None]:
    """The knowledge-base MCP server on the index in `data_dir` (`kb.sqlite3`)."""
    service = KnowledgeService(data_dir, reindex_interval=reindex_interval)

    @asynccontextmanager
    async def lifespan(_server: MCPServer[None]) -> AsyncIterator[None]:
        async with service.running():
            yield None

    server: MCPServer[None] = SpecErrorsServer(
        "authgate", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan
    )
    add_whoami_tool(server)
    add_knowledge_base_tools(server, service)
    return server


def build_app(data_dir: Path, *, reindex_interval: float | None = DEFAULT_REINDEX_INTERVAL) -> Starlette:
    """The server as a Streamable HTTP app at `/mcp`, like `authgate.mcpapp.whoami.build_app()`.

    Its lifespan (run by `authgate serve` inside its own) opens the index and indexes in the
    background; see `authgate.kb.service`.
    """
    # Origin/Host checks are the guard's job (it knows the public URL); the SDK's own
    # localhost-only defaults would refuse a non-loopback public host.
    return build_server(data_dir, reindex_interval=reindex_interval).streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


async def serve_stdio(data_dir: Path, *, reindex_interval: float | None = DEFAULT_REINDEX_INTERVAL) -> None:
    """Serve over stdin/stdout until the client closes them (`authgate kb serve --stdio`)."""
    await build_server(data_dir, reindex_interval=reindex_interval).run_stdio_async()
