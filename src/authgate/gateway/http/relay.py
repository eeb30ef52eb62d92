"""Relaying the upstream's answer to the client as it arrives.

No buffering: each chunk aiohttp reads is sent on at once (an SSE event's `id:`, `retry:`,
`data:` and comment lines are never re-framed). Only a non-streamed answer with a declared
length up to `WHOLE_BODY_LIMIT` is read first and sent in one piece, which saves a message
per request and changes nothing the client can see.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from starlette.types import Send

from authgate.gateway.errors import UpstreamUnavailable
from authgate.gateway.headers import downstream_headers
from authgate.gateway.tool_schemas import ToolsListTap
from authgate.masking import masked_url, masked_urls

__all__ = ["is_sse", "relay_response", "relay_with_rejections"]

log = logging.getLogger("authgate.gateway")

WHOLE_BODY_LIMIT = 1 << 20
MAX_BATCH_ANSWER = 16 << 20


def is_sse(response: aiohttp.ClientResponse) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


async def relay_response(response: aiohttp.ClientResponse, send: Send, tap: ToolsListTap | None) -> None:
    sse = is_sse(response)
    length = response.content_length
    content_type = response.headers.get("content-type", "")
    if not sse and length is not None and length <= WHOLE_BODY_LIMIT:
        data = await response.content.readexactly(length) if length else b""
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": downstream_headers(response.raw_headers, sse=False, keep_length=True),
            }
        )
        await send({"type": "http.response.body", "body": data})
        if tap is not None:
            tap.feed(data)
            tap.finish(content_type)
        return
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": downstream_headers(response.raw_headers, sse=sse, keep_length=False),
        }
    )
    if await _stream_body(response, send, tap) and tap is not None:
        tap.finish(content_type)


async def relay_with_rejections(
    response: aiohttp.ClientResponse, rejected: tuple[dict[str, Any], ...], send: Send
) -> None:
    """A batch some of whose elements were malformed (JSON-RPC 2.0 §6): their errors join the
    upstream's answer to the rest. An upstream error status stands for the whole batch."""
    if response.status == 202:  # only notifications went upstream: the errors are the answer
        await _send_json(send, 200, list(rejected))
    elif response.status == 200 and is_sse(response):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": downstream_headers(response.raw_headers, sse=True, keep_length=False),
            }
        )
        event = b"event: message\ndata: " + json.dumps(list(rejected)).encode() + b"\n\n"
        await send({"type": "http.response.body", "body": event, "more_body": True})
        await _stream_body(response, send, None)
    elif response.status == 200 and response.headers.get("content-type", "").startswith("application/json"):
        answered = await _read_json(response)
        await _send_json(send, 200, [*rejected, *(answered if isinstance(answered, list) else [answered])])
    else:
        await relay_response(response, send, None)


async def _read_json(response: aiohttp.ClientResponse) -> Any:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_BATCH_ANSWER:
            raise UpstreamUnavailable(
                f"authgate: the upstream's answer to a batch is larger than {MAX_BATCH_ANSWER} bytes"
            )
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise UpstreamUnavailable("authgate: the upstream answered a batch with invalid JSON") from None


async def _send_json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _stream_body(response: aiohttp.ClientResponse, send: Send, tap: ToolsListTap | None) -> bool:
    """Relay the body chunk by chunk; True if it arrived whole."""
    complete = False
    try:
        async for chunk in response.content.iter_any():
            if tap is not None:
                tap.feed(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        complete = True
    except (TimeoutError, aiohttp.ClientError) as exc:
        # The headers are out: all that is left is to end the stream, and say why in the log.
        log.warning(
            "upstream answer to %s %s ended early: %s",
            response.method,
            masked_url(str(response.url)),
            "silent for longer than upstream_idle_timeout"
            if isinstance(exc, asyncio.TimeoutError)
            else f"{type(exc).__name__}: {masked_urls(str(exc))}",
        )
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    return complete
