"""What the stdio bridge refuses or reports, on top of the gateway's error tree (gateway/errors.py).

    GatewayError                          (authgate.gateway.errors)
    ├── UpstreamError                     -32603, data.source = "authgate"
    │   ├── ChildExited           502     the stdio server process ended while a request was pending
    │   ├── ChildStartFailed      502     the command could not be started, or did not initialize
    │   └── ChildLimit            503     too many stdio server processes (per identity or overall),
    │                                     or listen streams on one
    ├── InputStateInvalid         400     -32602  a `requestState` this bridge did not issue to this caller
    └── ListenFilterInvalid       400     -32602  `subscriptions/listen` params that are not a SubscriptionFilter

A call past upstream_call_timeout is the gateway's UpstreamCallTimeout (504), as for an HTTP
upstream; the child is sent `notifications/cancelled`.

-32603 with `data.source = "authgate"` follows the gateway's convention: a client can tell
these from errors the stdio server itself sent (JSON-RPC 2.0 §5.1).
"""

from __future__ import annotations

from typing import Any

from authgate.gateway.errors import GatewayError, UpstreamError, error_object

__all__ = ["ChildExited", "ChildLimit", "ChildStartFailed", "InputStateInvalid", "ListenFilterInvalid", "error_message"]


class ChildExited(UpstreamError):
    reason = "stdio_server_exited"


class ChildStartFailed(UpstreamError):
    reason = "stdio_server_failed_to_start"


class ChildLimit(UpstreamError):
    status = 503
    reason = "stdio_server_limit"


class InputStateInvalid(GatewayError):
    code = -32602  # JSON-RPC 2.0 §5.1 Invalid params: MCP 2026-07-28 MRTR, requestState is untrusted input


class ListenFilterInvalid(GatewayError):
    code = -32602  # JSON-RPC 2.0 §5.1 Invalid params: MCP 2026-07-28 SubscriptionsListenRequestParams


def error_message(exc: GatewayError) -> dict[str, Any]:
    """The JSON-RPC error response for `exc`, for writing into an already-open stream."""
    return error_object(exc.code, exc.message, exc.request_id, exc.data())
