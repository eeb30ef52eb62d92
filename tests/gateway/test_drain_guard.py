"""How a stop's cut ends an answer (gateway/drain.py, gateway/sse.py), in process: the guard
around an app that leaves the ending to it (the stdio bridge, any MCP app), and around one
that ends its own (the HTTP proxy, whose real-upstream case is test_drain_cut.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from authgate.gateway.drain import Drain, DrainGuard, own_cuts, take_cut
from authgate.gateway.errors import ShuttingDown
from authgate.gateway.sse import SseWatch, error_ending, sse_event

from .test_drain_cut import sse_events

HALF = b'event: message\ndata: {"jsonrpc": "2.0", "method": "notifications/progress"'
ERROR = ShuttingDown("authgate is shutting down")
BATCH = [{"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {}} for i in (1, "b", 3)]


def test_the_ending_terminates_a_cut_event_and_answers_only_what_is_pending() -> None:
    watch = SseWatch({1, "b", 3})
    watch.feed(sse_event({"jsonrpc": "2.0", "id": 1, "result": {}}) + HALF)
    ending = error_ending(watch, ERROR)
    assert ending.startswith(b"\n\n")
    *_, cut, last = sse_events(sse_event({"jsonrpc": "2.0", "id": 1, "result": {}}) + HALF + ending)
    assert cut.endswith('"notifications/progress"')
    assert [(m["id"], m["error"]["data"]["reason"]) for m in json.loads(last)] == [
        (3, "shutting_down"),
        ("b", "shutting_down"),
    ]
    watch.pending.clear()
    assert error_ending(watch, ERROR) == b""  # nothing owed: the stream just ends


async def _run_cut(app: Any, body: Any, after: Any) -> list[Message]:
    """`app` behind DrainGuard, its request cut once `after` (an Event) is set; what the client got."""
    drain, sent = Drain(), []
    raw = json.dumps(body).encode()
    received = iter([{"type": "http.request", "body": raw, "more_body": False}])

    async def receive() -> Message:
        try:
            return next(received)
        except StopIteration:
            await asyncio.Event().wait()  # the client stays
            raise AssertionError from None

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": []}
    call = asyncio.create_task(DrainGuard(app, drain)(scope, receive, send))
    await asyncio.wait_for(after.wait(), 5)
    assert drain.expire(1.0) == 1
    await asyncio.wait_for(call, 5)
    return sent


def _stream(sent: list[Message]) -> bytes:
    assert sent[0]["type"] == "http.response.start" and sent[-1].get("more_body") is False
    return b"".join(m.get("body", b"") for m in sent[1:])


async def test_the_guard_ends_a_batch_stream_for_the_ids_still_unanswered() -> None:
    begun = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send(
            {
                "type": "http.response.body",
                "body": sse_event({"jsonrpc": "2.0", "id": "b", "result": {}}),
                "more_body": True,
            }
        )
        await send({"type": "http.response.body", "body": HALF, "more_body": True})
        begun.set()
        await asyncio.Event().wait()

    events = sse_events(_stream(await _run_cut(app, BATCH, begun)))
    assert json.loads(events[0])["id"] == "b" and events[1].endswith('"notifications/progress"')
    assert sorted(m["id"] for m in json.loads(events[-1])) == [1, 3]


async def test_an_app_that_owns_its_cuts_ends_the_answer_itself() -> None:
    begun, taken = asyncio.Event(), []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        own_cuts(scope)
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        begun.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cut = take_cut(scope)
            assert cut is not None and take_cut(scope) is None  # taken once
            taken.append(cut)
            await send({"type": "http.response.body", "body": b"own ending", "more_body": False})

    sent = await _run_cut(app, BATCH[0], begun)
    assert _stream(sent) == b"own ending" and taken[0].data() == ERROR.data()


async def test_a_cancellation_that_is_not_the_drains_is_not_taken() -> None:
    scope: dict[str, Any] = {"type": "http", "method": "POST", "headers": []}
    seen: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        own_cuts(scope)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append(take_cut(scope))
            raise

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}"}

    async def send(message: Message) -> None:
        seen.append(message)

    call = asyncio.create_task(DrainGuard(app, Drain())(scope, receive, send))
    await asyncio.sleep(0.01)
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert call.cancelled() and seen == [None]
