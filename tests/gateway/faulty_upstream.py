"""An MCP upstream made to misbehave, for the gateway's fault tests (test_proxy_faults.py).

Run as a process of its own (`python faulty_upstream.py PORT`, `FaultyUpstream` below) so a
test can kill it in the middle of an answer. What it does, by the tool a `tools/call` names:

* `echo` — a JSON answer at once (what a second client calls meanwhile);
* `trickle_json` — `application/json` headers and half a response, then a space every
  0.2 s, never the end: the answer is never whole, yet never silent;
* `trickle_sse` — an SSE progress event, then a keep-alive comment every 0.2 s, forever;
* `silent_sse` — an SSE progress event, then silence (`subscriptions/listen`: as `trickle_sse`);
* `half_event_sse` — an SSE progress event and half of a second event, then silence;
* `html_500` — `500` with an HTML error page;  `json_500` — `500` with a JSON-RPC error;
  `bad_json` — `200 application/json` that is not JSON;  `wrong_id` — a well-formed
  response to another id;  `busy_503` — `503` with `Retry-After: 7`;  `busy_503_date` — `503`
  with an HTTP-date `Retry-After` (not passed on).

`initialize` (2025-era) hands out a session id; a notification is answered 202 and kept with
its headers; `GET /mcp` is an endless stream of keep-alive comments; `GET /marks` tells what
it saw: the tools entered and the notifications received.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SESSION = "faulty-session-1"
TICK = 0.2
HALF_EVENT = b'event: message\ndata: {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "half'


def _progress(request_id: Any) -> bytes:
    note = {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": request_id, "progress": 1},
    }
    return b"event: message\ndata: " + json.dumps(note).encode() + b"\n\n"


def build_app() -> Starlette:
    marks: dict[str, list[Any]] = {"entered": [], "notifications": []}

    async def post(request: Request) -> Response:
        body = json.loads(await request.body())
        method, request_id = body.get("method"), body.get("id")
        if "id" not in body:
            marks["notifications"].append({"body": body, "headers": dict(request.headers)})
            return Response(status_code=202)
        if method == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "serverInfo": {"name": "faulty", "version": "1"},
            }
            return JSONResponse(
                {"jsonrpc": "2.0", "id": request_id, "result": result}, headers={"Mcp-Session-Id": SESSION}
            )
        tool = "trickle_sse" if method == "subscriptions/listen" else (body.get("params") or {}).get("name")
        marks["entered"].append(tool)
        return _answer(tool, request_id, body, marks)

    async def get(request: Request) -> Response:
        async def keep_alive() -> AsyncIterator[bytes]:
            while True:
                yield b": keep-alive\n\n"
                await asyncio.sleep(TICK)

        return StreamingResponse(keep_alive(), media_type="text/event-stream")

    async def seen(request: Request) -> Response:
        return JSONResponse(marks)

    return Starlette(
        routes=[Route("/mcp", post, methods=["POST"]), Route("/mcp", get, methods=["GET"]), Route("/marks", seen)]
    )


def _answer(tool: str | None, request_id: Any, body: dict[str, Any], marks: dict[str, list[Any]]) -> Response:
    if tool == "echo":
        text = (body["params"].get("arguments") or {}).get("text", "")
        result = {"content": [{"type": "text", "text": text}], "isError": False}
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})
    if tool == "trickle_json":

        async def trickle_json() -> AsyncIterator[bytes]:
            yield b'{"jsonrpc": "2.0", "id": ' + json.dumps(request_id).encode() + b","
            marks["entered"].append("trickle_json: sent")  # resumed once the first piece went out
            while True:
                await asyncio.sleep(TICK)
                yield b" "

        return StreamingResponse(trickle_json(), media_type="application/json")
    if tool in ("trickle_sse", "silent_sse"):

        async def events() -> AsyncIterator[bytes]:
            yield _progress(request_id)
            while True:
                await asyncio.sleep(TICK if tool == "trickle_sse" else 3600)
                yield b": keep-alive\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")
    if tool == "half_event_sse":

        async def half_event() -> AsyncIterator[bytes]:
            yield _progress(request_id) + HALF_EVENT
            marks["entered"].append("half_event_sse: sent")
            await asyncio.sleep(3600)
            yield b"\n\n"

        return StreamingResponse(half_event(), media_type="text/event-stream")
    if tool == "html_500":
        return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", 500, media_type="text/html")
    if tool == "json_500":  # what the SDK's 2025-era transport answers when its handler fails
        error = {"code": -32603, "message": "Error handling POST request"}
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=500)
    if tool == "busy_503":
        return Response("overloaded", 503, {"retry-after": "7"}, media_type="text/plain")
    if tool == "busy_503_date":
        return Response("maintenance", 503, {"retry-after": "Fri, 31 Dec 2100 23:59:59 GMT"}, media_type="text/plain")
    if tool == "bad_json":
        return Response('{"jsonrpc": "2.0", "id": ', 200, media_type="application/json")
    if tool == "wrong_id":
        return JSONResponse({"jsonrpc": "2.0", "id": 424242, "result": {"content": []}})
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "no such tool"}})


class FaultyUpstream:
    """The app above in a process of its own on one port: started, killed, started again."""

    def __init__(self, port: int, logs: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.logs.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, str(self.port)], stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the faulty upstream exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the faulty upstream did not listen within 20 s")

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()

    def kill(self) -> None:
        """SIGKILL: the process dies mid-answer, its connections reset by the kernel."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def marks(self) -> dict[str, list[Any]]:
        return dict(httpx.get(f"http://127.0.0.1:{self.port}/marks", timeout=5).json())

    def wait_entered(self, tool: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while tool not in self.marks()["entered"]:
            if time.monotonic() > deadline:
                raise AssertionError(f"the upstream never started {tool}")
            time.sleep(0.02)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(build_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
