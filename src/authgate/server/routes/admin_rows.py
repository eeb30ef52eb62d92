"""What the admin page shows of each stored value: plain strings, cut to a bounded length.

Every string here is chosen by someone else (a DCR client picks its own name and redirect
URIs, a tool call its target), so the template prints them escaped (Jinja2 autoescape) inside
`<bdi>`; this module only shortens them and formats times, and never puts a secret in a row
(clients' secret hashes, users' password hashes and audit arguments are not read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from authgate.store.models import Attempt, AuditEvent, Client, LiveGrant, User

if TYPE_CHECKING:
    from authgate.connections.providers import ConnectionInfo

MAX_TEXT = 120  # characters of any one value shown
KINDS = {"dcr": "DCR", "cimd": "CIMD", "operator": "operator", "static": "static"}


def cut(text: str | None, limit: int = MAX_TEXT) -> str:
    if not text:
        return ""
    text = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(at: float | None) -> str:
    if at is None or not math.isfinite(at) or at <= 0:
        return "–"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


def redirect_hosts(client: Client) -> str:
    hosts: list[str] = []
    for uri in client.redirect_uris[:20]:
        try:
            host = urlsplit(uri).hostname or uri.split(":", 1)[0]  # a native app's custom scheme
        except ValueError:
            host = "?"
        if host not in hosts:
            hosts.append(host)
    return cut(", ".join(hosts))


@dataclass(frozen=True, slots=True)
class Pager:
    """Which page of a list (clients, users) of `total` items to read: `page` counts from 1, a
    page number out of range is the nearest page, and the store is asked for `size` items from
    `start`."""

    page: int
    pages: int
    total: int
    start: int
    size: int

    @classmethod
    def of(cls, total: int, raw_page: str | None, size: int) -> Pager:
        pages = max(1, -(-total // size))
        page = int(raw_page) if raw_page and raw_page.isdigit() and len(raw_page) < 7 else 1
        page = min(max(page, 1), pages)
        return cls(page, pages, total, (page - 1) * size, size)


def client_row(client: Client, live_grants: int | None) -> dict[str, str]:
    return {
        "client_id": client.client_id,
        "id": cut(client.client_id, 60),
        "name": cut(client.name, 80),
        "kind": KINDS.get(client.source, client.source),
        "hosts": redirect_hosts(client),
        "created": when(client.created_at),
        "last_used": when(client.last_used_at),
        "grants": "–" if live_grants is None else str(live_grants),
    }


def user_row(user: User, me: User) -> dict[str, str | bool]:
    return {
        "user_id": user.user_id,
        "username": cut(user.username, 80),
        "roles": cut(", ".join(user.roles)) or "–",
        "created": when(user.created_at),
        "me": user.user_id == me.user_id,
    }


def connection_row(info: ConnectionInfo, username: str) -> dict[str, str]:
    """A user's connection to a third-party provider (never a token)."""
    return {
        "key": f"{info.provider}:{info.user_id}",
        "user": cut(username, 80),
        "provider": cut(info.provider, 64),
        "scopes": cut(" ".join(info.scopes)) or "–",
        "expires": when(info.expires_at),
        "updated": when(info.updated_at),
    }


def audit_row(event: AuditEvent) -> dict[str, str]:
    return {
        "at": when(event.at),
        "who": cut(event.username or event.subject, 60) or "–",
        "client": cut(event.client_id, 60) or "–",
        "method": cut(event.method, 60),
        "target": cut(event.target, 80),
        "decision": event.decision,
        "reason": cut(event.reason),
        "status": "" if event.status is None else str(event.status),
    }


def grant_row(grant: LiveGrant) -> dict[str, str]:
    return {
        "family_id": grant.family_id,
        "client": cut(grant.client_name, 80),
        "user": cut(grant.username, 80),
        "scopes": cut(" ".join(grant.scopes)),
        "created": when(grant.created_at),
        "last_used": when(grant.last_used_at),
        "expires": when(grant.expires_at),
    }


def attempt_row(attempt: Attempt) -> dict[str, str | bool]:
    """One connection attempt: who, how far it got, and its first failure with the fix."""
    client = attempt.client_name or attempt.client_id or "unknown client"
    kind = KINDS.get(attempt.client_kind or "", attempt.client_kind or "")
    return {
        "at": when(attempt.started_at),
        "client": cut(client, 80),
        "kind": kind,
        "software": cut(attempt.software, 60),
        "steps": cut(" → ".join(attempt.steps)) or "–",
        "failed": attempt.failed,
        "outcome": cut(attempt.reason, 300) if attempt.failed else "no failure",
        "fix": cut(attempt.fix, 300) if attempt.failed else "",
    }
