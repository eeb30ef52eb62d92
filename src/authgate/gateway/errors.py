"""What the gateway refuses, and the one place it becomes an HTTP response.

    AuthgateError                       (authgate.errors)
    └── GatewayError                    a JSON-RPC error body with an HTTP status
        ├── ParseError                  400  -32700  the body is not JSON
        ├── InvalidJsonRpcRequest       400  -32600  not a JSON-RPC message / empty batch
        │   └── InvalidBatch            400  every batch element malformed: an array of their errors
        ├── HeaderMismatch              400  -32020  Mcp-Method / Mcp-Name / Mcp-Param-* disagree with the body
        ├── BodyTooLarge                413  -32600  larger than max_body
        ├── MethodNotAllowed            405  -32600  not POST, GET or DELETE
        ├── SessionNotFound             404  -32600  unknown, expired, or another identity's session
        ├── ShuttingDown                503  -32603  still running when the shutdown drain time ran out
        ├── TooManyStreams              429  -32603  past max_streams_per_caller, `Retry-After` (gateway/streams.py)
        ├── SessionStoreUnavailable     503  -32603  the session bindings could not be read or written
        ├── DatabaseUnavailable         503  -32603  authgate's database cannot answer now (Retry-After)
        ├── DatabaseFailed              500  -32603  authgate's database failed otherwise
        ├── ConnectionNeeded            200  -32012  an OAuth-protected upstream: the person's connect link
        │                                            (gateway/http/upstream_oauth.py, the connection signal)
        ├── UpstreamNeedsAPerson        403  -32603  an OAuth-protected upstream and a machine client
        └── UpstreamError               -32603, `data.source = "authgate"`
            ├── UpstreamUnavailable     502  connection refused / reset, DNS failure, TLS failure
            ├── UpstreamRefused         502  the upstream answered 401 to authgate's own credential
            ├── UpstreamInvalidAnswer   502  not JSON-RPC for the request: a 5xx, HTML, invalid JSON, a wrong id
            ├── UpstreamBusy            503  the upstream answered 503: retryable, its Retry-After passed on
            ├── UpstreamStreamCut       502  the answer ended early: connection lost mid-body, stream ended unanswered
            ├── UpstreamAuthFailed      502  no token for an OAuth-protected upstream: its metadata refused, its AS down
            │   └── UpstreamAuthUnavailable 503  a due renewal the upstream's AS cannot make now (Retry-After)
            ├── UpstreamScopeRefused    403  an OAuth-protected upstream refuses scopes the connection already holds
            └── UpstreamTimeout         504  no connection or no first byte in time
                ├── UpstreamIdleTimeout 504  a streamed answer silent for longer than upstream_idle_timeout
                └── UpstreamCallTimeout 504  no whole answer within upstream_call_timeout

An UpstreamError after the answer's headers went out reaches the client as the last event
of its SSE stream, for each request id still unanswered (gateway/http/reply.py).

Codes follow JSON-RPC 2.0 §5.1 and MCP 2026-07-28 basic/index "Error Codes": -32020 is
MCP's HeaderMismatch; gateway-local failures use -32603 with `data.source = "authgate"` so a
client cannot mistake them for errors the upstream sent (and -32020…-32099 stay MCP's).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from starlette.types import Send

from authgate import metering
from authgate.errors import AuthgateError

JsonRpcId = str | int | None

__all__ = [
    "BodyTooLarge",
    "DatabaseFailed",
    "DatabaseUnavailable",
    "GatewayError",
    "HeaderMismatch",
    "InvalidBatch",
    "InvalidJsonRpcRequest",
    "MethodNotAllowed",
    "ParseError",
    "SessionNotFound",
    "ShuttingDown",
    "UpstreamCallTimeout",
    "UpstreamError",
    "UpstreamIdleTimeout",
    "UpstreamInvalidAnswer",
    "UpstreamRefused",
    "UpstreamStreamCut",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "error_object",
    "send_error",
]


class GatewayError(AuthgateError):
    status: ClassVar[int] = 400
    code: ClassVar[int] = -32600

    def __init__(self, message: str, *, request_id: JsonRpcId = None) -> None:
        self.message = message
        self.request_id = request_id
        super().__init__(message)

    def data(self) -> dict[str, Any] | None:
        return None

    def headers(self) -> list[tuple[bytes, bytes]]:
        return []


class ParseError(GatewayError):
    code = -32700


class InvalidJsonRpcRequest(GatewayError):
    code = -32600


class InvalidBatch(InvalidJsonRpcRequest):
    """JSON-RPC 2.0 §6: each malformed element of a batch gets its own error; when none is
    left to forward, the answer is just those errors."""

    def __init__(self, responses: list[dict[str, Any]]) -> None:
        super().__init__("Invalid Request: every element of the batch is malformed")
        self.responses = responses


class HeaderMismatch(GatewayError):
    code = -32020  # MCP 2026-07-28 transports: Server Validation


class BodyTooLarge(GatewayError):
    status = 413


class MethodNotAllowed(GatewayError):
    status = 405

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", b"GET, POST, DELETE")]


class SessionNotFound(GatewayError):
    status = 404  # MCP 2025-03-26 transports §Session Management: the client starts a new session


class SessionStoreUnavailable(GatewayError):
    """The database holding session bindings could not be asked: nobody's session is honoured
    unchecked, and a new session cannot be recorded."""

    status = 503
    code = -32603

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": "session_store_unavailable"}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"1")]


class DatabaseUnavailable(GatewayError):
    """authgate's own database cannot answer now (a lost connection, a lock held too long:
    `authgate.errors.StoreUnavailable`), e.g. while checking the caller's token: retryable."""

    status = 503
    code = -32603

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": "database_unavailable", "retryable": True}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"1")]


class DatabaseFailed(GatewayError):
    """authgate's own database failed in another way (a `StoreError`): the details are in
    authgate's log, not in the answer."""

    status = 500
    code = -32603

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": "database_error"}


class ShuttingDown(GatewayError):
    """authgate is stopping and the request was still running when its drain time ran out
    (gateway/drain.py): retryable, on another replica or once this one is back."""

    status = 503
    code = -32603

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": "shutting_down", "retryable": True}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"1")]


class UpstreamError(GatewayError):
    status = 502
    code = -32603
    reason: ClassVar[str] = "upstream_error"

    def __init__(self, message: str, *, request_id: JsonRpcId = None) -> None:
        super().__init__(message, request_id=request_id)
        if (meter := metering.meter) is not None:  # counted where each failure is made (server/metrics.py)
            meter.upstream_error(self.reason)

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": self.reason}


class UpstreamUnavailable(UpstreamError):
    reason = "upstream_unavailable"


class UpstreamRefused(UpstreamError):
    reason = "upstream_refused_credentials"


class UpstreamInvalidAnswer(UpstreamError):
    reason = "upstream_invalid_answer"


class UpstreamBusy(UpstreamError):
    """The upstream answered 503 (overloaded, starting, in maintenance): as retryable for the
    client as it was for authgate, with the upstream's `Retry-After` when it gave one in
    seconds (bounded to an hour)."""

    status = 503
    reason = "upstream_busy"

    def __init__(self, message: str, *, retry_after: int | None = None, request_id: JsonRpcId = None) -> None:
        super().__init__(message, request_id=request_id)
        self.retry_after = retry_after

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": self.reason, "retryable": True}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after).encode())] if self.retry_after is not None else []


class UpstreamStreamCut(UpstreamError):
    reason = "upstream_stream_cut"


class UpstreamTimeout(UpstreamError):
    status = 504
    reason = "upstream_timeout"


class UpstreamIdleTimeout(UpstreamTimeout):
    reason = "upstream_idle_timeout"


class UpstreamCallTimeout(UpstreamTimeout):
    reason = "upstream_call_timeout"


def error_object(
    code: int, message: str, request_id: JsonRpcId = None, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-RPC 2.0 error response (§5); `id` is null when the request's could not be read."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


async def send_error(send: Send, exc: GatewayError) -> None:
    payload: Any = (
        exc.responses
        if isinstance(exc, InvalidBatch)
        else error_object(exc.code, exc.message, exc.request_id, exc.data())
    )
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *exc.headers(),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
