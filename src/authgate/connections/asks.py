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
2. gateway mode, a tool that needs a provider — configured (`connection_tools`), signalled by
   the upstream before (remembered in this process), or named by the resumed state: the
   caller's token goes to the upstream in the provider's header (`connection_header`), or the
   client is asked for the connection;
3. anything else goes on untouched: an upstream's own `requestState` and `inputResponses`
   (no `authgate.rs1.` prefix) are never opened or changed.

After it, the signal: not connected → asked (with the link `connection_token` already made,
in library mode); connected but the call went without the token (gateway) → RERUN, the layer
sends it again with the token (the signal means the upstream did nothing); connected and the
token went along → the provider refused it: the connection is removed and asked again.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
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
    no_person_answer,
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
from authgate.connections.upstream import UPSTREAM_PROVIDER
from authgate.errors import ConnectionRequired
from authgate.outbound.errors import OutboundAuthError

__all__ = ["RERUN", "Before", "Broker", "Call", "ConnectionAsks", "connection_header"]

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
    person: bool = True  # False: a machine client (no person signed in), who has no connections

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
    provider: str | None = None  # a resumed retry's: its token goes with the call (gateway)


RERUN: dict[str, Any] = {}  # after(): run the call again, now with the token (nothing was sent yet)
_LEARNED_MAX = 1000


class ConnectionAsks:
    """`headers`: the app is the HTTP gateway, which gets provider tokens in headers (in library
    mode the tool takes its token itself, through `authgate.connection_token`)."""

    def __init__(
        self, broker: Broker, states: RequestStates, tools: Mapping[str, str] | None = None, *, headers: bool = False
    ) -> None:
        self.broker = broker
        self.states = states
        self.tools = dict(tools or {})  # tool name -> provider (connection_tools, gateway mode)
        self.headers = headers
        self.learned: OrderedDict[str, str] = OrderedDict()  # tools the upstream signalled, in this process

    async def before(self, call: Call) -> Before:
        try:
            return await self._before(call)
        except OutboundAuthError as exc:  # the provider cannot renew the token now: retryable
            log.warning("connection for %s not available now: %s", call.name, exc)
            return Before(answer=unavailable(call.request_id))

    async def after(
        self, call: Call, signal: Signal, pending: ConnectionRequired | None = None, sent: bool = True
    ) -> dict[str, Any] | None:
        """The app answered with the signal: the answer for the client; RERUN when the caller is
        connected but this call went without the token (gateway); None: unknown provider, the
        signal goes back as it came. `sent`: the call carried the provider's token."""
        try:
            return await self._after(call, signal, pending, sent)
        except OutboundAuthError as exc:
            log.warning("connection to %s not available now: %s", signal.provider, exc)
            return unavailable(call.request_id)

    def _needed(self, call: Call, resumed: str | None) -> list[str]:
        """The providers whose tokens go with this call to the upstream (gateway mode)."""
        if not self.headers or call.method != "tools/call":
            return []
        found = (self.tools.get(call.name), self.learned.get(call.name), resumed)
        # the protected upstream's own token goes in its Authorization (gateway/http/upstream_oauth.py),
        # never a second time in a connection header
        wanted = (p for p in found if p is not None and p != UPSTREAM_PROVIDER)
        return list(dict.fromkeys(p for p in wanted if p in self.broker.providers))

    async def _before(self, call: Call) -> Before:
        params, resumed = call.params, None
        if is_authgate_state(params.get("requestState")):
            before = await self._resume(call)
            if before.answer is not None:
                return before
            params, resumed = before.params or params, before.provider
        changed = params if params is not call.params else None
        headers = []
        for provider in self._needed(call, resumed):
            if not call.person:
                return Before(answer=no_person_answer(call.request_id, provider, call.version, call.method))
            try:
                token = await self.broker.require(call.subject, call.client_id, provider)
            except ConnectionRequired as required:
                return Before(answer=self.ask(call, required, carry=params))
            headers.append((connection_header(provider), token))
        return Before(params=changed, headers=headers)

    async def _after(
        self, call: Call, signal: Signal, pending: ConnectionRequired | None, sent: bool
    ) -> dict[str, Any] | None:
        if signal.provider not in self.broker.providers:
            log.warning("a tool asked for a connection to %r, which is not in connection_providers", signal.provider)
            return None
        if not call.person:
            return no_person_answer(call.request_id, signal.provider, call.version, call.method)
        if pending is not None and pending.provider == signal.provider:
            # the link already made: by connection_token (library mode), or by the gateway for
            # the protected upstream's own token (gateway/http/upstream_oauth.py)
            return self.ask(call, pending, carry=call.params)
        if self.headers and call.method == "tools/call" and call.name:
            self.learned[call.name] = signal.provider  # the upstream said so: its later calls carry the token
            while len(self.learned) > _LEARNED_MAX:
                self.learned.popitem(last=False)
        for _ in range(2):
            try:
                await self.broker.require(call.subject, call.client_id, signal.provider, signal.scopes)
            except ConnectionRequired as required:
                return self.ask(call, required, carry=call.params)
            if not sent:
                return RERUN  # connected: the call goes again with the token
            # connected, with those scopes, and still refused there: the token is dead
            log.info("the app refused %s's connection to %s: removed, asked again", call.subject, signal.provider)
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
        return Before(params=forwarded, provider=claims.provider)
