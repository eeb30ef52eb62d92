"""Waiting for what a child sends for one exchange, while watching the client's connection, and
the bridge's own requests to a child (`ask`)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from authgate.gateway.errors import GatewayError, InvalidJsonRpcRequest, UpstreamCallTimeout
from authgate.gateway.jsonrpc import Message, parse_body
from authgate.gateway.stdio.child import Cancelled, Exchange, Outgoing, StdioChild
from authgate.gateway.stdio.errors import ChildExited
from authgate.gateway.stdio.http import DisconnectWatch
from authgate.gateway.stdio.resume import CloseStream

__all__ = [
    "INTERACTIVE",
    "Wake",
    "ask",
    "give_up",
    "is_request",
    "is_response",
    "next_from",
    "next_item",
    "single_message",
]

T = TypeVar("T")

# The requests during which a server may ask the client for input (MCP 2026-07-28 MRTR: an
# InputRequiredResult answers only tools/call, prompts/get and resources/read).
INTERACTIVE = frozenset({"tools/call", "prompts/get", "resources/read"})


class Wake(enum.Enum):
    GONE = "the client closed the connection"
    IDLE = "nothing to send for a while"
    TIMEOUT = "the watch's deadline passed (upstream_call_timeout, upstream_stream_timeout)"


def is_response(message: dict[str, Any]) -> bool:
    return "id" in message and "method" not in message


def is_request(message: dict[str, Any]) -> bool:
    return "id" in message and isinstance(message.get("method"), str)


def single_message(body: bytes) -> Message:
    """The one JSON-RPC message of a POST body. Batches (2025-03-26 only; removed in 2025-06-18)
    are refused: the bridge answers each request on its own stream."""
    parsed = parse_body(body)
    if parsed.single is None:
        raise InvalidJsonRpcRequest(
            "Invalid Request: the stdio bridge takes one JSON-RPC message per POST, not a batch"
        )
    return parsed.single


async def next_item(ex: Exchange, watch: DisconnectWatch, timeout: float) -> Outgoing | Wake:
    """The exchange's next message, or why there is none: the client left, or `timeout` passed."""
    return await next_from(ex.queue, watch, timeout)


async def next_from(queue: asyncio.Queue[T], watch: DisconnectWatch, timeout: float) -> T | Wake:
    """The queue's next item, or Wake.GONE / Wake.IDLE / Wake.TIMEOUT (the watch's deadline);
    never loses an item to a race."""
    if not queue.empty():
        return queue.get_nowait()
    at_deadline = False  # the wait below ends at the watch's deadline, not at an idle tick
    if watch.deadline is not None:
        left = watch.deadline - time.monotonic()
        if left <= 0:
            return Wake.TIMEOUT
        at_deadline = left <= timeout
        timeout = min(timeout, left)
    getter = asyncio.ensure_future(queue.get())
    gone = asyncio.ensure_future(watch.gone.wait())
    try:
        await asyncio.wait({getter, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not getter.done():
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
    if getter.done() and not getter.cancelled():
        return getter.result()
    if watch.gone.is_set():
        return Wake.GONE
    # The loop may wake a timer up to its clock resolution early: a wait that ran to the deadline
    # is the deadline (an idle tick here would open an SSE stream just before a 504 JSON answer).
    return Wake.TIMEOUT if at_deadline else Wake.IDLE


async def give_up(child: StdioChild, ex: Exchange, seconds: float) -> UpstreamCallTimeout:
    """The request ran past upstream_call_timeout: cancel it at the child (MCP cancellation),
    and the error its client gets, naming the program only (no arguments, no environment)."""
    await child.cancel(ex, f"authgate: no answer within upstream_call_timeout ({seconds:g} s)")
    return UpstreamCallTimeout(
        f"the MCP server process ({child.program}) did not answer {ex.method} within {seconds:g} s "
        "(upstream_call_timeout); the request was cancelled",
        request_id=ex.client_id,
    )


async def ask(
    child: StdioChild, request: Mapping[str, Any], timeout: float, stray: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """The child's response to a request of the bridge's own (tools/list, resources/subscribe, …).

    stdio does not tie the child's other messages to a request, so some may be routed to this
    exchange: they go to `stray`, as if no request were pending. TimeoutError after `timeout` s.
    A child that serves 2026-07-28 gets the bridge's envelope in `params._meta`.
    """
    if child.modern_meta is not None:
        params = request.get("params")
        params = params if isinstance(params, dict) else {}
        request = {**request, "params": {**params, "_meta": {**child.modern_meta, **params.get("_meta", {})}}}
    ex = await child.request(request)
    try:
        async with asyncio.timeout(timeout):
            while True:
                item = await ex.queue.get()
                if isinstance(item, GatewayError):
                    raise item
                if isinstance(item, Cancelled):
                    raise ChildExited(f"{request.get('method')} to the MCP server was cancelled")
                if isinstance(item, CloseStream):  # only a resumable stream's (resume.py)
                    continue
                if is_response(item):
                    return item
                stray(item)
    finally:
        child.finish(ex)  # a late answer is then dropped as unknown
