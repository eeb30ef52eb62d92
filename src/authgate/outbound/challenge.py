"""The parameters of a `WWW-Authenticate: Bearer …` challenge (RFC 6750 §3, RFC 9728 §5.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# auth-param = token BWS "=" BWS ( token / quoted-string )  (RFC 9110 §11.2)
_PARAM = re.compile(r'([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')
_MAX_HEADER = 8192


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a 401 or 403 told the client: all optional."""

    error: str | None = None
    scope: tuple[str, ...] = ()
    resource_metadata: str | None = None


def parse_challenge(header: str | None) -> Challenge:
    """The Bearer challenge's `error`, `scope` and `resource_metadata`; empty for anything else."""
    if not header or len(header) > _MAX_HEADER:
        return Challenge()
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return Challenge()
    params: dict[str, str] = {}
    for name, quoted, bare in _PARAM.findall(rest):
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted or not bare else bare
        params.setdefault(name.lower(), value)
    return Challenge(
        error=params.get("error") or None,
        scope=tuple(params.get("scope", "").split()),
        resource_metadata=params.get("resource_metadata") or None,
    )
