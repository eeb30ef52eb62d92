"""`authgate serve` speaks no WebSocket (MCP has no WebSocket transport): uvicorn runs with
ws="none", so the websockets package is never imported (tests/unit/test_import_cost.py), and a
WebSocket handshake is answered as the plain HTTP request it also is — never 101, and without
a warning per request in the log."""

from __future__ import annotations

import socket
from pathlib import Path

from support.authgate_server import AuthgateServer


def _handshake(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        return conn.recv(4096).split(b"\r\n", 1)[0]


def test_a_websocket_handshake_gets_the_http_answer_and_no_warning(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)
    server.add_user()
    server.start()
    try:
        assert _handshake(server.port, "/mcp") == b"HTTP/1.1 401 Unauthorized"  # the guard's, not a 101
        assert _handshake(server.port, "/health") == b"HTTP/1.1 200 OK"
    finally:
        server.stop()
    logs = server.logs()
    assert "GET /mcp 401" in logs
    assert "Unsupported upgrade request" not in logs and "WebSocket library" not in logs
