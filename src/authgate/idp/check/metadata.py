"""What the authorization server metadata advertises: PKCE S256, DCR, refresh tokens, keys, RFC 9207, and
whether it defines the scopes authgate advertises (`scopes_supported`)."""

from __future__ import annotations

from typing import Any

from authgate.idp.check.report import CheckReport, trap_fix
from authgate.idp.profiles import IdpProfile
from authgate.idp.scopes import missing_scopes, scope_fix

__all__ = ["check_metadata", "check_scopes"]


def check_scopes(report: CheckReport, meta: dict[str, Any], scopes: tuple[str, ...], profile: IdpProfile) -> None:
    """The scopes authgate advertises must be scopes the IdP knows (its scopes_supported)."""
    if not scopes:
        return
    missing = missing_scopes(scopes, meta)
    if missing is None:
        report.add(
            "scopes-unlisted",
            "info",
            f"the metadata has no scopes_supported, so whether {', '.join(scopes)} exist(s) there was not checked",
        )
        return
    report.settled.add(f"{profile.name}-client-scope")
    if missing:
        report.add(
            "scope-missing",
            "fail",
            f"scope(s) {', '.join(missing)} that authgate advertises (setting `scopes`) are not in the IdP's "
            "scopes_supported: MCP clients asking for them are refused at registration or authorization",
            scope_fix(profile, missing),
        )
    else:
        report.add("scopes", "ok", f"the IdP defines the advertised scope(s) {', '.join(scopes)}")


def check_metadata(report: CheckReport, meta: dict[str, Any], profile: IdpProfile) -> None:
    methods = meta.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" in methods:
        report.add("pkce", "ok", "PKCE S256 advertised")
    else:
        report.add(
            "no-s256",
            "fail",
            f"code_challenge_methods_supported is {methods!r}: MCP clients must refuse an authorization "
            "server that does not advertise S256 (ChatGPT calls it unsupported)",
            "at the IdP: enable PKCE with S256 and publish code_challenge_methods_supported",
        )
    if isinstance(meta.get("registration_endpoint"), str):
        report.add("dcr", "ok", f"Dynamic Client Registration at {meta['registration_endpoint']}")
    else:
        cimd = meta.get("client_id_metadata_document_supported") is True
        report.add(
            "no-dcr",
            "warn" if cimd else "fail",
            "no registration_endpoint: MCP clients cannot register"
            + (" (CIMD is advertised, so clients that support it still work)" if cimd else ""),
            trap_fix(
                profile,
                f"{profile.name}-dcr",
                trap_fix(
                    profile,
                    f"{profile.name}-no-dcr",
                    "at the IdP: enable Dynamic Client Registration; "
                    'or use authgate\'s proxy mode (auth_mode = "proxy", coming)',
                ),
            ),
        )
    grants = meta.get("grant_types_supported")
    if isinstance(grants, list) and "refresh_token" in grants:
        report.add("refresh", "ok", "refresh tokens offered (grant_types_supported)")
    else:
        report.add(
            "no-refresh",
            "warn",
            f"grant_types_supported is {grants!r}: without refresh tokens users sign in again each time "
            "the access token expires",
            "at the IdP: allow the refresh_token grant (offline access) for registered clients",
        )
    if not isinstance(meta.get("jwks_uri"), str):
        report.add(
            "no-jwks",
            "fail",
            "no jwks_uri: authgate cannot verify JWT access tokens",
            "use an IdP that publishes its keys, or set authgate `introspection_endpoint`",
        )
    if meta.get("authorization_response_iss_parameter_supported") is not True:
        report.add(
            "no-rfc9207",
            "info",
            "RFC 9207 `iss` in authorization responses is not advertised "
            "(mix-up protection; ChatGPT then uses a per-connector redirect URI)",
        )
