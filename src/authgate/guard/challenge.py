"""`WWW-Authenticate` challenges (RFC 6750 §3, RFC 9728 §5.1, RFC 9449 §7.1, MCP authorization)."""

from __future__ import annotations


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(
    *,
    resource_metadata: str,
    scopes: tuple[str, ...] | list[str],
    error: str | None = None,
    description: str | None = None,
) -> str:
    parts = []
    if error:
        parts.append(f"error={_quote(error)}")
        if description:
            parts.append(f"error_description={_quote(description)}")
    if scopes:
        parts.append(f"scope={_quote(' '.join(scopes))}")
    parts.append(f"resource_metadata={_quote(resource_metadata)}")
    return "Bearer " + ", ".join(parts)


def dpop_challenge(
    *,
    resource_metadata: str,
    scopes: tuple[str, ...] | list[str],
    algs: tuple[str, ...],
    error: str | None = None,
    description: str | None = None,
) -> str:
    """The DPoP scheme's challenge (RFC 9449 §7.1): `algs`, and the same parameters as Bearer's."""
    bearer = bearer_challenge(resource_metadata=resource_metadata, scopes=scopes, error=error, description=description)
    return f"DPoP algs={_quote(' '.join(algs))}, " + bearer[len("Bearer ") :]
