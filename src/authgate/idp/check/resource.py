"""Whether the IdP honours RFC 8707 `resource`: a client_credentials token's audience, when credentials are given."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from authgate.errors import Unreachable
from authgate.httpx_errors import translated
from authgate.idp.check.report import CheckOptions, CheckReport, trap_fix
from authgate.idp.profiles import IdpProfile

__all__ = ["check_resource"]


def _jwt_part(token: str, index: int) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(parts[index] + "=" * (-len(parts[index]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


async def _client_credentials_token(
    options: CheckOptions, meta: dict[str, Any], http: httpx.AsyncClient
) -> tuple[int | None, dict[str, Any]]:
    data = {"grant_type": "client_credentials", "resource": options.resource or ""}
    if options.scope:
        data["scope"] = options.scope
    endpoint = str(meta.get("token_endpoint"))
    try:
        with translated(f"POST {endpoint}"):
            response = await http.post(endpoint, data=data, auth=(options.client_id or "", options.client_secret or ""))
    except Unreachable as exc:
        return None, {"error": exc.kind, "error_description": exc.detail}
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body if isinstance(body, dict) else {}


def _judge_token(report: CheckReport, token: str, resource: str, profile: IdpProfile) -> None:
    claims = _jwt_part(token, 1)
    if claims is None:
        kind = "encrypted (JWE)" if token.count(".") == 4 else "opaque"
        report.add(
            "opaque-token",
            "warn",
            f"the access token is {kind}, so its audience cannot be read",
            trap_fix(
                profile,
                "auth0-resource-ignored",
                "at the IdP: issue JWT access tokens for this resource; or set authgate "
                "`introspection_endpoint` and its client credentials",
            ),
        )
        return
    aud = claims.get(profile.audience_claim)
    auds = aud if isinstance(aud, list) else [aud]
    if resource in auds:
        report.add("resource", "ok", f"`resource` honoured: the token's {profile.audience_claim} is {aud!r}")
    else:
        report.add(
            "resource-ignored",
            "fail",
            f"the IdP ignored resource={resource}: the token's {profile.audience_claim} is {aud!r}",
            trap_fix(
                profile,
                "auth0-resource-ignored",
                trap_fix(
                    profile,
                    "keycloak-audience",
                    "at the IdP: issue tokens with aud = the MCP URL "
                    f"(RFC 8707); or, if {aud!r} names this MCP server alone, add it to authgate `audiences`",
                ),
            ),
        )
    typ = str((_jwt_part(token, 0) or {}).get("typ", "")).lower()
    if profile.sets_at_jwt_typ and typ not in ("at+jwt", "application/at+jwt"):
        report.add(
            "no-at-jwt-typ",
            "warn",
            f"the access token's typ is {typ or 'absent'!r}, not at+jwt (RFC 9068), which this profile requires",
            "authgate `jwt_require_typ = false`",
        )


async def check_resource(
    report: CheckReport, options: CheckOptions, meta: dict[str, Any], http: httpx.AsyncClient, profile: IdpProfile
) -> None:
    if not (options.client_id and options.client_secret and options.resource):
        report.add(
            "resource-untested",
            "info",
            "whether `resource` is honoured was not tested: pass "
            "--client-id/--client-secret of a client allowed client_credentials, and --resource MCP-URL",
        )
        return
    status, body = await _client_credentials_token(options, meta, http)
    token = body.get("access_token")
    if status == 200 and isinstance(token, str):
        _judge_token(report, token, options.resource, profile)
    elif body.get("error") == "invalid_target":
        report.add(
            "resource-refused",
            "fail",
            f"the IdP refused resource={options.resource} (invalid_target)",
            "at the IdP: register the MCP URL as a resource / API identifier",
        )
    else:
        report.add(
            "resource-untested",
            "warn",
            f"client_credentials token request failed: HTTP {status} "
            f"{body.get('error', '')} {body.get('error_description', '')}".rstrip(),
            "check --client-id/--client-secret and that the client may use client_credentials",
        )
