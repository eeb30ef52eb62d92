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


def _cut(value: str | None, limit: int) -> str | None:
    """Cut to the column's size (names come from request bodies and external tokens)."""
    return value[:limit] if value is not None else None


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
    return AuditEvent(
        at=at,
        method=op.method[:255],
        decision=decision,
        subject=_cut(identity.subject if identity else None, 255),
        username=_cut(identity.username if identity else None, 255),
        client_id=_cut(identity.client_id if identity else None, 2048),
        target=_cut(op.target, 2048),
        reason=reason,
        status=status,
        latency_ms=None if latency_ms is None else round(latency_ms, 3),
        arguments=_arguments(message) if with_arguments and op.kind in ("tool", "prompt") else None,
    )
