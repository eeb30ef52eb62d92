"""Requests a stateless child put to the client, suspended as InputRequiredResults (MCP 2026-07-28 MRTR).

A child's request to the client (sampling, elicitation, roots) during an interactive request
becomes an `InputRequiredResult` whose `requestState` is a random handle bound to the caller;
the child's tool stays suspended until the client retries with `inputResponses`. A handle not
retried within `input_timeout` is dropped and the request cancelled.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from mcp_types import SERVER_INFO_META_KEY

from authgate.gateway.jsonrpc import Message
from authgate.gateway.stdio.child import Exchange, StdioChild
from authgate.gateway.stdio.errors import InputStateInvalid
from authgate.gateway.stdio.pool import Owner

__all__ = ["Suspended", "SuspendedRequests"]

logger = logging.getLogger("authgate.stdio")


@dataclass(eq=False)
class Suspended:
    """An interactive request waiting for the client's `inputResponses`."""

    owner: Owner
    child: StdioChild
    exchange: Exchange
    method: str
    name: Any
    inputs: dict[str, Any]  # inputRequests key -> the child's own request id
    expires: float


class SuspendedRequests:
    """The `requestState` handles handed out and not yet retried, each with its request."""

    def __init__(self, input_timeout: float) -> None:
        self.input_timeout = input_timeout
        self._handles: dict[str, Suspended] = {}

    def suspend(
        self, owner: Owner, child: StdioChild, ex: Exchange, msg: Message, request: dict[str, Any]
    ) -> dict[str, Any]:
        """The child asked the client something: answer with an InputRequiredResult (2026-07-28 MRTR)."""
        handle = secrets.token_urlsafe(32)
        key = f"authgate-{ex.child_id}-{secrets.token_hex(4)}"
        name = msg.params.get("name", msg.params.get("uri"))
        self._handles[handle] = Suspended(
            owner, child, ex, ex.method, name, {key: request["id"]}, time.monotonic() + self.input_timeout
        )
        input_request = {"method": request["method"], "params": request.get("params", {})}
        result = {
            "resultType": "input_required",
            "inputRequests": {key: input_request},
            "requestState": handle,
            "_meta": {SERVER_INFO_META_KEY: (child.init_result or {}).get("serverInfo")},
        }
        return {"jsonrpc": "2.0", "id": ex.client_id, "result": result}

    def claim(self, owner: Owner, msg: Message) -> tuple[str, Suspended]:
        """Check a `requestState` (untrusted input, 2026-07-28 MRTR) and take it: the handle and its state."""
        handle = msg.params.get("requestState")
        state = self._handles.get(handle) if isinstance(handle, str) else None
        if state is None or state.owner != owner:
            raise InputStateInvalid(
                "Invalid params: requestState is unknown, expired or not yours; "
                "send the request again without requestState",
                request_id=msg.id,
            )
        if msg.method != state.method or msg.params.get("name", msg.params.get("uri")) != state.name:
            raise InputStateInvalid("Invalid params: requestState belongs to a different request", request_id=msg.id)
        responses = msg.params.get("inputResponses")
        if not isinstance(responses, dict) or set(responses) != set(state.inputs):
            raise InputStateInvalid(
                f"Invalid params: inputResponses must answer exactly {sorted(state.inputs)}", request_id=msg.id
            )
        assert isinstance(handle, str)
        del self._handles[handle]
        return handle, state

    def restore(self, handle: str, state: Suspended) -> None:
        """A claimed handle not used up after all: the client may retry it."""
        self._handles[handle] = state

    async def expire(self, now: float) -> int:
        """Drop the handles the client did not come back for; cancel their requests."""
        stale = [h for h, s in self._handles.items() if s.expires <= now]
        for handle in stale:
            state = self._handles.pop(handle)
            logger.info("%s: no inputResponses within %.0f s; request cancelled", state.child.label, self.input_timeout)
            for child_request_id in state.inputs.values():
                if state.child.alive:
                    await state.child.answer(
                        child_request_id, error={"code": -32603, "message": "the client did not answer"}
                    )
            await state.child.cancel(state.exchange, "the client did not retry with inputResponses in time")
        return len(stale)

    def clear(self) -> None:
        self._handles.clear()
