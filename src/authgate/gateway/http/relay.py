"""Relaying the upstream's answer to the client.

An SSE answer is relayed as it arrives: each chunk aiohttp reads is sent on at once (an
event's `id:`, `retry:`, `data:` and comment lines are never re-framed), watched by the
`Reply` for the answers it carries. A JSON answer to requests is held back until whole (up
to `MAX_JSON_ANSWER`) and checked (answer.py), so that an upstream that dies mid-body or
answers something else gets the client a 502 JSON-RPC error rather than a cut body. Other
answers (4xx, 202, a DELETE's) pass as they are, in one piece when their declared length
is up to `WHOLE_BODY_LIMIT`. A failure after the headers went out ends the answer through
`Reply.fail` (the stream's last event).
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import aiohttp

from authgate.gateway.errors import JsonRpcId, UpstreamError, UpstreamInvalidAnswer, UpstreamStreamCut
from authgate.gateway.headers import downstream_headers
from authgate.gateway.http.answer import check_json, error_message, is_json, refusal, retry_after_seconds
from authgate.gateway.http.reply import Reply
from authgate.gateway.http.upstream import Upstream
from authgate.gateway.sse import sse_event
from authgate.gateway.tool_schemas import ToolsListTap
from authgate.masking import masked_url

__all__ = ["is_sse", "relay_response", "relay_with_rejections"]

log = logging.getLogger("authgate.gateway")

WHOLE_BODY_LIMIT = 1 << 20
MAX_JSON_ANSWER = 16 << 20


def is_sse(response: aiohttp.ClientResponse) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


async def relay_response(
    response: aiohttp.ClientResponse,
    reply: Reply,
    upstream: Upstream,
    tap: ToolsListTap | None = None,
    *,
    method: str = "POST",
    request_ids: frozenset[JsonRpcId] = frozenset(),
) -> None:
    """Relay the answer to `method` (a POST carrying requests with `request_ids`), unless it
    cannot be a JSON-RPC answer (answer.py): then raise, before anything went out."""
    refused = await _refusal(response, upstream, method, answers_requests=bool(request_ids))
    if refused is not None:
        raise refused
    if is_sse(response):
        await _relay_sse(response, reply, upstream, tap)
    elif request_ids and response.status < 300:
        await _relay_json(response, reply, upstream, tap, request_ids)
    else:  # a 4xx, a 202, a DELETE's answer: as it is
        length = response.content_length
        if length is not None and length <= WHOLE_BODY_LIMIT:
            chunks, _ = await _read(response, upstream, length)
            headers = downstream_headers(response.raw_headers, sse=False, keep_length=True)
            await reply.whole(response.status, headers, b"".join(chunks))
        else:
            await _relay_stream(response, reply, upstream, [])


async def relay_with_rejections(
    response: aiohttp.ClientResponse,
    rejected: tuple[dict[str, Any], ...],
    reply: Reply,
    upstream: Upstream,
    request_ids: frozenset[JsonRpcId],
) -> None:
    """A batch some of whose elements were malformed (JSON-RPC 2.0 §6): their errors join the
    upstream's answer to the rest. An upstream error status stands for the whole batch."""
    if response.status == 202:  # only notifications went upstream: the errors are the answer
        await _send_json(reply, 200, list(rejected))
    elif (refused := await _refusal(response, upstream, "POST", answers_requests=True)) is not None:
        raise refused
    elif response.status == 200 and is_sse(response):
        await _relay_sse(response, reply, upstream, None, sse_event(list(rejected)))
    elif response.status == 200 and is_json(response.headers.get("content-type", "")):
        chunks, whole = await _read(response, upstream, MAX_JSON_ANSWER)
        if not whole:
            raise UpstreamInvalidAnswer(
                f"authgate: {upstream.where} answered a batch with more than {MAX_JSON_ANSWER} bytes"
            )
        data = b"".join(chunks)
        check_json(upstream.where, data, request_ids)
        answered = json.loads(data)
        await _send_json(reply, 200, [*rejected, *(answered if isinstance(answered, list) else [answered])])
    else:
        await relay_response(response, reply, upstream, method="POST", request_ids=request_ids)


async def _refusal(
    response: aiohttp.ClientResponse, upstream: Upstream, method: str, *, answers_requests: bool
) -> UpstreamError | None:
    """answer.refusal, with what a 5xx JSON body said and where a redirect pointed."""
    content_type = response.headers.get("content-type", "")
    said = location = None
    if response.status >= 500 and is_json(content_type):
        with contextlib.suppress(UpstreamError):
            chunks, _ = await _read(response, upstream, 4096)
            said = error_message(b"".join(chunks))
    elif 300 <= response.status < 400 and (target := response.headers.get("location")):
        location = masked_url(target[:300])
    return refusal(
        upstream.where,
        method,
        response.status,
        content_type,
        answers_requests=answers_requests,
        said=said,
        location=location,
        retry_after=retry_after_seconds(response.headers.get("retry-after")) if response.status == 503 else None,
    )


async def _relay_json(
    response: aiohttp.ClientResponse,
    reply: Reply,
    upstream: Upstream,
    tap: ToolsListTap | None,
    request_ids: frozenset[JsonRpcId],
) -> None:
    """Held back until whole and checked, so that a cut or a wrong answer is still a 502.
    Larger than MAX_JSON_ANSWER: relayed unchecked as it arrives (memory stays bounded)."""
    chunks, whole = await _read(response, upstream, MAX_JSON_ANSWER)
    if not whole:
        log.info("upstream answer over %d bytes: relayed unchecked", MAX_JSON_ANSWER)
        await _relay_stream(response, reply, upstream, chunks)
        return
    data = b"".join(chunks)
    check_json(upstream.where, data, request_ids)
    headers = downstream_headers(response.raw_headers, sse=False, keep_length=False)
    await reply.whole(response.status, [*headers, (b"content-length", str(len(data)).encode())], data)
    if tap is not None:
        tap.feed(data)
        tap.finish(response.headers.get("content-type", ""))


async def _relay_sse(
    response: aiohttp.ClientResponse,
    reply: Reply,
    upstream: Upstream,
    tap: ToolsListTap | None,
    first: bytes = b"",
) -> None:
    headers = downstream_headers(response.raw_headers, sse=True, keep_length=False)
    await reply.start(response.status, headers, sse=True)
    if first:
        await reply.body(first)
    await _stream(response, reply, upstream, tap)
    if tap is not None:
        tap.finish(response.headers.get("content-type", ""))
    watch = reply.watch
    if watch is not None and watch.pending and not (watch.resumable or watch.blind):
        raise UpstreamStreamCut(
            f"authgate: {upstream.where} ended its event stream without answering, and gave no event id to resume from"
        )
    await reply.body(b"", more=False)


async def _relay_stream(response: aiohttp.ClientResponse, reply: Reply, upstream: Upstream, read: list[bytes]) -> None:
    headers = downstream_headers(response.raw_headers, sse=False, keep_length=not read)
    await reply.start(response.status, headers, sse=False)
    for chunk in read:
        await reply.body(chunk)
    await _stream(response, reply, upstream, None)
    await reply.body(b"", more=False)


async def _read(response: aiohttp.ClientResponse, upstream: Upstream, limit: int) -> tuple[list[bytes], bool]:
    """The body's chunks up to `limit` bytes, and whether that is the whole body."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = await response.content.readany()
            if not chunk:
                return chunks, True
            chunks.append(chunk)
            size += len(chunk)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise upstream.explain_read(exc) from exc
    return chunks, False


async def _stream(response: aiohttp.ClientResponse, reply: Reply, upstream: Upstream, tap: ToolsListTap | None) -> None:
    """Relay the rest of the body chunk by chunk, as it arrives."""
    try:
        async for chunk in response.content.iter_any():
            if tap is not None:
                tap.feed(chunk)
            await reply.body(chunk)
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise upstream.explain_read(exc) from exc


async def _send_json(reply: Reply, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await reply.whole(status, headers, body)
