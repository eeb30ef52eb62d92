"""Byte-level behaviour the SDK server cannot show: JSON-RPC batches (2025-03-26), SSE
framing passed byte for byte, and what the gateway strips from the upstream's answer.
The upstream is a small hand-written app (support/upstream_app.py: scripted_app)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from support import requirements as req
from support.upstream_app import RAW_SSE, Upstream, scripted_app

from .conftest import serve_in_thread, service_token, start_gateway
from .mcp_wire import ACCEPT


@pytest.fixture(scope="module")
def upstream(module_stack: Any) -> tuple[Upstream, str]:
    up = scripted_app()
    return up, module_stack.enter_context(serve_in_thread(up.app)) + "/mcp"


@pytest.fixture(scope="module")
def gateway(upstream: tuple[Upstream, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_gateway(tmp_path_factory.mktemp("gw-wire"), upstream[1])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token(gateway: Any) -> str:
    return service_token(gateway)


def _post(gateway: Any, token: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        gateway.mcp_url,
        content=content,
        timeout=15,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "MCP-Protocol-Version": "2025-03-26",
            **headers,
        },
    )


def _request(i: int, method: str = "tools/list") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": method}


@pytest.mark.requirement(req.JSONRPC_6_BATCH)
def test_a_valid_batch_is_forwarded_byte_for_byte(upstream: tuple[Upstream, str], gateway: Any, token: str) -> None:
    raw = json.dumps(
        [_request(1), {"jsonrpc": "2.0", "method": "notifications/initialized"}, _request(2, "ping")], indent=1
    ).encode()
    r = _post(gateway, token, raw)
    assert r.status_code == 200, r.text
    assert [a["id"] for a in r.json()] == [1, 2]
    assert upstream[0].bodies[-1] == raw


@pytest.mark.requirement(req.JSONRPC_6_BATCH_ELEMENT_ERRORS)
def test_malformed_batch_elements_are_answered_here_and_the_rest_forwarded(
    upstream: tuple[Upstream, str],
    gateway: Any,
    token: str,
) -> None:
    batch = [
        _request(1),
        42,
        {"jsonrpc": "1.0", "id": 9, "method": "x"},
        {"jsonrpc": "2.0", "method": 5},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    r = _post(gateway, token, json.dumps(batch).encode())
    assert r.status_code == 200, r.text
    answers = r.json()
    errors = [a for a in answers if "error" in a]
    assert [(e["id"], e["error"]["code"]) for e in errors] == [(None, -32600), (9, -32600), (None, -32600)]
    assert [a for a in answers if "result" in a] == [{"jsonrpc": "2.0", "id": 1, "result": {"echo": "tools/list"}}]
    assert json.loads(upstream[0].bodies[-1]) == [batch[0], batch[4]]

    # Only a notification left to forward: the upstream's 202 becomes the errors' answer.
    r = _post(gateway, token, json.dumps([{"jsonrpc": "2.0", "method": "notifications/x"}, "junk"]).encode())
    assert r.status_code == 200 and [a["error"]["code"] for a in r.json()] == [-32600]


def test_batches_nothing_can_be_done_with(upstream: tuple[Upstream, str], gateway: Any, token: str) -> None:
    before = len(upstream[0].bodies)
    r = _post(gateway, token, b"[1, 2]")
    assert r.status_code == 400 and [a["error"]["code"] for a in r.json()] == [-32600, -32600]
    r = _post(gateway, token, b"[]")
    assert r.status_code == 400 and r.json()["error"]["code"] == -32600  # one error, not an array
    r = _post(gateway, token, b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"')
    assert r.status_code == 400 and r.json()["error"]["code"] == -32700
    r = _post(gateway, token, json.dumps([_request(1)]).encode(), **{"Mcp-Method": "tools/list"})
    assert r.status_code == 400 and r.json()["error"]["code"] == -32020  # a batch names no one method
    assert len(upstream[0].bodies) == before


@pytest.mark.requirement(req.MCP_2025_11_25_SSE_BYTE_FOR_BYTE)
def test_an_sse_answer_passes_byte_for_byte(gateway: Any, token: str) -> None:
    with httpx.stream(
        "POST",
        gateway.mcp_url,
        timeout=15,
        json=_request(3, "raw/sse"),
        headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no"
        assert b"".join(r.iter_raw()) == RAW_SSE


def test_upstream_cookies_never_reach_the_client(gateway: Any, token: str) -> None:
    r = _post(gateway, token, json.dumps(_request(4)).encode())
    assert r.status_code == 200 and "set-cookie" not in r.headers


@pytest.mark.requirement(req.ISSUE3_UPSTREAM_401)
def test_an_upstream_401_is_the_gateways_problem_not_the_clients(gateway: Any, token: str) -> None:
    r = _post(gateway, token, json.dumps(_request(5, "auth/test")).encode())
    assert r.status_code == 502
    assert "www-authenticate" not in r.headers  # the client must not start OAuth with the upstream
    error = r.json()["error"]
    assert error["code"] == -32603 and "refused authgate's credentials" in error["message"]
    assert error["data"] == {"source": "authgate", "reason": "upstream_refused_credentials"}
    assert r.json()["id"] == 5
