"""`BoundedHttpToolsProtocol`: uvicorn's httptools protocol with the request head bounded.

ASGI middleware sees a request only once its whole head is parsed, too late for a 64 MiB
header (buffered in full first); uvicorn's h11 limit (`h11_max_incomplete_event_size`)
answers 400, and its httptools protocol has no limit. This subclass counts the bytes of a
request head as they arrive and its header lines as they are parsed: past MAX_HEAD_BYTES or
MAX_HEADERS the client gets 431 (RFC 6585 §5) with a short JSON body, and the connection
closes after a bounded drain (DRAIN_BYTES / DRAIN_SECONDS read and dropped, so a client
still sending reads the answer instead of a reset). `authgate serve` passes it to uvicorn as
`http=` (cli/main.py); library mode users pass it to their own server the same way.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # request line and headers
MAX_HEADERS = 100
DRAIN_BYTES = 1024 * 1024
DRAIN_SECONDS = 1.0


class _TooManyHeaders(Exception):
    """Raised from the parser's header callback, so it parses nothing further."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False  # between the first byte of a request and the end of its headers
        self._head_bytes = 0
        self._header_count = 0
        self._refused = False  # answered 431: draining until the connection closes
        self._drained = 0

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drained += len(data)
            if self._drained > DRAIN_BYTES:
                self.transport.close()
            return
        super().data_received(data)
        if self._in_head and not self._refused:
            # The whole chunk counts (it may hold the end of a previous request): the head
            # buffered before a refusal is at most MAX_HEAD_BYTES plus one read.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(f"the request line and headers are larger than {MAX_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        self._in_head, self._head_bytes, self._header_count = True, 0, 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            raise _TooManyHeaders  # the parser stops; uvicorn then calls send_400_response
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._header_count > MAX_HEADERS:
            self._refuse(f"the request has more than {MAX_HEADERS} header fields")
        else:
            super().send_400_response(msg)

    def _refuse(self, description: str) -> None:
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request behind one still answering: no room for a 431
            return
        body = json.dumps({"error": "invalid_request", "error_description": description}).encode()
        head = b"".join(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    head,
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client sees the end of the answer while we drain
        self.loop.call_later(DRAIN_SECONDS, self.transport.close)
