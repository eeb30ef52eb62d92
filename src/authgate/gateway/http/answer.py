"""Is the upstream's answer JSON-RPC for the request? Judged before the client sees it.

A Streamable HTTP server answers a POST carrying requests with `application/json` (a JSON-RPC
response; an array of them for a 2025-03-26 batch) or `text/event-stream`, one carrying
none with 202, and a GET with `text/event-stream` (MCP 2025-03-26 … 2026-07-28 transports).
Anything else is the upstream failing, and the client gets 502 with a JSON-RPC error that
names the upstream (`UpstreamInvalidAnswer`) instead of the upstream's bytes:

* a 5xx (an HTML error page, a crashed handler) or a 3xx (a redirect would lead the client
  away from authgate, to an address only authgate may reach); a 503 is the upstream saying
  "not now": 503 `UpstreamBusy` with its `Retry-After` (seconds, at most an hour), retryable;
* a 2xx in another content type (HTML, text, none);
* a JSON body that is not JSON, not JSON-RPC responses, or that answers an id the request
  did not carry.

4xx answers pass as they are: they are the transport's own (404 for an `Mcp-Session-Id`
the server no longer knows, upon which the client starts a new session; 400, 405, 406, 415;
404 with -32601 for an unknown method in 2026-07-28), and so does the body of a DELETE.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from http import HTTPStatus
from typing import Any

from authgate.gateway.errors import JsonRpcId, UpstreamBusy, UpstreamError, UpstreamInvalidAnswer

__all__ = ["check_json", "error_message", "is_json", "refusal", "retry_after_seconds"]

MAX_RETRY_AFTER = 3600


def refusal(
    where: str,
    method: str,
    status: int,
    content_type: str,
    *,
    answers_requests: bool,
    said: str | None = None,
    location: str | None = None,
    retry_after: int | None = None,
) -> UpstreamError | None:
    """Why the answer's status and content type cannot be a JSON-RPC answer, or None.
    `answers_requests`: the POST carried at least one request (not only notifications);
    `said`: the JSON-RPC error message of a 5xx body; `location`: a redirect's target;
    `retry_after`: a 503's Retry-After in seconds (retry_after_seconds)."""
    shown = content_type.split(";")[0].strip() or "no content type"
    if status >= 500 or 300 <= status < 400:
        extra = f": {said}" if said else f" (to {location})" if location else ""
        message = f"authgate: {where} answered HTTP {status}{_phrase(status)} ({shown}) instead of a JSON-RPC answer"
        if status == 503:
            return UpstreamBusy(message + extra, retry_after=retry_after)
        return UpstreamInvalidAnswer(message + extra)
    if status >= 400 or status in (202, 204) or content_type.startswith("text/event-stream"):
        return None
    if method == "GET":
        return UpstreamInvalidAnswer(
            f"authgate: {where} answered a GET with {shown} instead of an event stream (text/event-stream)"
        )
    if method == "POST" and answers_requests and not is_json(content_type):
        return UpstreamInvalidAnswer(
            f"authgate: {where} answered with {shown} instead of JSON-RPC (application/json or text/event-stream)"
        )
    return None


def retry_after_seconds(value: str | None) -> int | None:
    """A Retry-After in delta-seconds (RFC 9110 §10.2.3), at most MAX_RETRY_AFTER; an HTTP-date
    or anything else: None (the client decides)."""
    value = (value or "").strip()
    return min(int(value), MAX_RETRY_AFTER) if value.isdigit() and len(value) <= 10 else None


def is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def check_json(where: str, body: bytes, request_ids: Collection[JsonRpcId]) -> None:
    """Raise UpstreamInvalidAnswer unless `body` is the JSON-RPC response (or, for a batch, the
    responses) to requests with these ids. A response with a null id carries an error about
    a request the server could not read (JSON-RPC 2.0 §5)."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UpstreamInvalidAnswer(f"authgate: {where} answered with invalid JSON ({_short(exc)})") from None
    for response in decoded if isinstance(decoded, list) and decoded else (decoded,):
        problem = _problem(response, request_ids)
        if problem is not None:
            raise UpstreamInvalidAnswer(f"authgate: {where} answered {problem}")


def error_message(body: bytes) -> str | None:
    """The `error.message` of a JSON-RPC error body, shortened, or None."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return _short(json.dumps(message, ensure_ascii=False)) if isinstance(message, str) and message else None


def _problem(response: Any, request_ids: Collection[JsonRpcId]) -> str | None:
    if not isinstance(response, dict) or response.get("jsonrpc") != "2.0" or "method" in response:
        return "with JSON that is not a JSON-RPC response"
    if ("result" in response) == ("error" in response):
        return 'a JSON-RPC response that has not exactly one of "result" and "error"'
    answered = response.get("id")
    if answered is None and "error" in response:
        return None
    if isinstance(answered, bool) or not isinstance(answered, str | int) or answered not in request_ids:
        expected = ", ".join(json.dumps(i) for i in list(request_ids)[:5])
        return f"id {_short(json.dumps(answered))}, not the request's id ({_short(expected)})"
    return None


def _phrase(status: int) -> str:
    try:
        return " " + HTTPStatus(status).phrase
    except ValueError:
        return ""


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
