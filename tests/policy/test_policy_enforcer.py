"""`PolicyEnforcer` in the real gate (`server/gate.py`: bearer check, the anonymous path,
the policy), over ASGI: what is refused and how, what reaches the app (byte for byte), and
how lists are rewritten."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import McpApp, MemoryAuditStore, Verifier

from authgate.audit.log import AuditLog
from authgate.config.settings import load_settings
from authgate.gateway.streams import StreamLimit
from authgate.guard.bearer import BearerCheck
from authgate.guard.origin import OriginCheck
from authgate.policy.clients import ClientRecognizer
from authgate.policy.enforcer import PolicyEnforcer
from authgate.policy.model import Policy
from authgate.server.gate import McpGate
from support import requirements as req

PRM = "http://testserver/.well-known/oauth-protected-resource/mcp"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
POLICY = {
    "scopes": ["search.read"],
    "tool_scopes": {"write": ["docs.write"], "delete": ["memory.delete"]},
    "scope_implications": {"memory.delete": ["docs.write"]},
    "tool_error_clients": [],
}

Client = Callable[..., Any]


@pytest.fixture
def audit_store() -> MemoryAuditStore:
    return MemoryAuditStore()


@pytest.fixture
async def make(tmp_path: Path, audit_store: MemoryAuditStore) -> AsyncIterator[Client]:
    logs: list[AuditLog] = []

    def build(app: McpApp, **overrides: Any) -> httpx.AsyncClient:
        settings = load_settings(None, data_dir=tmp_path, **{**POLICY, **overrides})
        policy = Policy.from_settings(settings)
        clients = ClientRecognizer(settings.tool_error_clients)
        logs.append(audit := AuditLog(audit_store))
        enforcer = PolicyEnforcer(
            policy, resource_metadata=PRM, clients=clients, audit=audit, audit_arguments=settings.audit_arguments
        )
        gate = McpGate(
            app,
            origins=OriginCheck(public_host="testserver", allowed_origins=["http://testserver"]),
            bearer=BearerCheck(Verifier(), resource_metadata=PRM, scopes=tuple(settings.scopes)),
            enforcer=enforcer,
            streams=StreamLimit(app, per_caller=settings.max_streams_per_caller),
            max_body=settings.mcp_max_body_bytes,
        )
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=gate), base_url="http://testserver")

    yield build
    for log in logs:
        await log.aclose()


def call(name: str, rid: int = 1, **params: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": name, "arguments": {"q": "secret text"}, **params},
    }


def auth(*scopes: str) -> dict[str, str]:
    return {**HEADERS, "Authorization": "Bearer tok-" + "+".join(scopes)}


def challenge_params(header: str) -> dict[str, str]:
    assert header.startswith("Bearer ")
    return {k.strip(): v.strip('"') for k, v in (p.split("=", 1) for p in header[7:].split('", '))}


# -- calls ----------------------------------------------------------------------------------


async def test_an_allowed_call_reaches_the_app_byte_for_byte(make: Client) -> None:
    app = McpApp()
    raw = b'{"jsonrpc": "2.0",  "id": 1, "method": "tools/call", "params": {"name": "search"}}'
    async with make(app) as http:
        r = await http.post("/mcp", content=raw, headers=auth("search.read"))
    assert r.status_code == 200
    assert app.seen[0][0] == raw and app.seen[0][1] is not None


@pytest.mark.requirement(req.MCP_2025_11_25_AUTH_SCOPE_CHALLENGE)
async def test_a_read_token_calling_a_write_tool_gets_the_scope_challenge(make: Client) -> None:
    app = McpApp()
    async with make(app) as http:
        r = await http.post("/mcp", json=call("write"), headers=auth("search.read"))
    assert r.status_code == 403
    params = challenge_params(r.headers["www-authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "docs.write search.read"  # needed, then already granted
    assert params["resource_metadata"] == PRM
    assert r.json()["error"] == "insufficient_scope"
    assert app.seen == []


async def test_an_implied_scope_is_enough(make: Client) -> None:
    async with make(McpApp()) as http:
        r = await http.post("/mcp", json=call("write"), headers=auth("search.read", "memory.delete"))
    assert r.status_code == 200


@pytest.mark.requirement(req.MCP_2025_03_26_BATCH_AUTHORIZED)
async def test_a_batch_hiding_a_forbidden_call_behind_an_allowed_one_is_refused(make: Client) -> None:
    app = McpApp()
    batch = [call("search", 1), call("delete", 2)]
    async with make(app) as http:
        r = await http.post("/mcp", json=batch, headers=auth("search.read"))
        notification = {k: v for k, v in call("delete").items() if k != "id"}  # a call without an id
        r2 = await http.post("/mcp", json=[call("search", 3), notification], headers=auth("search.read"))
    assert r.status_code == 403 and r2.status_code == 403
    assert "memory.delete" in challenge_params(r.headers["www-authenticate"])["scope"]
    assert app.seen == []


@pytest.mark.requirement(req.MCP_2026_07_28_MCP_NAME_MATCHES)
async def test_mcp_name_naming_an_allowed_tool_while_the_body_calls_a_forbidden_one_is_refused(make: Client) -> None:
    app = McpApp()
    async with make(app) as http:
        r = await http.post(
            "/mcp",
            json=call("delete"),
            headers={**auth("search.read"), "Mcp-Method": "tools/call", "Mcp-Name": "search"},
        )
        r2 = await http.post(
            "/mcp",
            json=call("search"),
            headers={**auth("search.read"), "Mcp-Method": "tools/list", "Mcp-Name": "search"},
        )
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020
    assert r2.status_code == 400 and r2.json()["error"]["code"] == -32020
    assert app.seen == []


async def test_mcp_name_is_decoded_before_it_is_compared(make: Client) -> None:
    name = "résumé ✓"
    encoded = "=?base64?" + base64.b64encode(name.encode()).decode() + "?="
    async with make(McpApp(), tool_scopes={}, scope_implications={}) as http:
        ok = await http.post("/mcp", json=call(name), headers={**auth("search.read"), "Mcp-Name": encoded})
        bad = await http.post("/mcp", json=call("x"), headers={**auth("search.read"), "Mcp-Name": "=?base64?***?="})
    assert ok.status_code == 200
    assert bad.status_code == 400


async def test_a_member_given_twice_is_refused_not_guessed(make: Client) -> None:
    app = McpApp()
    raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","name":"delete"}}'
    async with make(app) as http:
        r = await http.post("/mcp", content=raw, headers=auth("search.read"))
    assert r.status_code == 400 and app.seen == []


async def test_a_body_nested_too_deeply_to_judge_is_refused_not_passed_on(make: Client) -> None:
    # A parser with a deeper limit (the upstream's) could read what Python's json cannot: a
    # body the policy cannot judge must never reach the app unjudged.
    app = McpApp()
    deep = b"[" * 100_000 + b"]" * 100_000
    raw = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete","arguments":{"x":' + deep + b"}}}"
    async with make(app) as http:
        r = await http.post("/mcp", content=raw, headers=auth("search.read"))
    assert r.status_code == 400 and app.seen == []
    assert "nested too deeply" in r.json()["error"]["message"]


async def test_a_utf8_bom_body_is_judged_like_any_other(make: Client) -> None:
    app = McpApp()
    raw = b"\xef\xbb\xbf" + json.dumps(call("delete")).encode()
    async with make(app) as http:
        r = await http.post("/mcp", content=raw, headers=auth("search.read"))
    assert r.status_code == 403 and app.seen == []


@pytest.mark.requirement(req.ISSUE14_GATEWAY_LEAVES_UPSTREAM_ANSWERS_TO_IT)
@pytest.mark.parametrize("params", [["write"], {"arguments": {}}], ids=["positional", "no-name"])
async def test_a_call_naming_no_tool_needs_every_tool_scope_and_is_then_the_upstreams_to_answer(
    make: Client, params: Any
) -> None:
    # Which tool a call without a name reaches is the upstream's reading; only a caller who
    # could reach any of them gets it through, and the upstream then gives its own answer
    # (-32602, or -32601 for a method it does not serve): the gateway never answers for it.
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    app = McpApp()
    async with make(app) as http:
        refused = await http.post("/mcp", json=body, headers=auth("search.read", "docs.write"))
        passed = await http.post("/mcp", json=body, headers=auth("search.read", "memory.delete"))
    assert refused.status_code == 403 and "memory.delete" in refused.headers["www-authenticate"]
    assert passed.status_code == 200 and len(app.seen) == 1


async def test_a_body_that_is_not_json_rpc_goes_to_the_app(make: Client) -> None:
    app = McpApp()
    async with make(app) as http:
        r = await http.post("/mcp", content=b"[1, 2]", headers=auth("search.read"))
    assert app.seen[0][0] == b"[1, 2]" and r.status_code == 202


# -- the tool-error form (ChatGPT) --------------------------------------------------------------


@pytest.mark.requirement(req.OPENAI_APPS_WWW_AUTHENTICATE_META)
async def test_a_chatgpt_client_gets_a_tool_error_carrying_the_challenge(make: Client) -> None:
    meta = {
        "io.modelcontextprotocol/clientInfo": {"name": "openai-mcp", "version": "1.0.0"},
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    }
    async with make(McpApp(), tool_error_clients=["openai-mcp"]) as http:
        r = await http.post("/mcp", json=call("write", _meta=meta), headers=auth("search.read"))
        batch = await http.post("/mcp", json=[call("write", _meta=meta)], headers=auth("search.read"))
    assert r.status_code == 200
    result = r.json()["result"]
    assert result["isError"] is True and result["resultType"] == "complete"
    [value] = result["_meta"]["mcp/www_authenticate"]
    assert challenge_params(value)["scope"] == "docs.write search.read"
    assert batch.status_code == 403  # a batch is never answered with one tool's result


async def test_a_session_remembers_its_client_from_initialize(make: Client) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "openai-mcp"}},
    }
    async with make(McpApp(session_id="s-1"), tool_error_clients=["openai-mcp"]) as http:
        await http.post("/mcp", json=init, headers=auth("search.read"))
        same = await http.post("/mcp", json=call("write"), headers={**auth("search.read"), "Mcp-Session-Id": "s-1"})
        other = await http.post("/mcp", json=call("write"), headers={**auth("search.read"), "Mcp-Session-Id": "s-2"})
    assert same.status_code == 200 and same.json()["result"]["isError"] is True
    assert other.status_code == 403


# -- anonymous operations ---------------------------------------------------------------------


async def test_named_operations_run_without_a_token_and_the_rest_get_401(make: Client) -> None:
    app = McpApp()
    async with make(app, anonymous_operations=["tool:search"]) as http:
        ok = await http.post("/mcp", json=call("search"), headers=HEADERS)
        listed = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=HEADERS)
        refused = await http.post("/mcp", json=call("write"), headers=HEADERS)
        mixed = await http.post("/mcp", json=[call("search"), call("write", 2)], headers=HEADERS)
    assert ok.status_code == 200 and app.seen[0][1] is None
    assert [t["name"] for t in listed.json()["result"]["tools"]] == ["search"]
    assert refused.status_code == 401 and mixed.status_code == 401
    assert "error=" not in refused.headers["www-authenticate"]


async def test_without_anonymous_operations_nothing_passes_without_a_token(make: Client) -> None:
    async with make(McpApp()) as http:
        r = await http.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, headers=HEADERS
        )
    assert r.status_code == 401


async def test_chatgpt_without_a_token_gets_the_sign_in_tool_error(make: Client) -> None:
    meta = {"io.modelcontextprotocol/clientInfo": {"name": "openai-mcp"}}
    async with make(McpApp(), anonymous_operations=["tool:search"], tool_error_clients=["openai-mcp"]) as http:
        r = await http.post("/mcp", json=call("write", _meta=meta), headers=HEADERS)
    result = r.json()["result"]
    assert r.status_code == 200 and result["isError"] is True
    assert result["content"][0]["text"] == "Sign in to use this tool."
    assert "resource_metadata=" in result["_meta"]["mcp/www_authenticate"][0]


# -- lists ------------------------------------------------------------------------------------


def tools_list(rid: int = 5, **meta: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/list", "params": {"_meta": meta} if meta else {}}


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
async def test_tools_list_is_filtered_to_what_the_caller_may_use(make: Client, sse: bool) -> None:
    async with make(McpApp(sse=sse)) as http:
        r = await http.post("/mcp", json=tools_list(), headers=auth("search.read"))
    text = r.text
    if sse:
        assert text.startswith("event: message\ndata: ") and "notifications/progress" in text  # kept, in order
        payload = json.loads([line for line in text.splitlines() if line.startswith("data: ")][-1][6:])
        assert "id: 7" in text
    else:
        payload = r.json()
        assert int(r.headers["content-length"]) == len(r.content)
    tools = payload["result"]["tools"]
    assert [t["name"] for t in tools] == ["search"]
    assert tools[0]["securitySchemes"] == [{"type": "oauth2", "scopes": ["search.read"]}]
    assert tools[0]["_meta"]["securitySchemes"] == tools[0]["securitySchemes"]
    assert payload["result"]["cacheScope"] == "public"  # not a 2026-07-28 request: left alone


async def test_tools_list_marks_everything_in_mark_mode(make: Client) -> None:
    async with make(McpApp(), list_mode="mark", anonymous_operations=["tool:search"]) as http:
        r = await http.post("/mcp", json=tools_list(), headers=auth("search.read"))
    tools = {t["name"]: t for t in r.json()["result"]["tools"]}
    assert set(tools) == {"search", "write", "delete"}
    assert tools["delete"]["_meta"]["authgate/requiredScopes"] == ["memory.delete"]
    assert tools["delete"]["_meta"]["authgate/allowed"] is False
    assert tools["search"]["_meta"]["authgate/allowed"] is True
    assert tools["search"]["securitySchemes"] == [{"type": "noauth"}, {"type": "oauth2", "scopes": ["search.read"]}]


@pytest.mark.requirement(req.MCP_2026_07_28_CACHE_SCOPE_PRIVATE)
async def test_a_filtered_list_is_private_for_2026_07_28_clients(make: Client) -> None:
    async with make(McpApp()) as http:
        r = await http.post(
            "/mcp",
            json=tools_list(**{"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
            headers={**auth("search.read"), "MCP-Protocol-Version": "2026-07-28"},
        )
    assert r.json()["result"]["cacheScope"] == "private"
    assert r.json()["result"]["ttlMs"] == 60000


@pytest.mark.requirement(req.AUTHGATE_FILTER_NOT_BOUNDARY)
async def test_a_hidden_tool_is_still_refused_when_called(make: Client) -> None:
    async with make(McpApp()) as http:
        listed = await http.post("/mcp", json=tools_list(), headers=auth("search.read"))
        r = await http.post("/mcp", json=call("delete"), headers=auth("search.read"))
    assert "delete" not in [t["name"] for t in listed.json()["result"]["tools"]]
    assert r.status_code == 403


async def test_a_batch_list_answer_is_rewritten_element_by_element(make: Client) -> None:
    async with make(McpApp()) as http:
        r = await http.post("/mcp", json=[tools_list(1), call("search", 2)], headers=auth("search.read"))
    first, second = r.json()
    assert [t["name"] for t in first["result"]["tools"]] == ["search"] and second["id"] == 2


# -- audit ------------------------------------------------------------------------------------


async def settled(store: MemoryAuditStore, count: int) -> list[Any]:
    """The store's events once `count` have arrived (the writer runs off the request path)."""
    for _ in range(200):
        if len(store.events) >= count:
            break
        await asyncio.sleep(0.01)
    return list(store.events)


async def test_refusals_and_allowed_calls_are_audited_without_tokens_or_arguments(
    make: Client, audit_store: MemoryAuditStore
) -> None:
    async with make(McpApp()) as http:
        await http.post("/mcp", json=call("write"), headers=auth("search.read"))
        refused_first = list(audit_store.events)  # committed before the 403 was sent
        await http.post("/mcp", json=call("search"), headers=auth("search.read"))
        await http.post(
            "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=auth("search.read")
        )
        events = await settled(audit_store, 2)
    assert [e.decision for e in refused_first] == ["refused"]
    refused, allowed = events  # the notification is no operation: not audited
    assert (refused.target, refused.subject, refused.username, refused.client_id) == (
        "write",
        "sub-1",
        "alice",
        "client-1",
    )
    assert refused.reason == "insufficient_scope: needs docs.write" and refused.status is None
    assert allowed.decision == "allowed" and allowed.target == "search"
    assert allowed.status == 200 and allowed.latency_ms is not None and allowed.latency_ms >= 0
    for event in events:
        assert event.arguments is None and "tok-" not in repr(event) and "secret text" not in repr(event)


async def test_arguments_are_recorded_only_when_asked(make: Client, audit_store: MemoryAuditStore) -> None:
    async with make(McpApp(), audit_arguments=True) as http:
        await http.post("/mcp", json=call("write"), headers=auth("search.read"))
    assert audit_store.events[0].arguments == '{"q":"secret text"}'


async def test_tools_the_policy_names_but_the_server_lacks_are_warned_about_once(
    make: Client, caplog: pytest.LogCaptureFixture
) -> None:
    rules = {"write": ["docs.write"], "delete": ["memory.delete"], "gone": ["x"]}
    async with make(McpApp(), tool_scopes=rules) as http:
        await http.post("/mcp", json=tools_list(), headers=auth("search.read"))
        await http.post("/mcp", json=tools_list(), headers=auth("search.read"))
    warnings = [r.getMessage() for r in caplog.records if "does not list" in r.getMessage()]
    assert warnings == ["the policy names tools the MCP server does not list: gone"]


async def test_names_from_the_body_cannot_break_the_challenge_header(make: Client) -> None:
    async with make(McpApp(), default_operation_scopes=["docs.write"]) as http:
        r = await http.post("/mcp", json=call('x"\r\nSet-Cookie: a=b ✓'), headers=auth("search.read"))
    assert r.status_code == 403
    assert "set-cookie" not in r.headers
    assert 'error_description="tools/call x???Set-Cookie: a=b ?: insufficient_scope' in r.headers["www-authenticate"]
