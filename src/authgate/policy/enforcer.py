"""`PolicyEnforcer`: per-operation authorization of a POST, decided from its JSON-RPC body.
The gate in front of the MCP endpoint (`server/gate.py`) calls it between the bearer check and
the protected app (an in-process MCP app or the gateway's proxy):

    POST ─> read the body (once) ─> mirror headers agree? ─> every message allowed? ─┬─> the app, body re-fed
                   │                      │ no: 400 -32020          │ no: 403 / 401 / │   unchanged; list results
                   │ too large, not JSON  │                         │ tool error      │   rewritten on the way out
                   └ 413 / 400 / -32700   └──── audit (refusals committed before the answer; allowed ones queued)

GET (a legacy SSE stream), DELETE (end of session) and OPTIONS carry no operation and pass.
For a POST without a token, `lets_in_anonymously` says whether the policy wants to see it
anyway (else the gate answers 401); everything is then decided as for any other caller.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from authgate.audit.events import audit_event, is_audited
from authgate.audit.log import AuditLog
from authgate.gateway.body import ClientGone, read_body
from authgate.gateway.errors import (
    BodyTooLarge,
    GatewayError,
    HeaderMismatch,
    InvalidJsonRpcRequest,
    ParseError,
    send_error,
)
from authgate.guard.identity import Identity
from authgate.json_depth import TooDeep
from authgate.oauth.scopes import OFFLINE_ACCESS
from authgate.policy import answers
from authgate.policy.clients import ClientRecognizer
from authgate.policy.lists import LIST_METHODS, ListRewriter, missing_tools
from authgate.policy.model import Decision, Operation, Policy
from authgate.policy.operations import AmbiguousBody, Body, header_mismatch, is_stateless_era, parse_body
from authgate.policy.responses import ResponseTap, Rewrite

log = logging.getLogger("authgate.policy")

MAX_BODY_BYTES = 8 * 1024 * 1024
BATCH_REFUSAL = "refused with the batch: another operation in it was refused"

Judged = tuple[dict[str, Any], Operation, Decision]
Listing = tuple[ResponseTap, ListRewriter]  # the send rewriting list results, and its rewriter


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a body is refused: every message judged, the refused ones, or an error that makes
    the whole body unusable (mirror headers that disagree, a call naming no target)."""

    judged: list[Judged]
    refused: list[Judged]
    unusable: GatewayError | None


class PolicyEnforcer:
    def __init__(
        self,
        policy: Policy,
        *,
        resource_metadata: str,
        clients: ClientRecognizer,
        audit: AuditLog | None,
        audit_arguments: bool = False,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.policy = policy
        self.resource_metadata = resource_metadata
        self.clients = clients
        self.audit = audit
        self.audit_arguments = audit_arguments
        self.max_body = max_body
        self.anonymous = policy.has_anonymous  # whether any POST without a token is worth reading
        self._warned_missing = False

    # -- reading ---------------------------------------------------------------------------
    async def read(self, receive: Receive, send: Send) -> bytes | None:
        """The body, read (bounded); None once answered 413, or when the client left."""
        try:
            return await read_body(receive, self.max_body)
        except ClientGone:
            return None
        except BodyTooLarge as exc:
            await send_error(send, exc)
            return None

    def parse(self, raw: bytes) -> Body | None | GatewayError:
        """What the body is as JSON-RPC (None: not JSON-RPC at all, the app answers it), or the
        error to answer: 413 past `max_body` (a body read under the anonymous bound), 400
        -32600 for a member given twice, -32700 for nesting too deep to judge."""
        if len(raw) > self.max_body:
            return BodyTooLarge(f"the request body is larger than {self.max_body} bytes")
        try:
            return parse_body(raw)
        except AmbiguousBody as exc:
            return InvalidJsonRpcRequest(f"Invalid Request: {exc}")
        except TooDeep as exc:  # JSON-RPC 2.0 §5.1: the body cannot be parsed (here)
            return ParseError(f"Parse error: {exc}")

    @staticmethod
    async def read_anonymous(receive: Receive) -> bytes | None:
        """The body of a POST without a token, for `lets_in_anonymously`; None when unusable."""
        try:
            return await read_body(receive, MAX_BODY_BYTES)
        except (ClientGone, BodyTooLarge):
            return None

    def lets_in_anonymously(self, scope: Scope, raw: bytes) -> bool:
        """A POST without a token that the policy wants to see: every message anonymous, or —
        so that ChatGPT gets its tool-level sign-in answer — a lone `tools/call` from a
        `tool_error_clients` client, which is then refused like any other."""
        try:
            body = parse_body(raw)
        except (AmbiguousBody, TooDeep):
            return False
        requests = body.requests if body is not None else ()
        if body is None or not requests:
            return False
        if all(self.policy.is_anonymous(op) for _m, op in requests):
            return True
        message, op = requests[0]
        return (
            not body.is_batch
            and len(requests) == 1
            and op.method == "tools/call"
            and self.clients.wants_tool_error(scope, None, message)
        )

    # -- refusing --------------------------------------------------------------------------
    def judge(
        self,
        scope: Scope,
        identity: Identity | None,
        body: Body,
        mirrored: tuple[str | None, str | None] | None = None,
    ) -> Refusal | None:
        """None when every message of the body is allowed; else what `refuse` answers.
        `mirrored`: `Mcp-Method` and `Mcp-Name` as the caller read them (else from `scope`)."""
        requests = body.requests
        mismatch = header_mismatch(scope, body, mirrored)
        if mismatch is not None:
            first_id = requests[0][0].get("id") if requests else None
            unusable: GatewayError = HeaderMismatch(f"Header mismatch: {mismatch}", request_id=first_id)
            return Refusal([(m, op, Decision(False, (), unusable.message)) for m, op in requests], [], unusable)
        policy = self.policy
        held = policy.effective(identity)
        if len(requests) == 1:  # most bodies: one message, no lists built
            message, op = requests[0]
            decision = policy.decide(op, identity, held)
            return None if decision.allowed else Refusal([(message, op, decision)], [(message, op, decision)], None)
        judged = [(m, op, policy.decide(op, identity, held)) for m, op in requests]
        refused = [j for j in judged if not j[2].allowed]
        return Refusal(judged, refused, None) if refused else None

    async def refuse(
        self, scope: Scope, identity: Identity | None, at: float, body: Body, refusal: Refusal, send: Send
    ) -> None:
        """Record the refusal (committed first) and answer it."""
        await self._record_refusals(identity, at, refusal.judged)
        if refusal.unusable is not None:
            await send_error(send, refusal.unusable)
        else:
            await self._answer(scope, identity, body, refusal.refused, send)

    async def _answer(
        self, scope: Scope, identity: Identity | None, body: Body, refused: Sequence[Judged], send: Send
    ) -> None:
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
            and self.clients.wants_tool_error(scope, identity, message)
        ):
            value = answers.challenge(self.resource_metadata, scopes, description)
            await answers.send_tool_error(
                send,
                message.get("id"),
                value,
                answers.refusal_text(list(decision.needed), identity is not None),
                stateless=is_stateless_era(scope, message),
            )
            return
        error = "insufficient_scope" if identity is not None else None  # RFC 6750 §3.1: no token, no error
        value = answers.challenge(self.resource_metadata, scopes, description, error)
        await answers.send_challenge(send, value, description, signed_in=identity is not None)

    async def _record_refusals(self, identity: Identity | None, at: float, judged: Sequence[Judged]) -> None:
        if self.audit is None:
            return
        for message, op, decision in judged:
            if is_audited(op):
                await self.audit.record_now(
                    audit_event(
                        at=at,
                        identity=identity,
                        message=message,
                        op=op,
                        decision="refused",
                        reason=decision.reason if not decision.allowed else BATCH_REFUSAL,
                        with_arguments=self.audit_arguments,
                    )
                )

    # -- forwarding ------------------------------------------------------------------------
    def tap(self, scope: Scope, identity: Identity | None, body: Body, send: Send) -> Listing | None:
        """A `send` that rewrites the results of the list requests in the body, with its
        rewriter; None (send as is) when there are none, as for most calls."""
        requests = body.requests
        for _m, op in requests:  # most calls list nothing: no list built
            if op.method in LIST_METHODS:
                break
        else:
            return None
        listed = [(m, op) for m, op in requests if op.method in LIST_METHODS and isinstance(m.get("id"), str | int)]
        if not listed:
            return None
        stateless = any(is_stateless_era(scope, m) for m, _op in requests)
        rewriter = ListRewriter(self.policy, identity, private_cache_hint=stateless)
        rewrites: dict[Any, Rewrite] = {m["id"]: functools.partial(rewriter.rewrite, op.method) for m, op in listed}
        return ResponseTap(send, rewrites), rewriter

    def answered(
        self,
        identity: Identity | None,
        body: Body,
        *,
        at: float,
        latency_ms: float,
        status: int | None,
        session: str | None,
        listing: Listing | None,
    ) -> None:
        """After the app's answer: what `initialize` said about the client, the warning about
        tools the policy names but the server lacks (once), and the audit events (queued)."""
        if listing is not None and listing[1].listed_tools is not None and not self._warned_missing:
            self._warned_missing = True
            if missing := missing_tools(self.policy, listing[1].listed_tools):
                log.warning("the policy names tools the MCP server does not list: %s", ", ".join(missing))
        audit = self.audit
        for message, op in body.requests:
            if op.method == "initialize":
                self.clients.remember(session, message)
            if audit is not None and is_audited(op):
                audit.record(
                    audit_event(
                        at=at,
                        identity=identity,
                        message=message,
                        op=op,
                        decision="allowed",
                        status=status,
                        latency_ms=latency_ms,
                        with_arguments=self.audit_arguments,
                    )
                )
