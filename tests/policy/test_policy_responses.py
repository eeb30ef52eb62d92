"""`ResponseTap`: rewriting awaited JSON-RPC results in JSON and SSE answers, streaming the rest."""

from __future__ import annotations

import json
from typing import Any

from authgate.policy import responses
from authgate.policy.responses import ResponseTap


def mark(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "rewritten": True}


async def run(chunks: list[bytes], content_type: bytes, rewrites: dict[Any, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    tap = ResponseTap(send, rewrites)
    await tap(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", content_type), (b"content-length", str(sum(map(len, chunks))).encode())],
        }
    )
    for i, chunk in enumerate(chunks):
        await tap({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})
    assert tap.status == 200 and tap.finished_at is not None
    return sent


def body_of(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def test_sse_events_cut_anywhere_and_crlf_lines_are_handled() -> None:
    response = json.dumps({"jsonrpc": "2.0", "id": "a", "result": {"tools": []}}).encode()
    stream = b": comment\r\n\r\nevent: message\r\ndata: " + response + b"\r\n\r\ndata: tail\r\n\r\n"
    chunks = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    sent = await run(chunks, b"text/event-stream; charset=utf-8", {"a": mark})
    start = sent[0]
    assert all(k != b"content-length" for k, _v in start["headers"])
    text = body_of(sent).decode()
    assert text.startswith(": comment\r\n\r\nevent: message\ndata: ")
    assert '"rewritten": true' in text and text.endswith("data: tail\r\n\r\n")


async def test_a_data_field_over_several_lines_is_one_json_text() -> None:
    stream = b'data: {"jsonrpc": "2.0",\ndata: "id": 1, "result": {}}\n\n'
    text = body_of(await run([stream], b"text/event-stream", {1: mark})).decode()
    assert json.loads(text.removeprefix("data: "))["result"] == {"rewritten": True}


async def test_responses_to_other_ids_and_errors_are_left_alone() -> None:
    payload = json.dumps(
        [{"jsonrpc": "2.0", "id": 2, "result": {}}, {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "x"}}]
    ).encode()
    assert body_of(await run([payload], b"application/json", {1: mark})) == payload


async def test_json_too_large_to_hold_goes_through_untouched(monkeypatch: Any) -> None:
    monkeypatch.setattr(responses, "MAX_BUFFERED", 10)
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}).encode()
    sent = await run([payload[:15], payload[15:]], b"application/json", {1: mark})
    assert body_of(sent) == payload
    assert all(k != b"content-length" for k, _v in sent[0]["headers"])


async def test_a_rewritten_json_answer_gets_its_new_length() -> None:
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {}}).encode()
    sent = await run([payload], b"application/json", {1: mark})
    length = dict(sent[0]["headers"])[b"content-length"]
    assert int(length) == len(body_of(sent)) and b"rewritten" in body_of(sent)
