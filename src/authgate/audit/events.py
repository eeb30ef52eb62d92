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
    if identity is None:
        subject = username = client_id = None
    else:
        subject, username, client_id = identity.subject[:255], identity.username, identity.client_id[:2048]
        if username is not None:
            username = username[:255]
    target = op.target
    return AuditEvent(  # by position, in the field order of AuditEvent (faster than by keyword)
        at,
        op.method[:255],
        decision,
        subject,
        username,
        client_id,
        target[:2048] if target is not None else None,
        reason,
        status,
        None if latency_ms is None else round(latency_ms, 3),
        _arguments(message) if with_arguments and op.kind in ("tool", "prompt") else None,
    )
