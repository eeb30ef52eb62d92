"""`PolicyEnforcer`: pure ASGI middleware between `BearerGuard` and the protected app (an
in-process MCP app or the gateway's proxy), deciding each POST from its JSON-RPC body.

    POST ─> read the body ─> mirror headers agree? ─> every message allowed? ─┬─> the app, body re-fed
                                   │ no: 400 -32020          │ no: 403 / 401 / │   unchanged; list results
                                   │                         │ tool error      │   rewritten on the way out
                                   └──── audit (refusals committed before the answer; allowed ones queued)

GET (a legacy SSE stream), DELETE (end of session) and OPTIONS carry no operation and pass.
`AnonymousGate` is the hook `BearerGuard` asks about requests without a token.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.audit.events import audit_event, is_audited
from authgate.audit.log import AuditLog
from authgate.gateway.body import PARSED_BODY_KEY, ClientGone, read_body
from authgate.gateway.errors import (
    BodyTooLarge,
    GatewayError,
    HeaderMismatch,
    InvalidJsonRpcRequest,
    ParseError,
    send_error,
)
from authgate.guard.identity import SCOPE_KEY, Identity
from authgate.json_depth import TooDeep
from authgate.oauth.scopes import OFFLINE_ACCESS
from authgate.observe import note
from authgate.policy import answers
from authgate.policy.clients import ClientRecognizer
from authgate.policy.lists import LIST_METHODS, ListRewriter, missing_tools
from authgate.policy.model import Decision, Operation, Policy
from authgate.policy.operations import (
    AmbiguousBody,
    Body,
    header,
    header_mismatch,
    is_stateless_era,
    parse_body,
)
from authgate.policy.responses import ResponseTap, Rewrite

log = logging.getLogger("authgate.policy")

MAX_BODY_BYTES = 8 * 1024 * 1024
BATCH_REFUSAL = "refused with the batch: another operation in it was refused"

Judged = tuple[dict[str, Any], Operation, Decision]


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then the real channel (so the
    app still hears a disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@dataclass(frozen=True, slots=True)
class _Call:
    scope: Scope
    identity: Identity | None
    at: float  # wall clock, for the audit trail
    started: float  # monotonic, for latency


class PolicyEnforcer:
    def __init__(
        self,
        app: ASGIApp,
        policy: Policy,
        *,
        resource_metadata: str,
        clients: ClientRecognizer,
        audit: AuditLog | None,
        audit_arguments: bool = False,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.policy = policy
        self.resource_metadata = resource_metadata
        self.clients = clients
        self.audit = audit
        self.audit_arguments = audit_arguments
        self.max_body = max_body
        self._warned_missing = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        identity = scope.get(SCOPE_KEY)
        call = _Call(scope, identity if isinstance(identity, Identity) else None, time.time(), time.monotonic())
        try:
            raw = await read_body(receive, self.max_body)
        except ClientGone:
            return
        except BodyTooLarge as exc:
            await send_error(send, exc)
            return
        try:
            body = parse_body(raw)
        except AmbiguousBody as exc:
            await send_error(send, InvalidJsonRpcRequest(f"Invalid Request: {exc}"))
            return
        except TooDeep as exc:  # JSON-RPC 2.0 §5.1: the body cannot be parsed (here)
            await send_error(send, ParseError(f"Parse error: {exc}"))
            return
        if body is not None and (named := body.requests):
            note(
                scope,
                mcp_method=",".join(op.method for _, op in named),
                mcp_target=",".join(op.target for _, op in named if op.target) or None,
            )
        if body is None:  # not JSON-RPC: nothing to authorize, the app answers it
            await self.app(scope, replaying(raw, receive), send)
            return
        scope[PARSED_BODY_KEY] = (raw, body.decoded)  # the request's own scope: the proxy reuses it
        if not await self._refused(call, body, send):
            await self._forward(call, body, raw, receive, send)

    # -- refusing --------------------------------------------------------------------------
    async def _refused(self, call: _Call, body: Body, send: Send) -> bool:
        """Answer and return True when any message of the body is refused."""
        requests = body.requests
        first_id = requests[0][0].get("id") if requests else None
        unusable: GatewayError | None = None
        if (mismatch := header_mismatch(call.scope, body)) is not None:
            unusable = HeaderMismatch(f"Header mismatch: {mismatch}", request_id=first_id)
        elif any(op.kind != "method" and op.target is None for _m, op in requests):
            unusable = InvalidJsonRpcRequest(
                "Invalid params: the request names no tool, resource or prompt", request_id=first_id
            )
        if unusable is not None:
            await self._record_refusals(call, [(m, op, Decision(False, (), unusable.message)) for m, op in requests])
            await send_error(send, unusable)
            return True
        held = self.policy.effective(call.identity)
        judged = [(m, op, self.policy.decide(op, call.identity, held)) for m, op in requests]
        refused = [j for j in judged if not j[2].allowed]
        if not refused:
            return False
        await self._record_refusals(call, judged)
        await self._answer(call, body, refused, send)
        return True

    async def _answer(self, call: _Call, body: Body, refused: Sequence[Judged], send: Send) -> None:
        identity = call.identity
        needed = [s for _m, _op, d in refused for s in d.needed]
        # MCP 2025-11-25 authorization, scope challenge: what is needed plus what is already
        # granted, so clients that request exactly the challenged scopes keep what they had
        # (offline_access is no resource scope: clients add it themselves). Without a token:
        # what is needed plus the baseline every sign-in gets.
        held = identity.scopes if identity is not None else self.policy.baseline
        scopes = list(dict.fromkeys(s for s in (*needed, *held) if s != OFFLINE_ACCESS))
        description = "; ".join(
            f"{op.method} {op.target}: {d.reason}" if op.target else f"{op.method}: {d.reason}" for _m, op, d in refused
        )
        message, op, decision = refused[0]
        if (
            not body.is_batch
            and op.method == "tools/call"
            and "id" in message
            and self.clients.wants_tool_error(call.scope, identity, message)
        ):
            value = answers.challenge(self.resource_metadata, scopes, description)
            await answers.send_tool_error(
                send,
                message.get("id"),
                value,
                answers.refusal_text(list(decision.needed), identity is not None),
                stateless=is_stateless_era(call.scope, message),
            )
            return
        error = "insufficient_scope" if identity is not None else None  # RFC 6750 §3.1: no token, no error
        value = answers.challenge(self.resource_metadata, scopes, description, error)
        await answers.send_challenge(send, value, description, signed_in=identity is not None)

    async def _record_refusals(self, call: _Call, judged: Sequence[Judged]) -> None:
        if self.audit is None:
            return
        for message, op, decision in judged:
            if is_audited(op):
                await self.audit.record_now(
                    audit_event(
                        at=call.at,
                        identity=call.identity,
                        message=message,
                        op=op,
                        decision="refused",
                        reason=decision.reason if not decision.allowed else BATCH_REFUSAL,
                        with_arguments=self.audit_arguments,
                    )
                )

    # -- forwarding ------------------------------------------------------------------------
    async def _forward(self, call: _Call, body: Body, raw: bytes, receive: Receive, send: Send) -> None:
        requests = body.requests
        listed = [(m, op) for m, op in requests if op.method in LIST_METHODS and isinstance(m.get("id"), str | int)]
        rewriter: ListRewriter | None = None
        rewrites: dict[Any, Rewrite] = {}
        if listed:  # only list results are rewritten: most calls need no rewriter at all
            stateless = any(is_stateless_era(call.scope, m) for m, _op in requests)
            rewriter = ListRewriter(self.policy, call.identity, private_cache_hint=stateless)
            rewrites = {m["id"]: functools.partial(rewriter.rewrite, op.method) for m, op in listed}
        tap = ResponseTap(send, rewrites)
        try:
            await self.app(call.scope, replaying(raw, receive), tap)
        finally:
            self._learn(body, rewriter, tap)
            self._record_allowed(call, body, tap)

    def _learn(self, body: Body, rewriter: ListRewriter | None, tap: ResponseTap) -> None:
        for message, op in body.requests:
            if op.method == "initialize":
                session = next((v.decode("latin-1") for k, v in tap.headers if k.lower() == b"mcp-session-id"), None)
                self.clients.remember(session, message)
        if rewriter is not None and rewriter.listed_tools is not None and not self._warned_missing:
            self._warned_missing = True
            if missing := missing_tools(self.policy, rewriter.listed_tools):
                log.warning("the policy names tools the MCP server does not list: %s", ", ".join(missing))

    def _record_allowed(self, call: _Call, body: Body, tap: ResponseTap) -> None:
        if self.audit is None:
            return
        latency = ((tap.finished_at or time.monotonic()) - call.started) * 1000
        for message, op in body.requests:
            if is_audited(op):
                self.audit.record(
                    audit_event(
                        at=call.at,
                        identity=call.identity,
                        message=message,
                        op=op,
                        decision="allowed",
                        status=tap.status,
                        latency_ms=latency,
                        with_arguments=self.audit_arguments,
                    )
                )


class AnonymousGate:
    """`BearerGuard`'s hook for a request without a token: a replaying `receive` when the
    policy layer should see it anyway, else None (and the guard answers 401). Let through:
    a POST whose every message is anonymous, and — so that ChatGPT gets its tool-level
    sign-in answer — a lone `tools/call` from a `tool_error_clients` client, which the
    enforcer then refuses. Everything is decided again by the enforcer."""

    def __init__(self, policy: Policy, clients: ClientRecognizer) -> None:
        self.policy = policy
        self.clients = clients

    async def __call__(self, scope: Scope, receive: Receive) -> Receive | None:
        if scope.get("method") != "POST" or header(scope, b"authorization") is not None:
            return None
        try:
            raw = await read_body(receive, MAX_BODY_BYTES)
            body = parse_body(raw)
        except (ClientGone, BodyTooLarge, AmbiguousBody, TooDeep):
            return None
        requests = body.requests if body is not None else []
        if body is None or not requests:
            return None
        if all(self.policy.is_anonymous(op) for _m, op in requests):
            return replaying(raw, receive)
        message, op = requests[0]
        if (
            not body.is_batch
            and len(requests) == 1
            and op.method == "tools/call"
            and self.clients.wants_tool_error(scope, None, message)
        ):
            return replaying(raw, receive)
        return None
