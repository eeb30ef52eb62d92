"""Per-tool policy against a real `mcp` SDK server in library mode: tools/list filtered or
marked (seen through the SDK client, both protocol eras), and what filtering does not replace —
a hidden tool is still refused, a batch cannot smuggle a forbidden call, and a 2026-07-28
`Mcp-Name` header cannot vouch for a body that calls something else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from policy_servers import Protected, seed_app, seed_config, serve_protected
from test_sdk_client import MODES

from support import requirements as req

READ = "search.read memory.read"


@pytest.fixture(params=["filter", "mark"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with serve_protected(
        seed_app(), tmp_path / "data", config_file=seed_config(tmp_path), list_mode=request.param
    ) as protected:
        yield protected


async def _list_tools(server: Protected, token: str, mode: str) -> tuple[list[Any], str]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        with anyio.fail_after(60):
            async with Client(streamable_http_client(server.mcp_url, http_client=http), mode=mode) as client:
                return list((await client.list_tools()).tools), client.protocol_version


@pytest.mark.parametrize("mode_id", list(MODES))
async def test_tools_list_shows_what_the_token_may_use_or_marks_the_rest(
    server: Protected, request: pytest.FixtureRequest, mode_id: str
) -> None:
    list_mode = request.node.callspec.params["server"]
    tools, version = await _list_tools(server, server.token(READ), MODES[mode_id][0])
    assert version == MODES[mode_id][1]
    by_name = {t.name: t for t in tools}
    if list_mode == "filter":
        assert sorted(by_name) == ["codebase.search", "local_memory_search"]
    else:
        assert len(by_name) == 5
        meta = by_name["docs.create"].meta or {}
        assert meta["authgate/requiredScopes"] == ["docs.write"] and meta["authgate/allowed"] is False
        assert (by_name["codebase.search"].meta or {})["authgate/allowed"] is True
    schemes = (by_name["codebase.search"].meta or {})["securitySchemes"]
    assert schemes == [{"type": "oauth2", "scopes": ["search.read"]}]


def _post(server: Protected, token: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        server.mcp_url,
        content=json.dumps(body),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
            **headers,
        },
    )


def _call(name: str, rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": {"name": name, "arguments": {}}}


@pytest.mark.requirement(req.AUTHGATE_FILTER_NOT_BOUNDARY)
def test_a_hidden_tool_is_still_refused(server: Protected) -> None:
    r = _post(server, server.token(READ), _call("local_memory_delete"))
    assert r.status_code == 403
    assert 'scope="memory.delete search.read memory.read"' in r.headers["www-authenticate"]


@pytest.mark.requirement(req.MCP_2025_03_26_BATCH_AUTHORIZED)
def test_a_batch_hiding_a_forbidden_call_behind_an_allowed_one_is_refused(server: Protected) -> None:
    r = _post(
        server,
        server.token(READ),
        [_call("codebase.search", 1), _call("docs.create", 2)],
        **{"MCP-Protocol-Version": "2025-03-26"},
    )
    assert r.status_code == 403
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


@pytest.mark.requirement(req.MCP_2026_07_28_MCP_NAME_MATCHES)
def test_mcp_name_naming_an_allowed_tool_cannot_cover_a_forbidden_call(server: Protected) -> None:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "docs.create", "arguments": {}, "_meta": meta},
    }
    token = server.token(READ)
    r = _post(
        server,
        token,
        body,
        **{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "codebase.search"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    honest = _post(
        server,
        token,
        body,
        **{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "docs.create"},
    )
    assert honest.status_code == 403  # the body decides: still not allowed
    allowed = {**body, "params": {**body["params"], "name": "codebase.search"}}
    ok = _post(
        server,
        token,
        allowed,
        **{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "codebase.search"},
    )
    assert ok.status_code == 200, ok.text
