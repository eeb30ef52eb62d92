"""`authgate idp check --id-jag`: is this IdP fit to issue ID-JAGs for authgate (Enterprise-Managed
Authorization, draft-ietf-oauth-identity-assertion-authz-grant §7)? The client gets an ID-JAG by
RFC 8693 token exchange at the IdP, asking for the token type urn:ietf:params:oauth:token-type:id-jag;
authgate then verifies it with the IdP's keys (the `enterprise_idps` setting, docs/enterprise.md)."""

from __future__ import annotations

import json
from typing import Any

from authgate.idp.check.report import CheckReport

__all__ = ["ID_JAG_TOKEN_TYPE", "check_id_jag"]

ID_JAG_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def check_id_jag(report: CheckReport, meta: dict[str, Any]) -> None:
    types = meta.get("identity_chaining_requested_token_types_supported")
    if isinstance(types, list) and ID_JAG_TOKEN_TYPE in types:
        report.add("id-jag", "ok", "ID-JAGs offered (identity_chaining_requested_token_types_supported)")
    else:
        report.add(  # the draft §7: an IdP SHOULD advertise it, so its absence is no proof of inability
            "no-id-jag",
            "warn",
            f"identity_chaining_requested_token_types_supported is {types!r}: the IdP does not say it issues "
            f"ID-JAGs ({ID_JAG_TOKEN_TYPE}); unless it issues them unannounced, MCP clients cannot get one "
            "for authgate",
            "at the IdP: enable Cross App Access / identity chaining (ID-JAG) for the client's app",
        )
    grants = meta.get("grant_types_supported")
    if not (isinstance(grants, list) and TOKEN_EXCHANGE in grants):
        report.add(
            "no-token-exchange",
            "warn",
            f"grant_types_supported is {grants!r}: no RFC 8693 token exchange, which is how clients ask for ID-JAGs",
            "at the IdP: allow the token-exchange grant for the requesting client",
        )
    jwks = meta.get("jwks_uri")
    if isinstance(jwks, str):
        line = json.dumps({report.issuer: {"jwks_uri": jwks}})
        report.add("id-jag-setting", "info", f"trust it at authgate with enterprise_idps = {line}")
