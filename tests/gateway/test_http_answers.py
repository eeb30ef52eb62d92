"""The pieces that judge and watch an HTTP upstream's answer (gateway/http/answer.py and
gateway/sse.py), on plain values; test_proxy_faults.py runs them against real misbehaving upstreams."""

from __future__ import annotations

import json

import pytest

from authgate.gateway.errors import UpstreamInvalidAnswer
from authgate.gateway.http.answer import check_json, error_message, refusal
from authgate.gateway.sse import SseWatch, sse_event

WHERE = "the upstream MCP server at http://up/mcp"


def _event(message: object, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\r\n".encode() if event_id is not None else b""
    return head + b"event: message\r\ndata: " + json.dumps(message).encode() + b"\r\n\r\n"


def test_the_watch_sees_answers_however_the_stream_is_split() -> None:
    stream = (
        b": ping\n\n"
        + _event({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}})
        + _event({"jsonrpc": "2.0", "id": 7, "method": "sampling/createMessage", "params": {}})
        + _event({"jsonrpc": "2.0", "id": 3, "result": {}})
    )
    for size in (1, 2, 7, len(stream)):
        watch = SseWatch({3, 4})
        for at in range(0, len(stream), size):
            watch.feed(stream[at : at + size])
        assert watch.pending == {4} and not watch.resumable and watch.closing() == b""


def test_the_watch_reads_batches_multi_line_data_and_event_ids() -> None:
    watch = SseWatch({1, "b", 9})
    watch.feed(b'id: ev-1\ndata: {"jsonrpc": "2.0", "id": 1,\ndata: "result": {}}\n\n')  # lines join with \\n
    assert watch.pending == {"b", 9} and watch.resumable
    answers = json.dumps([{"jsonrpc": "2.0", "id": "b", "error": {}}, {"jsonrpc": "2.0", "id": 8, "result": {}}])
    watch.feed(b"data: " + answers.encode() + b"\n\n")
    assert watch.pending == {9}
    watch.feed(b"id:\n\n")
    assert not watch.resumable  # an empty id resets the last event id


def test_an_event_cut_midway_is_closed_before_the_gateway_adds_its_own() -> None:
    watch = SseWatch({1})
    watch.feed(b'event: message\ndata: {"jsonrpc": "2.0", "id"')
    assert watch.closing() == b"\n\n"
    watch.feed(b": 1}\n")
    assert watch.closing() == b"\n"
    watch.feed(b"\n")
    assert watch.closing() == b""
    assert sse_event({"a": 1}) == b'event: message\ndata: {"a":1}\n\n'


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        (b'{"jsonrpc": "2.0", "id": 3, "result": {}}', {3}),
        (b'{"jsonrpc": "2.0", "id": "x", "error": {"code": -1, "message": "no"}}', {"x"}),
        (b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}}', {3}),
        (b'[{"jsonrpc": "2.0", "id": 1, "result": {}}, {"jsonrpc": "2.0", "id": 2, "result": {}}]', {1, 2}),
    ],
)
def test_json_rpc_answers_to_the_request_pass(body: bytes, ids: set[int | str]) -> None:
    check_json(WHERE, body, ids)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"<html>oops</html>", "invalid JSON"),
        (b'{"result": {}}', "not a JSON-RPC response"),
        (b'{"jsonrpc": "2.0", "id": 3, "method": "ping"}', "not a JSON-RPC response"),
        (b'{"jsonrpc": "2.0", "id": 3, "result": {}, "error": {}}', 'exactly one of "result" and "error"'),
        (b'{"jsonrpc": "2.0", "id": 4, "result": {}}', "id 4, not the request's id (3)"),
        (b'{"jsonrpc": "2.0", "id": "3", "result": {}}', 'id "3", not the request\'s id (3)'),
        (b'{"jsonrpc": "2.0", "id": true, "result": {}}', "id true"),
        (b'[{"jsonrpc": "2.0", "id": 3, "result": {}}, {"jsonrpc": "2.0", "id": 5, "result": {}}]', "id 5"),
    ],
)
def test_other_json_is_an_invalid_answer(body: bytes, text: str) -> None:
    with pytest.raises(UpstreamInvalidAnswer) as caught:
        check_json(WHERE, body, {3})
    assert WHERE in caught.value.message and text in caught.value.message


def test_which_statuses_and_content_types_are_refused() -> None:
    def refused(method: str, status: int, content_type: str, **extra: str) -> str | None:
        found = refusal(WHERE, method, status, content_type, answers_requests=True, **extra)
        return None if found is None else found.message

    assert refused("POST", 200, "application/json; charset=utf-8") is None
    assert refused("POST", 200, "text/event-stream") is None
    assert refused("POST", 202, "") is None
    assert refused("POST", 404, "text/plain") is None  # the transport's own: an unknown session
    assert refused("POST", 415, "text/html") is None
    assert refused("DELETE", 200, "text/plain") is None
    assert "answered with text/html instead of JSON-RPC" in str(refused("POST", 200, "text/html"))
    assert "answered a GET with application/json" in str(refused("GET", 200, "application/json"))
    assert str(refused("POST", 503, "application/json", said='"overloaded"')).endswith(
        'answered HTTP 503 Service Unavailable (application/json) instead of a JSON-RPC answer: "overloaded"'
    )
    assert str(refused("POST", 307, "", location="http://up/mcp/")).endswith(
        "answered HTTP 307 Temporary Redirect (no content type) instead of a JSON-RPC answer (to http://up/mcp/)"
    )


def test_the_message_of_an_error_body() -> None:
    assert error_message(b'{"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": "boom"}}') == '"boom"'
    assert error_message(b"<html>") is None
    assert error_message(b'{"error": "no"}') is None
