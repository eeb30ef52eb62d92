"""A kept-alive upstream connection that breaks as it is reused (issue 19: "the gateway fails
loudly and cleanly"). An upstream that closes idle connections, restarts, or resets them under
load makes the next request on such a connection fail before any answer. The gateway sends a
request that changes nothing (a list, a read, `initialize`, `ping`) once more on a fresh
connection, so its client never sees that; a `tools/call` is never sent twice — its client
gets the 502 naming the upstream, and the upstream saw it once.

The upstream here is a raw HTTP/1.1 server on a real socket that answers the first request of
every connection and resets (RST) every later one after reading it — the worst case of the
reset seen under load in CI (`ClientOSError: Connection reset by peer`).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from support import requirements as req
from support.ports import free_port

from .conftest import service_token, start_gateway
from .mcp_wire import modern_headers, modern_request


class ResettingUpstream:
    """Answers a connection's first request; resets the connection at its second."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[str] = []  # JSON-RPC methods (or "GET") in the order they arrived
        self._listener = socket.create_server(("127.0.0.1", port))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._connection, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _connection(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buffered = b""
        served = 0
        with conn:
            while True:
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                while not _:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered = head + chunk
                    head, _, buffered = buffered.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                verb = lines[0].split(" ")[0]
                length = next(
                    (int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"), 0
                )
                while len(buffered) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                body, buffered = buffered[:length], buffered[length:]
                message = json.loads(body) if body else {}
                self.received.append(message.get("method", verb) if verb == "POST" else verb)
                served += 1
                if served > 1:  # a reused connection: reset it, answering nothing
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if verb != "POST":
                    conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                    continue
                result = {"tools": []} if message.get("method") == "tools/list" else {"content": []}
                answer = json.dumps({"jsonrpc": "2.0", "id": message.get("id"), "result": result}).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nkeep-alive: timeout=30\r\n"
                    + f"content-length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )

    def close(self, acceptor: threading.Thread) -> None:
        self._stop.set()
        acceptor.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


@contextmanager
def resetting_upstream() -> Iterator[ResettingUpstream]:
    upstream = ResettingUpstream(free_port())
    acceptor = threading.Thread(target=upstream.serve, daemon=True)
    acceptor.start()
    try:
        yield upstream
    finally:
        upstream.close(acceptor)


@pytest.mark.requirement(req.ISSUE19_GATEWAY_REUSED_CONNECTION_RETRY)
async def test_a_reset_reused_connection_is_retried_for_safe_requests_and_never_for_a_tool_call(
    tmp_path: Path,
) -> None:
    with resetting_upstream() as upstream:
        gateway = start_gateway(tmp_path, f"http://127.0.0.1:{upstream.port}/mcp")
        try:
            token = service_token(gateway)
            async with httpx.AsyncClient(timeout=15) as http:
                for request_id in (1, 2, 3):  # the 2nd and 3rd each meet the reset of a reused connection
                    r = await http.post(
                        gateway.mcp_url,
                        json=modern_request(request_id, "tools/list"),
                        headers=modern_headers(token, "tools/list"),
                    )
                    assert r.status_code == 200, r.text
                    answer = r.json()  # (the gateway may add 2026-07-28 cache hints to a list's result)
                    assert answer["id"] == request_id and answer["result"]["tools"] == [], answer
                lists = upstream.received.count("tools/list")
                assert lists == 5, upstream.received  # 1 + (reset, again) × 2

                call = modern_request(4, "tools/call", {"name": "echo", "arguments": {"text": "x"}})
                r = await http.post(gateway.mcp_url, json=call, headers=modern_headers(token, "tools/call", "echo"))
            assert r.status_code == 502, r.text
            error = r.json()["error"]
            assert r.json()["id"] == 4 and error["data"] == {"source": "authgate", "reason": "upstream_unavailable"}
            assert f"127.0.0.1:{upstream.port}" in error["message"], error
            assert upstream.received.count("tools/call") == 1, upstream.received  # never sent twice
            assert "Traceback" not in gateway.logs()
        finally:
            gateway.stop()
