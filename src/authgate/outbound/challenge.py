"""The parameters of a `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3, RFC 9728 §5.1).

The field may hold several challenges (RFC 9110 §11.6.1): authgate itself, with DPoP on, sends
`DPoP algs="…", Bearer resource_metadata="…"`. The Bearer one is found wherever it stands, by the
one challenge parser (`authgate.www_authenticate`), read leniently: an unquoted URL some servers
send as `resource_metadata=https://…` is still taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from authgate.www_authenticate import find_challenge


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a 401 or 403 told the client: all optional."""

    error: str | None = None
    scope: tuple[str, ...] = ()
    resource_metadata: str | None = None


def parse_challenge(header: str | Iterable[str] | None) -> Challenge:
    """The Bearer challenge's `error`, `scope` and `resource_metadata`; empty without one."""
    bearer = find_challenge(header, "bearer", lenient=True)
    if bearer is None:
        return Challenge()
    return Challenge(
        error=bearer.get("error") or None,
        scope=tuple((bearer.get("scope") or "").split()),
        resource_metadata=bearer.get("resource_metadata") or None,
    )
