"""Slowloris and connection floods against a real `authgate serve` (server/http_protocol.py,
server/connections.py; issue 19): raw sockets that never finish a request head are closed
after `header_read_timeout` (408 when they had sent part of one), idle sockets past
`max_connections` make room for newcomers, and only when every connection serves a request
is a newcomer turned away (503), until one ends. A real client's /mcp call is served
throughout. Every wait is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from support import requirements as req
from support.authgate_server import AuthgateServer

HEADER_TIMEOUT = 2.0  # the slowloris server's header_read_timeout
SLACK = 8.0  # how much later than the timeout a close may come before the test gives up
CAP = 40  # the flooded server's max_connections
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _server(tmp: pytest.TempPathFactory, name: str, **env: str) -> Iterator[AuthgateServer]:
    srv = AuthgateServer(tmp.mktemp(name), extra_env=env)
    srv.add_user()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    yield from _server(tmp_path_factory, "slowloris", AUTHGATE_HEADER_READ_TIMEOUT=str(HEADER_TIMEOUT))


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    # a long head timeout: what closes the flood here is the cap, not the clock
    yield from _server(
        tmp_path_factory,
        "capped",
        AUTHGATE_MAX_CONNECTIONS=str(CAP),
        AUTHGATE_HEADER_READ_TIMEOUT="120",
        # the busy seats are POST /register bodies that stop short: the per-address registration
        # limit (10 a minute) must not answer them before their body is read, freeing their seat
        AUTHGATE_REGISTRATIONS_PER_MINUTE="1000",
    )


async def _real_call(server: AuthgateServer, token: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            server.mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        )


async def _open(port: int, first: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    if first:
        writer.write(first)
        await writer.drain()
    return reader, writer


async def _until_closed(reader: asyncio.StreamReader, started: float) -> tuple[bytes, float]:
    """What the server wrote before closing, and how long after `started` it closed."""
    data = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT + SLACK)
    return data, time.monotonic() - started


@pytest.mark.requirement(req.ISSUE19_HEADER_READ_TIMEOUT)
async def test_slowloris_connections_are_closed_after_the_header_timeout(slow_server: AuthgateServer) -> None:
    token, _ = slow_server.machine_token("mcp", name="slowloris-victim")
    port = slow_server.port
    started = time.monotonic()
    half_lines = [await _open(port, b"GET /mcp HTT") for _ in range(300)]  # half a request line, then silence
    silent = [await _open(port, b"") for _ in range(20)]  # connected, nothing sent
    half_head = [await _open(port, b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Ty") for _ in range(5)]
    slow_body = [  # a whole head, then part of the body it announced, then silence
        await _open(port, b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{") for _ in range(5)
    ]
    # a keep-alive connection that was served once, then dribbles half of its next request line
    reader, writer = await _open(port, f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await asyncio.wait_for(reader.readexactly(length), 10)
    writer.write(b"GET /hea")
    await writer.drain()

    watched = [*half_lines, *silent, *half_head, *slow_body, (reader, writer)]
    closes = [asyncio.create_task(_until_closed(r, started)) for r, _w in watched]
    answer = await _real_call(slow_server, token)  # served while the slowloris sockets are held
    assert answer.status_code == 200, answer.text
    print(f"\nreal /mcp call answered with {sum(not c.done() for c in closes)} slowloris sockets still open")

    outcomes = await asyncio.gather(*closes)
    partial = outcomes[:300] + outcomes[320:325] + outcomes[-1:]
    assert all(data.startswith(b"HTTP/1.1 408") and b"connection: close" in data for data, _ in partial)
    assert all(data == b"" for data, _ in outcomes[300:320])  # nothing sent: closed without a word
    assert all(b"HTTP/1.1" not in data for data, _ in outcomes[325:330])  # the app had the request: just closed
    print(f"closed after {min(t for _, t in outcomes):.1f}–{max(t for _, t in outcomes):.1f} s")
    for _r, w in watched:
        w.close()
    assert (await _real_call(slow_server, token)).status_code == 200
    assert "Traceback" not in slow_server.logs()  # a body cut for its silence is no server error


@pytest.mark.requirement(req.ISSUE19_CONNECTION_CAP)
async def test_two_thousand_idle_sockets_do_not_keep_a_real_client_out(capped_server: AuthgateServer) -> None:
    token, _ = capped_server.machine_token("mcp", name="flood-victim")
    port = capped_server.port
    flood = [await _open(port, b"GET /mcp HTT" if i % 2 else b"") for i in range(2000)]
    closes = [asyncio.create_task(r.read()) for r, _w in flood]  # done when the server closes it
    answer = await _real_call(capped_server, token)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 10
    while (closed := sum(c.done() for c in closes)) < len(flood) - CAP and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # each newcomer closed the one idle longest
    assert closed >= len(flood) - CAP, f"only {closed} of {len(flood)} idle sockets were closed"
    for close in closes:
        close.cancel()
    for _r, w in flood:
        w.close()


@pytest.mark.requirement(req.ISSUE19_CONNECTION_CAP)
async def test_with_every_connection_busy_a_newcomer_gets_503_until_one_ends(capped_server: AuthgateServer) -> None:
    token, _ = capped_server.machine_token("mcp", name="busy-victim")
    port = capped_server.port
    # each a request in progress: a head, and a body that stops short of its Content-Length
    busy = [
        await _open(port, b"POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{") for _ in range(CAP)
    ]
    deadline = time.monotonic() + 10
    refused = None
    while time.monotonic() < deadline:  # the last heads may still be on their way in
        refused = await _real_call(capped_server, token)
        if refused.status_code == 503:
            break
        await asyncio.sleep(0.05)
    assert refused is not None and refused.status_code == 503, refused.text if refused else None
    assert refused.headers["retry-after"] == "1" and "max_connections" in refused.json()["error_description"]

    reader, writer = busy.pop()
    writer.close()  # one request ends: its seat is free
    deadline = time.monotonic() + 10
    while (answer := await _real_call(capped_server, token)).status_code == 503 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert answer.status_code == 200, answer.text
    for _r, w in busy:
        w.close()
