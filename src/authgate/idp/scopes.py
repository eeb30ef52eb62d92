"""Whether the scopes authgate advertises exist at the identity provider (issue 17).

In external mode MCP clients ask the IdP for the scopes authgate's protected resource metadata
lists (the `scopes` setting). An IdP that does not define one refuses the client's registration
("scope must only contain Authorization Server supported scope values") or its authorization
(`invalid_scope`). The IdP's metadata `scopes_supported` (RFC 8414 §2, OIDC Discovery §3) says
which scopes it knows; it is optional, and an IdP that leaves it out cannot be checked. Plain
functions, no I/O: the caller fetched the metadata (`idp check`, the start of external mode).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from authgate.errors import SettingProblem
from authgate.idp.profiles import IdpProfile

__all__ = ["missing_scopes", "scope_fix", "scope_problem"]


def missing_scopes(advertised: Iterable[str], metadata: Mapping[str, Any]) -> list[str] | None:
    """The advertised scopes the IdP does not list; None when it publishes no `scopes_supported`."""
    supported = metadata.get("scopes_supported")
    if not isinstance(supported, list):
        return None
    known = {s for s in supported if isinstance(s, str)}
    return [s for s in dict.fromkeys(advertised) if s not in known]


def scope_fix(profile: IdpProfile, missing: list[str]) -> str:
    """The setting to change: define the scopes at the IdP (the profile's way), or advertise others."""
    names = ", ".join(f"`{s}`" for s in missing)
    at_idp = next((t.fix for t in profile.traps if t.code.endswith("-client-scope")), None)
    how = at_idp.replace("SCOPE", names) if at_idp else f"at the IdP: define the scope(s) {names}"
    return f"{how}; or set authgate `scopes` to scopes the IdP defines (its scopes_supported)"


def scope_problem(
    advertised: Iterable[str], issuer: str, profile: IdpProfile, metadata: Mapping[str, Any]
) -> SettingProblem | None:
    """The start-up finding on setting `scopes`: a warning, or with `strict` a refusal. None when
    every advertised scope is listed, or the IdP publishes no `scopes_supported` (cannot tell)."""
    missing = missing_scopes(advertised, metadata)
    if not missing:
        return None
    return SettingProblem(
        "scopes",
        f"scope(s) {', '.join(missing)} advertised by authgate (setting `scopes`) are not in the scopes_supported "
        f"of {issuer}: MCP clients asking for them will be refused at the IdP's registration or authorization",
        scope_fix(profile, missing),
    )
