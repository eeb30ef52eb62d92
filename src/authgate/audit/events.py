"""Building an `AuditEvent` from one JSON-RPC message and what the policy made of it.

Every message naming a method is an operation, except notifications (`notifications/*`:
nothing is asked of the server). The token is never recorded — only who it names; arguments
(of `tools/call`, `prompts/get`) only with `audit_arguments`, cut at MAX_ARGUMENT_CHARS.
"""

from __future__ import annotations

import json
from typing import Any

from authgate.guard.identity import Identity
from authgate.policy.model import Operation
from authgate.store.models import AuditDecision, AuditEvent

MAX_ARGUMENT_CHARS = 8192


def is_audited(op: Operation) -> bool:
    return not op.method.startswith("notifications/")


def _arguments(message: dict[str, Any]) -> str | None:
    params = message.get("params")
    arguments = params.get("arguments") if isinstance(params, dict) else None
    if arguments is None:
        return None
    return json.dumps(arguments, separators=(",", ":"), default=str)[:MAX_ARGUMENT_CHARS]


def audit_event(
    *,
    at: float,
    identity: Identity | None,
    message: dict[str, Any],
    op: Operation,
    decision: AuditDecision,
    reason: str | None = None,
    status: int | None = None,
    latency_ms: float | None = None,
    with_arguments: bool = False,
) -> AuditEvent:
    # each value cut to its column's size (names come from request bodies and external tokens)
    username = identity.username if identity is not None else None
    return AuditEvent(
        at=at,
        method=op.method[:255],
        decision=decision,
        subject=identity.subject[:255] if identity is not None else None,
        username=username[:255] if username is not None else None,
        client_id=identity.client_id[:2048] if identity is not None else None,
        target=op.target[:2048] if op.target is not None else None,
        reason=reason,
        status=status,
        latency_ms=None if latency_ms is None else round(latency_ms, 3),
        arguments=_arguments(message) if with_arguments and op.kind in ("tool", "prompt") else None,
    )
