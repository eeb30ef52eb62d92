"""What must never cross the gateway, and who may use a session (issue 3, Done-when 5, 8).

authgate runs with `--upstream` in front of a stateful `mcp` SDK server that records the
headers of every HTTP request it receives, with an upstream bearer token, a static header
and identity headers configured. Assertions are made *at the upstream*.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.upstream_app import Upstream, build_upstream

from .conftest import serve_in_thread, service_token, start_gateway, user_token
from .mcp_wire import (
    MODES,
    initialize_request,
    legacy_headers,
    mcp_client,
    modern_headers,
    modern_request,
)

UPSTREAM_SECRET = "upstream-secret-not-the-clients"
FORGED = {
    "X-Authgate-Subject": "someone-else",
    "X-Authgate-Client-Id": "forged-client",
    "X-Authgate-Scopes": "admin",
    "X-Authgate-Username": "root",
    "Cookie": "authgate_session=stolen; authgate_csrf=stolen; other=1",
    # (X-Forwarded-For from a loopback client is believed: trusted_proxies, server/forwarded.py)
    "Forwarded": "for=203.0.113.9",
    "X-Real-IP": "203.0.113.9",
    "X-Upstream-Key": "client-chosen-key",
}


@pytest.fixture(scope="module")
def upstream(module_stack: Any) -> tuple[Upstream, str]:
    up = build_upstream(stateless=False)
    return up, module_stack.enter_context(serve_in_thread(up.app)) + "/mcp"


@pytest.fixture(scope="module")
def gateway(upstream: tuple[Upstream, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_gateway(
        tmp_path_factory.mktemp("gw-isolation"),
        upstream[1],
        AUTHGATE_UPSTREAM_BEARER_TOKEN=UPSTREAM_SECRET,
        AUTHGATE_UPSTREAM_HEADERS='{"X-Upstream-Key": "configured-key"}',
        AUTHGATE_IDENTITY_HEADERS="true",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tokens(gateway: Any) -> dict[str, str]:
    return {
        "a": service_token(gateway, "service-a"),
        "b": service_token(gateway, "service-b"),
        "alice": user_token(gateway),
    }


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _assert_nothing_leaked(upstream: Upstream, tokens: dict[str, str]) -> None:
    assert upstream.requests, "the upstream saw no request"
    for seen in upstream.requests:
        assert seen.get("authorization") == f"Bearer {UPSTREAM_SECRET}", seen
        assert not any(t in v for t in tokens.values() for v in seen.values()), "a client token reached the upstream"
        assert not {"cookie", "forwarded", "x-real-ip", "origin"} & set(seen)
        assert seen["x-upstream-key"] == "configured-key"
        assert seen["x-forwarded-for"] == "127.0.0.1"


@pytest.mark.requirement(req.MCP_2025_06_18_NO_TOKEN_PASSTHROUGH)
@pytest.mark.requirement(req.ISSUE3_NO_FORGED_IDENTITY)
@pytest.mark.parametrize("mode_id", list(MODES))
async def test_only_the_gateway_speaks_for_the_caller(
    upstream: tuple[Upstream, str],
    gateway: Any,
    tokens: dict[str, str],
    mode_id: str,
) -> None:
    async with mcp_client(gateway.mcp_url, tokens["a"], MODES[mode_id][0], headers=FORGED) as client:
        result = await client.call_tool("seen_headers", {})
    seen = json.loads(result.content[0].text)  # type: ignore[union-attr]
    claims = _claims(tokens["a"])
    assert seen["x-authgate-subject"] == claims["sub"]
    assert seen["x-authgate-client-id"] == claims["client_id"]
    assert seen["x-authgate-scopes"] == "mcp"
    assert "x-authgate-username" not in seen  # a service client has no user
    _assert_nothing_leaked(upstream[0], tokens)


async def test_a_signed_in_user_is_named_upstream(
    upstream: tuple[Upstream, str],
    gateway: Any,
    tokens: dict[str, str],
) -> None:
    async with mcp_client(gateway.mcp_url, tokens["alice"], "auto", headers=FORGED) as client:
        result = await client.call_tool("seen_headers", {})
    seen = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert seen["x-authgate-username"] == "alice"
    assert seen["x-authgate-subject"] == _claims(tokens["alice"])["sub"]
    _assert_nothing_leaked(upstream[0], tokens)


@pytest.mark.requirement(req.ISSUE3_SESSION_PER_IDENTITY)
@pytest.mark.requirement(req.MCP_2025_11_25_SESSION_HIJACKING)
async def test_a_session_belongs_to_who_opened_it(gateway: Any, tokens: dict[str, str]) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        url = gateway.mcp_url
        r = await http.post(url, json=initialize_request(), headers=legacy_headers(tokens["a"]))
        assert r.status_code == 200, r.text
        sid = r.headers["mcp-session-id"]
        notified = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await http.post(url, json=notified, headers=legacy_headers(tokens["a"], sid))).status_code == 202

        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        for intruder in ("b", "alice"):
            r = await http.post(url, json=listing, headers=legacy_headers(tokens[intruder], sid))
            assert r.status_code == 404, r.text
            assert r.json()["error"]["code"] == -32600 and r.json()["id"] == 2
            r = await http.delete(url, headers=legacy_headers(tokens[intruder], sid))
            assert r.status_code == 404  # and the session survives it
        r = await http.post(url, json=listing, headers=legacy_headers(tokens["a"], sid))
        assert r.status_code == 200 and "echo" in r.text

        # A session id nobody was given is refused the same way.
        r = await http.post(url, json=listing, headers=legacy_headers(tokens["a"], "f" * 32))
        assert r.status_code == 404

        assert (await http.delete(url, headers=legacy_headers(tokens["a"], sid))).status_code == 200
        r = await http.post(url, json=listing, headers=legacy_headers(tokens["a"], sid))
        assert r.status_code == 404, "a deleted session is still bound"


async def _post_modern(gateway: Any, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15) as http:
        return await http.post(gateway.mcp_url, json=body, headers=headers)


@pytest.mark.requirement(req.MCP_2026_07_28_PARAM_HEADERS_MATCH)
@pytest.mark.parametrize("case", ["method", "name", "name-base64", "missing-name", "version", "missing-method"])
async def test_mirrored_headers_that_disagree_with_the_body_are_refused_before_the_upstream(
    upstream: tuple[Upstream, str],
    gateway: Any,
    tokens: dict[str, str],
    case: str,
) -> None:
    body = modern_request(41, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
    headers = modern_headers(tokens["a"], "tools/call", "echo")
    if case == "method":
        headers["Mcp-Method"] = "tools/list"
    elif case == "name":
        headers["Mcp-Name"] = "seen_headers"
    elif case == "name-base64":
        headers["Mcp-Name"] = "=?base64?" + base64.b64encode(b"seen_headers").decode() + "?="
    elif case == "missing-name":
        del headers["Mcp-Name"]
    elif case == "version":
        headers["MCP-Protocol-Version"] = "2026-12-01"
    else:
        del headers["Mcp-Method"]
    before = len(upstream[0].requests)
    r = await _post_modern(gateway, body, headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == -32020 and r.json()["id"] == 41
    assert len(upstream[0].requests) == before, "the mismatched request reached the upstream"
    # The same request with honest headers goes through.
    r = await _post_modern(gateway, body, modern_headers(tokens["a"], "tools/call", "echo"))
    assert r.status_code == 200 and '"x"' in r.text


@pytest.mark.requirement(req.MCP_2026_07_28_PARAM_HEADERS_MATCH)
async def test_mcp_param_headers_are_checked_once_the_schema_was_listed(
    upstream: tuple[Upstream, str],
    gateway: Any,
    tokens: dict[str, str],
) -> None:
    r = await _post_modern(gateway, modern_request(1, "tools/list"), modern_headers(tokens["a"], "tools/list"))
    assert r.status_code == 200 and "x-mcp-header" in r.text  # the gateway read this answer too
    call = modern_request(2, "tools/call", {"name": "in_region", "arguments": {"region": "us", "query": "q"}})
    before = len(upstream[0].requests)
    for params in ({"Mcp-Param-Region": "eu"}, {}, {"Mcp-Param-Region": "=?base64?not base64?="}):
        r = await _post_modern(gateway, call, modern_headers(tokens["a"], "tools/call", "in_region", **params))
        assert r.status_code == 400 and r.json()["error"]["code"] == -32020, (params, r.text)
    assert len(upstream[0].requests) == before
    r = await _post_modern(
        gateway, call, modern_headers(tokens["a"], "tools/call", "in_region", **{"Mcp-Param-Region": "us"})
    )
    assert r.status_code == 200 and "us:q" in r.text
