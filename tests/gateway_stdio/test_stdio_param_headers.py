"""`Mcp-Param-*` headers of 2026-07-28 tools/call requests, checked by the stdio bridge in process
against watch_server.py, whose `route` tool mirrors `region` (Region) and `priority` (Priority)
and counts the calls that reach it. No test lists the tools first: the bridge lists them itself
when it starts a child."""

from __future__ import annotations

from typing import Any

import pytest

from support import requirements as req

from .conftest import Asgi, identity, modern

ALICE, BOB = identity("alice"), identity("bob")


def route(arguments: dict[str, Any], request_id: Any = 1, **headers: str) -> tuple[dict[str, Any], dict[str, str]]:
    body, base = modern("tools/call", {"name": "route", "arguments": arguments}, request_id)
    return body, {**base, **{f"mcp-param-{k.lower()}": v for k, v in headers.items()}}


async def calls_reaching(asgi: Asgi, who: Any = ALICE) -> int:
    body, headers = modern("tools/call", {"name": "calls", "arguments": {}}, 99)
    return int((await (await asgi.post(who, body, headers)).answer())["result"]["structuredContent"]["result"])


@pytest.mark.requirement(req.MCP_2026_07_28_PARAM_HEADERS_MATCH)
async def test_headers_that_mirror_the_body_pass_without_a_prior_tools_list(watch: Asgi) -> None:
    plain = await watch.post(
        ALICE, *route({"region": "us-west1", "priority": 7, "query": "q"}, Region="us-west1", Priority="7")
    )
    assert plain.status == 200, await plain.body()
    assert (await plain.answer())["result"]["structuredContent"]["result"]["calls"] == 1
    # base64 sentinel for a non-ASCII value; an integer compared numerically (42.0 == 42); an absent
    # argument needs no header
    encoded = await watch.post(
        ALICE,
        *route(
            {"region": "Zürich", "priority": 42, "query": "q"}, 2, Region="=?base64?WsO8cmljaA==?=", Priority="42.0"
        ),
    )
    assert (await encoded.answer())["result"]["structuredContent"]["result"]["calls"] == 2
    absent = await watch.post(ALICE, *route({"query": "q"}, 3))
    assert (await absent.answer())["result"]["structuredContent"]["result"]["calls"] == 3


@pytest.mark.requirement(req.MCP_2026_07_28_PARAM_HEADERS_MATCH)
@pytest.mark.parametrize(
    ("arguments", "headers", "repeated", "says"),
    [
        ({"region": "us-west1", "query": "q"}, {}, (), "Mcp-Param-Region header is missing"),
        ({"region": "us-west1", "query": "q"}, {"Region": "eu-west1"}, (), "does not match"),
        ({"region": "us-west1", "priority": 8, "query": "q"}, {"Region": "us-west1", "Priority": "7"}, (), "Priority"),
        ({"region": "us-west1", "query": "q"}, {"Region": "=?base64?not base64?="}, (), "malformed"),
        ({"query": "q"}, {"Region": "us-west1"}, (), "argument is absent"),
        (
            {"region": "us-west1", "query": "q"},
            {"Region": "us-west1"},
            (("mcp-param-region", "us-west1"),),
            "more than once",
        ),
    ],
    ids=["missing", "disagreeing", "integer", "malformed", "without-argument", "duplicated"],
)
async def test_a_mismatched_header_is_refused_before_the_child_sees_the_call(
    watch: Asgi, arguments: dict[str, Any], headers: dict[str, str], repeated: tuple[tuple[str, str], ...], says: str
) -> None:
    body, sent = route(arguments, 5, **headers)
    refused = await watch.post(ALICE, body, sent, repeated)
    assert refused.status == 400
    answer = await refused.json()
    assert answer["id"] == 5 and answer["error"]["code"] == -32020
    assert answer["error"]["message"].startswith("Header mismatch") and says in answer["error"]["message"]
    assert await calls_reaching(watch) == 0


@pytest.mark.requirement(req.MCP_2026_07_28_PARAM_HEADERS_MATCH)
async def test_tools_announced_by_list_changed_are_checked_too(watch: Asgi) -> None:
    body, headers = modern("tools/call", {"name": "add_tool", "arguments": {}})
    assert (await (await watch.post(ALICE, body, headers)).answer())["result"]["structuredContent"]["result"] == "added"
    body, headers = modern("tools/call", {"name": "route2", "arguments": {"tenant": "acme"}}, 2)
    missing = await watch.post(ALICE, body, headers)
    assert missing.status == 400 and (await missing.json())["error"]["code"] == -32020
    assert await calls_reaching(watch) == 0
    ok = await watch.post(ALICE, body, {**headers, "mcp-param-tenant": "acme"})
    assert (await ok.answer())["result"]["structuredContent"]["result"]["calls"] == 1


async def test_schemas_are_those_of_the_callers_own_child(watch: Asgi) -> None:
    """Alice's child lists route2 after add_tool; Bob's never did, so his call is not checked
    against it: it reaches his child, which does not know the tool."""
    body, headers = modern("tools/call", {"name": "add_tool", "arguments": {}})
    await (await watch.post(ALICE, body, headers)).answer()
    body, headers = modern("tools/call", {"name": "route2", "arguments": {"tenant": "acme"}}, 2)
    bobs = await (await watch.post(BOB, body, {**headers, "mcp-param-tenant": "other"})).answer()
    assert bobs["error"] == {"code": -32601, "message": "unknown 'route2'"}, "the child's own answer"
    alices = await watch.post(ALICE, body, {**headers, "mcp-param-tenant": "other"})
    assert alices.status == 400 and (await alices.json())["error"]["code"] == -32020


@pytest.mark.requirement(req.MCP_2026_07_28_PARAM_HEADERS_MATCH)
async def test_a_retry_with_input_responses_is_checked_and_keeps_its_request_state(watch: Asgi) -> None:
    """`confirm` asks the client first (an InputRequiredResult); the retry carries the headers too."""
    body, headers = modern("tools/call", {"name": "confirm", "arguments": {"region": "us-west1"}})
    first = (await (await watch.post(ALICE, body, {**headers, "mcp-param-region": "us-west1"})).answer())["result"]
    assert first["resultType"] == "input_required"
    (key,) = first["inputRequests"]
    retry, _ = modern(
        "tools/call",
        {
            "name": "confirm",
            "arguments": {"region": "us-west1"},
            "requestState": first["requestState"],
            "inputResponses": {key: {"action": "accept", "content": {}}},
        },
        2,
    )
    wrong = await watch.post(ALICE, retry, {**headers, "mcp-param-region": "eu-west1"})
    assert wrong.status == 400 and (await wrong.json())["error"]["code"] == -32020
    right = await watch.post(ALICE, retry, {**headers, "mcp-param-region": "us-west1"})
    assert (await right.answer())["result"]["structuredContent"] == {"result": "confirmed: accept"}
