"""The KB tools through a real MCP client: the `mcp` 2.3.0 SDK `Client` over Streamable HTTP
(the app under uvicorn on a loopback port, lifespan on, no OAuth) in both protocol eras, and
over stdio against `authgate kb serve --stdio`. Every wait is bounded."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, TextContent
from starlette.applications import Starlette

from authgate.kb.server import build_app
from authgate.kb.store import KnowledgeStore
from support import requirements as req

CALL_TIMEOUT = 60.0
KB_TOOLS = {"list_knowledge_bases", "list_data_sources", "query_knowledge_base"}
MODES = {"legacy": ("legacy", "2025-11-25"), "2026-07-28": ("auto", "2026-07-28")}


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture
def company_dir(tmp_path: Path, corpus: Path) -> Path:
    data = tmp_path / "data"
    store = KnowledgeStore(data / "kb.sqlite3")
    store.open()
    store.add_knowledge_base(
        "company", [corpus / "handbook", corpus / "engineering"], description="company docs", now=time.time()
    )
    return data  # not indexed yet: the server's start-up pass does it


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.requirement(req.MCP_2025_11_25_TOOLS_OUTPUT_SCHEMA)
async def test_tools_are_listed_with_schemas_and_answer_over_http(
    company_dir: Path, serve_app: Callable[[Starlette], str], mode: str
) -> None:
    client_mode, version = MODES[mode]
    base = serve_app(build_app(company_dir, reindex_interval=None))
    with anyio.fail_after(CALL_TIMEOUT):
        async with Client(f"{base}/mcp", mode=client_mode) as client:
            assert client.protocol_version == version
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert KB_TOOLS | {"whoami"} <= set(tools)
            for name in KB_TOOLS:
                assert tools[name].output_schema is not None
                description, annotations = tools[name].description, tools[name].annotations
                assert description is not None and len(description) > 80
                assert annotations is not None and annotations.read_only_hint
            query_schema = tools["query_knowledge_base"].input_schema
            assert query_schema["required"] == ["knowledge_base_id", "query"]
            assert {"top_k", "data_source_ids", "metadata_filters", "include_metadata"} <= set(
                query_schema["properties"]
            )

            listed = structured(await client.call_tool("list_knowledge_bases", {}))
            jsonschema.validate(listed, tools["list_knowledge_bases"].output_schema)
            [kb] = listed["knowledge_bases"]
            assert (kb["knowledge_base_id"], kb["document_count"], kb["status"]) == ("company", 5, "ready")

            sources = structured(await client.call_tool("list_data_sources", {"knowledge_base_id": "company"}))
            jsonschema.validate(sources, tools["list_data_sources"].output_schema)
            assert [s["data_source_id"] for s in sources["data_sources"]] == ["engineering", "handbook"]
            assert all(not s["name"].startswith("/") for s in sources["data_sources"])

            found = structured(
                await client.call_tool(
                    "query_knowledge_base",
                    {"knowledge_base_id": "company", "query": "how many vacation days", "top_k": 3},
                )
            )
            jsonschema.validate(found, tools["query_knowledge_base"].output_schema)
            top = found["results"][0]
            assert top["rank"] == 1 and top["score"] > 0
            assert top["source"]["path"] == "vacation.md" and top["source"]["data_source_id"] == "handbook"
            assert top["metadata"]["category"] == "hr" and top["metadata"]["file_type"] == "markdown"
            assert "twenty-five days" in top["text"]


async def test_query_filters_and_metadata_switch_through_the_tool(
    company_dir: Path, serve_app: Callable[[Starlette], str]
) -> None:
    base = serve_app(build_app(company_dir, reindex_interval=None))
    with anyio.fail_after(CALL_TIMEOUT):
        async with Client(f"{base}/mcp", mode="legacy") as client:
            query = {"knowledge_base_id": "company", "query": "policy days paged", "top_k": 10}
            by_meta = structured(
                await client.call_tool(
                    "query_knowledge_base", {**query, "metadata_filters": {"tags": "policy", "year": 2023}}
                )
            )
            assert {r["source"]["path"] for r in by_meta["results"]} == {"expenses.md"}
            by_source = structured(
                await client.call_tool(
                    "query_knowledge_base", {**query, "data_source_ids": ["engineering"], "include_metadata": False}
                )
            )
            assert {r["source"]["path"] for r in by_source["results"]} == {"oncall.html"}
            assert all(r["metadata"] is None for r in by_source["results"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"knowledge_base_id": "nope", "query": "days"},
            "unknown knowledge base 'nope'; the knowledge bases are: company",
        ),
        ({"knowledge_base_id": "company", "query": "   "}, "query is empty"),
        ({"knowledge_base_id": "company", "query": "?!"}, "no searchable words"),
        ({"knowledge_base_id": "company", "query": "days", "data_source_ids": ["wiki"]}, "no data source 'wiki'"),
        ({"knowledge_base_id": "company", "query": "days", "top_k": 0}, "top_k"),
        ({"knowledge_base_id": "company"}, "query"),
    ],
)
@pytest.mark.requirement(req.MCP_2025_11_25_TOOLS_IS_ERROR)
async def test_bad_calls_get_clear_tool_errors(
    company_dir: Path, serve_app: Callable[[Starlette], str], arguments: dict[str, Any], message: str
) -> None:
    base = serve_app(build_app(company_dir, reindex_interval=None))
    with anyio.fail_after(CALL_TIMEOUT):
        async with Client(f"{base}/mcp", mode="legacy") as client:
            text = error_text(await client.call_tool("query_knowledge_base", arguments))
            assert message in text
            if "unknown" in message:
                bad = await client.call_tool("list_data_sources", {"knowledge_base_id": "nope"})
                assert "unknown knowledge base 'nope'" in error_text(bad)


async def test_zero_configuration_serves_the_sample_corpus_and_whoami(
    tmp_path: Path, serve_app: Callable[[Starlette], str]
) -> None:
    started = time.monotonic()
    base = serve_app(build_app(tmp_path / "fresh", reindex_interval=None))
    assert time.monotonic() - started < 10, "start-up must not wait for indexing"
    with anyio.fail_after(CALL_TIMEOUT):
        async with Client(f"{base}/mcp", mode="auto") as client:
            listed = structured(await client.call_tool("list_knowledge_bases", {}))
            assert [kb["knowledge_base_id"] for kb in listed["knowledge_bases"]] == ["authgate-docs"]
            found = structured(
                await client.call_tool(
                    "query_knowledge_base",
                    {"knowledge_base_id": "authgate-docs", "query": "Claude Code authenticate", "top_k": 1},
                )
            )
            assert found["results"][0]["source"]["path"] == "connecting-claude.md"
            whoami = await client.call_tool("whoami", {})
            assert not whoami.is_error
            text = whoami.content[0]
            assert isinstance(text, TextContent) and json.loads(text.text) == {"authenticated": False}
    assert (tmp_path / "fresh" / "kb.sqlite3").is_file()


async def test_the_stdio_server_answers_the_sdk_stdio_client(tmp_path: Path, corpus: Path) -> None:
    data = tmp_path / "data"
    env = {"AUTHGATE_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "authgate", "kb", "add", "company", str(corpus / "handbook")]
    proc = await anyio.run_process(cli, env={**os.environ, **env}, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "authgate", "kb", "serve", "--stdio"], env=env, cwd=str(tmp_path)
    )
    with anyio.fail_after(CALL_TIMEOUT):
        async with Client(params, mode="legacy") as client:
            listed = structured(await client.call_tool("list_knowledge_bases", {}))
            assert [kb["knowledge_base_id"] for kb in listed["knowledge_bases"]] == ["company"]
            found = structured(
                await client.call_tool(
                    "query_knowledge_base", {"knowledge_base_id": "company", "query": "laptop encrypt"}
                )
            )
            assert found["results"][0]["source"]["path"] == "security.txt"
