"""An HTTP upstream that misbehaves (issue 19, Done-when 5): the client always gets a JSON-RPC
error naming the upstream — 502/504, or the last event of its SSE stream when the answer had
begun — never a cut or empty 200 or the upstream's garbage; a second client's calls made
meanwhile succeed; the request log shows what the client got.

One gateway (small timeouts: idle 1.5 s, call 3 s, stream 2 s) in front of one
`faulty_upstream.py` process, which the kill tests kill mid-answer and start again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from support import requirements as req
from support.authgate_server import serve_asgi_in_thread
from support.ports import free_port

from .conftest import service_token, start_gateway
from .faulty_upstream import SESSION, FaultyUpstream
from .mcp_wire import LEGACY, initialize_request, legacy_headers, modern_headers, modern_request

IDLE, CALL, STREAM = "1.5", "3", "2"


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream(free_port(), tmp_path_factory.mktemp("faulty") / "upstream.log")
    upstream.start()
    yield upstream
    upstream.kill()


@pytest.fixture(scope="module")
def gateway(faulty: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_gateway(
        tmp_path_factory.mktemp("gateway"),
        faulty.url,
        AUTHGATE_UPSTREAM_IDLE_TIMEOUT=IDLE,
        AUTHGATE_UPSTREAM_CALL_TIMEOUT=CALL,
        AUTHGATE_UPSTREAM_STREAM_TIMEOUT=STREAM,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tokens(gateway: Any) -> tuple[str, str]:
    """Two callers: the one the fault hits, and a second one calling meanwhile."""
    return service_token(gateway, "faulty-first"), service_token(gateway, "faulty-second")


@pytest.fixture
def upstream(faulty: FaultyUpstream) -> FaultyUpstream:
    faulty.ensure_running()
    return faulty


def _call(tool: str, request_id: int, token: str) -> tuple[dict[str, Any], dict[str, str]]:
    body = modern_request(request_id, "tools/call", {"name": tool, "arguments": {"text": tool}})
    return body, modern_headers(token, "tools/call", tool)


def _legacy_call(tool: str, request_id: int, token: str) -> tuple[dict[str, Any], dict[str, str]]:
    body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    return body, legacy_headers(token, SESSION)


async def _echo_ok(http: httpx.AsyncClient, gateway: Any, token: str) -> None:
    body, headers = _call("echo", 99, token)
    r = await http.post(gateway.mcp_url, json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["content"][0]["text"] == "echo"


async def _open(http: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    response = await http.send(http.build_request("POST", url, json=body, headers=headers), stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return response


async def _until(lines: Any, text: str) -> None:
    with anyio.fail_after(10):
        async for line in lines:
            if text in line:
                return
    raise AssertionError(f"the stream ended before {text!r}")


def _messages(lines: list[str]) -> list[Any]:
    """The JSON-RPC messages of the SSE `data:` lines (each event here has one)."""
    return [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip()]


def _assert_error(message: Any, request_id: int, reason: str, *texts: str) -> None:
    assert message["id"] == request_id, message
    error = message["error"]
    assert error["code"] == -32603 and error["data"] == {"source": "authgate", "reason": reason}, error
    for text in texts:
        assert text in error["message"], error["message"]


def _logged(gateway: Any, status: int, outcome: str) -> bool:
    return any(f"/mcp {status} " in line and f"outcome={outcome}" in line for line in gateway.logs().splitlines())


async def _wait_logged(gateway: Any, status: int, outcome: str) -> None:
    """The request log line says what the client got; and no fault left a traceback."""
    with anyio.fail_after(10):
        while not _logged(gateway, status, outcome):
            await anyio.sleep(0.05)
    assert "Traceback" not in gateway.logs()


@pytest.mark.requirement(req.ISSUE19_GATEWAY_STREAM_CUT_ERROR)
async def test_an_upstream_killed_mid_stream_ends_the_stream_with_an_error(
    gateway: Any, upstream: FaultyUpstream, tokens: tuple[str, str]
) -> None:
    first, second = tokens
    async with httpx.AsyncClient(timeout=15) as http:
        r = await _open(http, gateway.mcp_url, *_call("trickle_sse", 11, first))
        lines = r.aiter_lines()
        await _until(lines, "notifications/progress")
        await _echo_ok(http, gateway, second)
        await anyio.to_thread.run_sync(upstream.kill)
        with anyio.fail_after(10):
            rest = [line async for line in lines]
        await r.aclose()
        *_, last = _messages(rest)
        _assert_error(
            last, 11, "upstream_stream_cut", upstream.url, "closed the connection in the middle of its answer"
        )
        await anyio.to_thread.run_sync(upstream.start)
        await _echo_ok(http, gateway, second)
    await _wait_logged(gateway, 200, "error_event:upstream_stream_cut")


@pytest.mark.requirement(req.ISSUE19_GATEWAY_JSON_CUT_502)
@pytest.mark.requirement(req.ISSUE19_GATEWAY_LOG_OUTCOME)
async def test_an_upstream_killed_mid_json_answer_is_502(
    gateway: Any, upstream: FaultyUpstream, tokens: tuple[str, str]
) -> None:
    first, second = tokens
    async with httpx.AsyncClient(timeout=15) as http:
        answers: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                body, headers = _call("trickle_json", 12, first)
                answers.append(await http.post(gateway.mcp_url, json=body, headers=headers))

            tg.start_soon(call)
            await anyio.to_thread.run_sync(upstream.wait_entered, "trickle_json: sent")
            await _echo_ok(http, gateway, second)
            assert not answers, "the gateway answered before the upstream finished"
            await anyio.to_thread.run_sync(upstream.kill)
        r = answers[0]
        assert r.status_code == 502 and r.headers["content-type"] == "application/json", r.text
        _assert_error(r.json(), 12, "upstream_stream_cut", upstream.url, "in the middle of its answer")
        await anyio.to_thread.run_sync(upstream.start)
        await _echo_ok(http, gateway, second)
    await _wait_logged(gateway, 502, "upstream_stream_cut")


@pytest.mark.requirement(req.ISSUE19_GATEWAY_IDLE_TIMEOUT_ERROR)
async def test_a_stream_silent_past_the_idle_timeout_ends_with_an_error(
    gateway: Any, upstream: FaultyUpstream, tokens: tuple[str, str]
) -> None:
    first, second = tokens
    async with httpx.AsyncClient(timeout=15) as http:
        r = await _open(http, gateway.mcp_url, *_call("silent_sse", 13, first))
        lines = r.aiter_lines()
        await _until(lines, "notifications/progress")
        await _echo_ok(http, gateway, second)
        with anyio.fail_after(10):
            rest = [line async for line in lines]
        await r.aclose()
    *_, last = _messages(rest)
    _assert_error(last, 13, "upstream_idle_timeout", upstream.url, f"silent for longer than {IDLE} s")
    await _wait_logged(gateway, 200, "error_event:upstream_idle_timeout")


@pytest.mark.requirement(req.ISSUE19_GATEWAY_CALL_TIMEOUT)
async def test_a_call_past_the_call_timeout_gets_an_error_and_is_cancelled_upstream(
    gateway: Any, upstream: FaultyUpstream, tokens: tuple[str, str]
) -> None:
    """Never silent, never done: a JSON answer (modern) is 504; an SSE one (a 2025-era session)
    ends with an error event, and the upstream gets notifications/cancelled in that session."""
    first, second = tokens
    async with httpx.AsyncClient(timeout=15) as http:
        r = await http.post(gateway.mcp_url, json=initialize_request(), headers=legacy_headers(first))
        assert r.headers["mcp-session-id"] == SESSION
        answers: list[httpx.Response] = []
        async with anyio.create_task_group() as tg:

            async def json_call() -> None:
                body, headers = _call("trickle_json", 14, first)
                answers.append(await http.post(gateway.mcp_url, json=body, headers=headers))

            tg.start_soon(json_call)
            stream = await _open(http, gateway.mcp_url, *_legacy_call("trickle_sse", 15, first))
            lines = stream.aiter_lines()
            await _until(lines, "notifications/progress")
            await _echo_ok(http, gateway, second)
            with anyio.fail_after(10):
                rest = [line async for line in lines]
            await stream.aclose()
        assert answers[0].status_code == 504, answers[0].text
        _assert_error(answers[0].json(), 14, "upstream_call_timeout", upstream.url, f"within {CALL} s")
        *_, last = _messages(rest)
        _assert_error(last, 15, "upstream_call_timeout", upstream.url, "(upstream_call_timeout)")
    cancel = await _cancellation(upstream, 15)
    assert "upstream_call_timeout" in cancel["body"]["params"]["reason"]
    await _wait_logged(gateway, 504, "upstream_call_timeout")


@pytest.mark.requirement(req.ISSUE19_GATEWAY_STREAM_TIMEOUT)
async def test_endless_streams_end_cleanly_at_the_stream_timeout(
    gateway: Any, upstream: FaultyUpstream, tokens: tuple[str, str]
) -> None:
    """An endless keep-alive GET stream ends without an error event (the client reconnects);
    a subscriptions/listen stream ends with its graceful result (MCP 2026-07-28)."""
    first, second = tokens
    async with httpx.AsyncClient(timeout=15) as http:
        get = http.build_request(
            "GET", gateway.mcp_url, headers={**legacy_headers(first), "Accept": "text/event-stream"}
        )
        stream = await http.send(get, stream=True)
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        body = modern_request(41, "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
        listen = await _open(http, gateway.mcp_url, body, modern_headers(first, "subscriptions/listen"))
        await _echo_ok(http, gateway, second)
        with anyio.fail_after(10):
            got = [line async for line in stream.aiter_lines()]
            listened = [line async for line in listen.aiter_lines()]
        await stream.aclose()
        await listen.aclose()
    assert ": keep-alive" in got and not _messages(got), got
    *_, last = _messages(listened)
    assert last == {
        "jsonrpc": "2.0",
        "id": 41,
        "result": {"resultType": "complete", "_meta": {"io.modelcontextprotocol/subscriptionId": 41}},
    }
    await _wait_logged(gateway, 200, "stream_timeout")


@pytest.mark.requirement(req.ISSUE19_GATEWAY_INVALID_ANSWER_502)
async def test_answers_that_are_not_json_rpc_for_the_request_are_502(
    gateway: Any, upstream: FaultyUpstream, tokens: tuple[str, str]
) -> None:
    first, second = tokens
    expected = {
        "html_500": "answered HTTP 500 Internal Server Error (text/html) instead of a JSON-RPC answer",
        "bad_json": "answered with invalid JSON",
        "wrong_id": "answered id 424242, not the request's id (23)",
        "json_500": 'answered HTTP 500 Internal Server Error (application/json) instead of a JSON-RPC answer: "Error',
    }
    async with httpx.AsyncClient(timeout=15) as http:
        answers: dict[str, httpx.Response] = {}
        async with anyio.create_task_group() as tg:
            for request_id, tool in enumerate(expected, start=21):

                async def call(tool: str = tool, request_id: int = request_id) -> None:
                    body, headers = _call(tool, request_id, first)
                    answers[tool] = await http.post(gateway.mcp_url, json=body, headers=headers)

                tg.start_soon(call)
            tg.start_soon(_echo_ok, http, gateway, second)
    for request_id, (tool, text) in enumerate(expected.items(), start=21):
        r = answers[tool]
        assert r.status_code == 502 and r.headers["content-type"] == "application/json", (tool, r.text)
        _assert_error(r.json(), request_id, "upstream_invalid_answer", upstream.url, text)
    await _wait_logged(gateway, 502, "upstream_invalid_answer")


@pytest.mark.requirement(req.ISSUE19_GATEWAY_UPSTREAM_503_RETRYABLE)
async def test_an_upstream_503_stays_a_retryable_503_with_its_retry_after(
    gateway: Any, upstream: FaultyUpstream, tokens: tuple[str, str]
) -> None:
    first, second = tokens
    async with httpx.AsyncClient(timeout=15) as http:
        body, headers = _call("busy_503", 31, first)
        busy = await http.post(gateway.mcp_url, json=body, headers=headers)
        body, headers = _call("busy_503_date", 32, first)
        dated = await http.post(gateway.mcp_url, json=body, headers=headers)
        await _echo_ok(http, gateway, second)
    for r, request_id in ((busy, 31), (dated, 32)):
        assert r.status_code == 503 and r.headers["content-type"] == "application/json", r.text
        error = r.json()["error"]
        assert r.json()["id"] == request_id and error["code"] == -32603, r.text
        assert error["data"] == {"source": "authgate", "reason": "upstream_busy", "retryable": True}, error
        assert "answered HTTP 503 Service Unavailable" in error["message"] and upstream.url in error["message"]
    assert busy.headers["retry-after"] == "7"
    assert "retry-after" not in dated.headers  # a date is not passed on: the client decides
    await _wait_logged(gateway, 503, "upstream_busy")


@pytest.mark.requirement(req.ISSUE19_GATEWAY_INVALID_ANSWER_502)
async def test_the_upstream_is_named_with_its_password_masked(upstream: FaultyUpstream) -> None:
    from authgate.gateway import HttpUpstreamProxy

    proxy = HttpUpstreamProxy(f"http://gate:s3cret-pw@127.0.0.1:{upstream.port}/mcp")
    with serve_asgi_in_thread(proxy, lifespan="on") as base:
        body = modern_request(51, "tools/call", {"name": "html_500", "arguments": {}})
        headers = {k: v for k, v in modern_headers("unused", "tools/call", "html_500").items() if k != "Authorization"}
        async with httpx.AsyncClient(timeout=15) as http:
            r = await http.post(base + "/mcp", json=body, headers=headers)
    assert r.status_code == 502, r.text
    message = r.json()["error"]["message"]
    assert f"http://gate:***@127.0.0.1:{upstream.port}/mcp" in message and "s3cret" not in message


@pytest.mark.requirement(req.ISSUE19_GATEWAY_CANCEL_ON_DISCONNECT)
async def test_a_client_that_disconnects_has_its_call_cancelled_upstream(
    gateway: Any, upstream: FaultyUpstream, tokens: tuple[str, str]
) -> None:
    """2025-era: notifications/cancelled in the request's session, with its protocol version
    and without the client's token. 2026-07-28: the closed connection is the cancellation."""
    first, second = tokens
    async with httpx.AsyncClient(timeout=15) as http:
        r = await http.post(gateway.mcp_url, json=initialize_request(), headers=legacy_headers(first))
        assert r.headers["mcp-session-id"] == SESSION
        for body, headers in (_call("trickle_sse", 32, first), _legacy_call("trickle_sse", 31, first)):
            stream = await _open(http, gateway.mcp_url, body, headers)
            await _until(stream.aiter_lines(), "notifications/progress")
            await stream.aclose()  # the client goes away before the answer
        await _echo_ok(http, gateway, second)
    cancel = await _cancellation(upstream, 31)
    assert cancel["body"]["params"]["reason"] == "the client disconnected"
    assert cancel["headers"]["mcp-session-id"] == SESSION and cancel["headers"]["mcp-protocol-version"] == LEGACY
    assert "authorization" not in cancel["headers"]
    assert not [n for n in upstream.marks()["notifications"] if n["body"]["params"].get("requestId") == 32]
    await _wait_logged(gateway, 200, "client_gone")


async def _cancellation(upstream: FaultyUpstream, request_id: int) -> dict[str, Any]:
    """The notifications/cancelled the upstream received for `request_id` (bounded wait)."""
    with anyio.fail_after(10):
        while True:
            for note in upstream.marks()["notifications"]:
                body = note["body"]
                if body.get("method") == "notifications/cancelled" and body["params"]["requestId"] == request_id:
                    return dict(note)
            await anyio.sleep(0.05)
