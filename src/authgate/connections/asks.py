"""`ConnectionAsks`: what authgate does with a `tools/call` that needs (or may come to need) the
caller's connection to a provider — before it reaches the app, and when the app answers with
the signal (elicitation.py). Framework-free: plain JSON-RPC values in and out; the ASGI layer
in front of the protected app (server/elicitations.py) reads and writes the wire.

Before the call:

1. a retry carrying authgate's `requestState` (2026-07-28): the state is opened and checked
   (request_state.py: this person and client, this request, not expired, not used; else
   -32602); the person declined → a tool error; not connected yet → asked again; connected →
   the call goes on *without* authgate's state and responses (never forwarded), with the
   upstream's own state and responses carried inside it put back;
2. a tool configured to need a provider (`connection_tools`, gateway mode): the caller's token
   for it goes to the upstream in the provider's header (`connection_header`), or the client
   is asked for the connection;
3. anything else goes on untouched: an upstream's own `requestState` and `inputResponses`
   (no `authgate.rs1.` prefix) are never opened or changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from authgate.connections.elicitation import (
    Signal,
    declined_result,
    how_to_ask,
    input_key,
    input_required,
    invalid_params,
    link_error,
    tool_error_result,
    unavailable,
    url_elicitation_error,
)
from authgate.connections.request_state import (
    RequestStateRefused,
    RequestStates,
    arguments_digest,
    is_authgate_state,
)
from authgate.errors import ConnectionRequired
from authgate.outbound.errors import OutboundAuthError

__all__ = ["Before", "Broker", "Call", "ConnectionAsks", "connection_header"]

log = logging.getLogger("authgate.connections")

MAX_INPUT_RESPONSES_BYTES = 64 * 1024  # a retry's inputResponses beside authgate's state


class Broker(Protocol):  # connections/broker.py's ConnectionBroker, as the asks use it
    @property
    def providers(self) -> Mapping[str, Any]: ...

    async def token(self, user_id: str, provider: str) -> str | None: ...

    async def require(self, user_id: str, client_id: str, provider: str, scopes: tuple[str, ...] = ()) -> str: ...

    async def revoke(self, user_id: str, provider: str) -> bool: ...


def connection_header(provider: str) -> str:
    """The header the upstream reads the caller's token for `provider` in. Its X-Authgate-
    prefix means a client's copy never reaches the upstream (gateway/headers.py)."""
    return "X-Authgate-Connection-" + provider


@dataclass(slots=True)
class Call:
    """One request (a `tools/call`, mostly) as authgate sees it."""

    request_id: Any
    params: dict[str, Any]
    version: str
    capabilities: Any  # the client's, from `_meta` (2026-07-28) or its session's `initialize`
    subject: str
    client_id: str
    method: str = "tools/call"

    @property
    def name(self) -> str:
        """The tool or prompt name, or the resource URI."""
        name = self.params.get("uri" if self.method == "resources/read" else "name")
        return name if isinstance(name, str) else ""


@dataclass(slots=True)
class Before:
    """What to do with a call: `answer` it now, or forward it with `params` (None: unchanged)
    and these extra upstream `headers`."""

    answer: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


class ConnectionAsks:
    def __init__(self, broker: Broker, states: RequestStates, tools: Mapping[str, str] | None = None) -> None:
        self.broker = broker
        self.states = states
        self.tools = dict(tools or {})  # tool name -> provider (gateway mode)

    async def before(self, call: Call) -> Before:
        try:
            return await self._before(call)
        except OutboundAuthError as exc:  # the provider cannot renew the token now: retryable
            log.warning("connection for %s not available now: %s", call.name, exc)
            return Before(answer=unavailable(call.request_id))

    async def after(
        self, call: Call, signal: Signal, pending: ConnectionRequired | None = None
    ) -> dict[str, Any] | None:
        """The app answered with the signal: the answer for the client (None: unknown provider,
        the signal goes back as it came)."""
        try:
            return await self._after(call, signal, pending)
        except OutboundAuthError as exc:
            log.warning("connection to %s not available now: %s", signal.provider, exc)
            return unavailable(call.request_id)

    async def _before(self, call: Call) -> Before:
        params = call.params
        if is_authgate_state(params.get("requestState")):
            resumed = await self._resume(call)
            if resumed.answer is not None:
                return resumed
            params = resumed.params or params
        provider = self.tools.get(call.name) if call.method == "tools/call" else None
        if provider is None:
            return Before(params=params if params is not call.params else None)
        try:
            token = await self.broker.require(call.subject, call.client_id, provider)
        except ConnectionRequired as required:
            return Before(answer=self.ask(call, required, carry=params))
        return Before(
            params=params if params is not call.params else None, headers=[(connection_header(provider), token)]
        )

    async def _after(self, call: Call, signal: Signal, pending: ConnectionRequired | None) -> dict[str, Any] | None:
        if signal.provider not in self.broker.providers:
            log.warning("a tool asked for a connection to %r, which is not in connection_providers", signal.provider)
            return None
        if pending is not None and pending.provider == signal.provider:
            return self.ask(call, pending, carry=call.params)  # library mode: the link already made
        for _ in range(2):
            try:
                await self.broker.require(call.subject, call.client_id, signal.provider, signal.scopes)
            except ConnectionRequired as required:
                return self.ask(call, required, carry=call.params)
            # connected, with those scopes, and still refused there: the token is dead
            log.info(
                "the app refused %s's connection to %s; it is removed and asked again", call.subject, signal.provider
            )
            await self.broker.revoke(call.subject, signal.provider)
        return None

    def ask(self, call: Call, required: ConnectionRequired, *, carry: Mapping[str, Any]) -> dict[str, Any]:
        """The answer asking for `required`'s connection, in the client's revision."""
        how = how_to_ask(call.version, call.capabilities, call.method)
        if how == "url_error":
            return url_elicitation_error(call.request_id, required)
        if how == "tool_error":
            return tool_error_result(call.request_id, required, call.version)
        if how == "link_error":
            return link_error(call.request_id, required)
        upstream_state = carry.get("requestState")
        upstream_responses = carry.get("inputResponses")
        claims = self.states.claims(
            subject=call.subject,
            client_id=call.client_id,
            method=call.method,
            name=call.name,
            arguments=arguments_digest(call.params.get("arguments")),
            provider=required.provider,
            elicitation_id=required.elicitation_id,
            upstream_state=upstream_state if isinstance(upstream_state, str) else None,
            upstream_responses=upstream_responses if isinstance(upstream_responses, dict) else None,
        )
        return input_required(call.request_id, required, self.states.seal(claims))

    async def _resume(self, call: Call) -> Before:
        """A retry with authgate's requestState (2026-07-28)."""
        params, rid = call.params, call.request_id
        responses = params.get("inputResponses")
        if responses is not None and not isinstance(responses, dict):
            return Before(answer=invalid_params(rid, "inputResponses must be an object"))
        if len(json.dumps(responses or {}).encode()) > MAX_INPUT_RESPONSES_BYTES:
            return Before(
                answer=invalid_params(rid, f"inputResponses is larger than {MAX_INPUT_RESPONSES_BYTES} bytes")
            )
        try:
            claims = self.states.open(
                params["requestState"],
                subject=call.subject,
                client_id=call.client_id,
                method=call.method,
                name=call.name,
                arguments=arguments_digest(params.get("arguments")),
            )
        except RequestStateRefused as exc:
            return Before(answer=invalid_params(rid, f"{exc}; send the request again without requestState"))
        ours = (responses or {}).get(input_key(claims.provider))
        if isinstance(ours, dict) and ours.get("action") in ("decline", "cancel"):
            self.states.spend(claims)
            return Before(answer=declined_result(rid, claims.provider, call.version))
        forwarded = {k: v for k, v in params.items() if k not in ("requestState", "inputResponses")}
        if claims.upstream_state is not None:
            forwarded["requestState"] = claims.upstream_state
        if claims.upstream_responses is not None:
            forwarded["inputResponses"] = claims.upstream_responses
        if await self.broker.token(call.subject, claims.provider) is None:
            try:  # not connected yet (MCP 2026-07-28 mrtr §Error Handling: ask again)
                await self.broker.require(call.subject, call.client_id, claims.provider)
            except ConnectionRequired as required:
                return Before(answer=self.ask(call, required, carry=forwarded))
        self.states.spend(claims)
        return Before(params=forwarded)
