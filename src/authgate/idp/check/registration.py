"""A real test registration (RFC 7591), only with `register`, deleted again via RFC 7592 where the IdP allows it."""

from __future__ import annotations

from typing import Any

import httpx

from authgate.errors import Unreachable
from authgate.httpx_errors import translated
from authgate.idp.check.report import CheckReport, trap_fix
from authgate.idp.profiles import IdpProfile

__all__ = ["CHECK_REDIRECT_URI", "check_registration"]

CHECK_REDIRECT_URI = "http://127.0.0.1:9/authgate-idp-check/callback"  # never listened on


async def _delete_registration(report: CheckReport, body: dict[str, Any], http: httpx.AsyncClient) -> None:
    uri, rat, client_id = (
        body.get("registration_client_uri"),
        body.get("registration_access_token"),
        body.get("client_id"),
    )
    if not (isinstance(uri, str) and isinstance(rat, str)):
        report.add(
            "registration-kept",
            "warn",
            f"the IdP offers no RFC 7592 management for client {client_id}",
            f"delete client {client_id} at the IdP by hand",
        )
        return
    try:
        with translated(f"DELETE {uri}"):
            response = await http.delete(uri, headers={"Authorization": f"Bearer {rat}"})
    except Unreachable as exc:
        response = None
        detail = exc.kind
    if response is not None and response.status_code == 204:
        report.add("registration-deleted", "ok", f"test client {client_id} deleted again (RFC 7592)")
    else:
        detail = f"HTTP {response.status_code}" if response is not None else detail
        report.add(
            "registration-kept",
            "warn",
            f"could not delete test client {client_id} ({detail})",
            f"delete client {client_id} at the IdP by hand",
        )


async def check_registration(
    report: CheckReport, meta: dict[str, Any], http: httpx.AsyncClient, profile: IdpProfile
) -> None:
    endpoint = meta.get("registration_endpoint")
    if not isinstance(endpoint, str):
        return
    metadata = {
        "client_name": "authgate idp check (safe to delete)",
        "redirect_uris": [CHECK_REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    try:
        with translated(f"POST {endpoint}"):
            response = await http.post(endpoint, json=metadata)
        body = response.json() if response.content else {}
    except (Unreachable, ValueError) as exc:
        report.add(
            "registration-failed",
            "fail",
            f"test registration failed: {exc.kind if isinstance(exc, Unreachable) else type(exc).__name__}",
        )
        return
    if response.status_code != 201 or not isinstance(body, dict) or "client_id" not in body:
        report.add(
            "registration-failed",
            "fail",
            f"test registration refused: HTTP {response.status_code} "
            f"{body.get('error', '') if isinstance(body, dict) else ''}".rstrip(),
            trap_fix(
                profile,
                "keycloak-trusted-hosts",
                trap_fix(profile, "auth0-dcr", "at the IdP: allow anonymous Dynamic Client Registration"),
            ),
        )
        return
    report.registered_client_id = str(body["client_id"])
    report.add("registration", "ok", f"registered test client {report.registered_client_id}")
    await _delete_registration(report, body, http)
