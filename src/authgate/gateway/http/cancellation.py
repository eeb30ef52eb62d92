"""Telling the upstream that a request's answer is no longer wanted.

When a client goes away before its answer, or a timeout ends the call, the gateway closes
its connection to the upstream. For a 2026-07-28 request that is the cancellation (closing
the response stream; its servers drop notification POSTs). A 2025-era server must not take
a closed connection as cancellation (2025-03-26 … 2025-11-25 transports: the client sends
`notifications/cancelled`), so for those requests the gateway also POSTs one per request id
still unanswered, with the request's `Mcp-Session-Id`, `MCP-Protocol-Version` and
credential (basic/utilities/cancellation).

`watch_disconnect` notices the client going away (`http.disconnect`) and cancels the task of
its request (`Flight`), which then closes the upstream connection.

Best effort and off the client's path: a background task, bounded by `timeout`, whose
failure is logged at INFO; at most `MAX_IDS` ids per request. When the gateway closes (a
stop, after its drain cut the requests still running) the tasks under way get up to
`CLOSE_WAIT` seconds to finish, then are cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from starlette.types import Message, Receive
from yarl import URL

from authgate.gateway.errors import JsonRpcId, UpstreamError
from authgate.gateway.http.upstream import Upstream
from authgate.gateway.jsonrpc import cancelled_notification

__all__ = ["Flight", "UpstreamCancellation", "watch_disconnect"]

log = logging.getLogger("authgate.gateway")

MAX_IDS = 16
CLOSE_WAIT = 2.0
_NOT_COPIED = frozenset({"mcp-method", "mcp-name", "last-event-id", "accept", "content-type"})


@dataclass(slots=True)
class Flight:
    """One request in flight, watched for the client going away."""

    task: asyncio.Task[Any]
    done: bool = False
    client_gone: bool = False


async def watch_disconnect(receive: Receive, flight: Flight) -> None:
    """Cancel the request's task when its client disconnects."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            if not flight.done:
                flight.client_gone = True
                flight.task.cancel()
            return


class UpstreamCancellation:
    def __init__(self, upstream: Upstream, timeout: float = 5.0) -> None:
        self.upstream = upstream
        self.timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, url: URL, headers: list[tuple[str, str]], request_ids: Iterable[JsonRpcId], reason: str) -> None:
        """Schedule `notifications/cancelled` for each id; returns at once."""
        ids: list[JsonRpcId] = [i for i in request_ids if i is not None]
        del ids[MAX_IDS:]
        if not ids:
            return
        kept = [(k, v) for k, v in headers if k.lower() not in _NOT_COPIED and not k.lower().startswith("mcp-param-")]
        kept += [("Content-Type", "application/json"), ("Accept", "application/json, text/event-stream")]
        task = asyncio.get_running_loop().create_task(self._post(url, kept, ids, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: URL, headers: list[tuple[str, str]], ids: list[JsonRpcId], reason: str) -> None:
        limit = aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.timeout)
        for request_id in ids:
            body = json.dumps(cancelled_notification(request_id, reason)).encode()
            try:
                response = await self.upstream.send("POST", url, headers, body, limit)
            except UpstreamError as exc:
                log.info("could not cancel request %s upstream: %s", json.dumps(request_id), exc.message)
                return
            response.close()  # its answer (202) is of no interest
            log.debug("cancelled request %s upstream (%s)", json.dumps(request_id), reason)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=min(CLOSE_WAIT, self.timeout))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
