"""Scope strings (RFC 6749 §3.3) and the grant rules applied to them."""

from __future__ import annotations

from collections.abc import Sequence

OFFLINE_ACCESS = "offline_access"


def parse(raw: str | None) -> tuple[str, ...]:
    """Space-delimited, order-preserving, de-duplicated."""
    seen: dict[str, None] = {}
    for s in (raw or "").split(" "):
        if s:
            seen[s] = None
    return tuple(seen)


def render(scopes: tuple[str, ...] | list[str]) -> str:
    return " ".join(scopes)


def grantable(requested: tuple[str, ...], offered: Sequence[str], default: Sequence[str]) -> tuple[str, ...]:
    """Unknown scopes are dropped, not refused (a client asking for OIDC scopes we do not
    serve still gets a token; the token response says what was granted). No scope → the
    defaults. `offline_access` is understood but never needed: refresh tokens are always issued
    for the authorization code grant."""
    known = set(offered) | {OFFLINE_ACCESS}
    kept = tuple(s for s in requested if s in known)
    if not [s for s in kept if s != OFFLINE_ACCESS]:
        kept = tuple(default) + tuple(s for s in kept if s == OFFLINE_ACCESS)
    return kept


def is_subset(narrow: tuple[str, ...], wide: tuple[str, ...]) -> bool:
    return set(narrow) <= set(wide)
