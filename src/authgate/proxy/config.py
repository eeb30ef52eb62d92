"""Start-time checks of the proxy-mode settings: each problem names the setting to change."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authgate.config.settings import Settings

_URL_SETTINGS = ("idp_issuer", "idp_authorize_url", "idp_token_url", "idp_userinfo_url")


def _url_problem(name: str, value: str) -> str | None:
    from authgate.idp.profiles import issuer_problem

    problem = issuer_problem(value, "generic")
    return f"{name}: {problem.replace('issuer', name)}" if problem else None


def proxy_problem(s: Settings) -> str | None:
    """None when the proxy settings are consistent; else "setting: what is wrong"."""
    if s.auth_mode != "proxy":
        if s.idp_preset is not None:
            return "idp_preset: applies to auth_mode = \"proxy\" only"
        return None
    if s.idp_preset is None:
        return "idp_preset: auth_mode = \"proxy\" needs the upstream IdP: github, google, entra, oidc or oauth2"
    if not s.idp_client_id:
        return "idp_client_id: proxy mode needs the client_id registered for authgate at the upstream IdP"
    if s.idp_client_secret is None or not s.idp_client_secret.get_secret_value():
        return "idp_client_secret: proxy mode needs the client secret of idp_client_id"
    for name in _URL_SETTINGS:
        value = getattr(s, name)
        if value and (problem := _url_problem(name, value)):
            return problem
    if s.idp_preset in ("oidc", "entra") and not s.idp_issuer:
        return f"idp_issuer: idp_preset = \"{s.idp_preset}\" needs the upstream's issuer (OIDC discovery)"
    if s.idp_preset == "oauth2":
        for name in ("idp_authorize_url", "idp_token_url", "idp_userinfo_url"):
            if not getattr(s, name):
                return f"{name}: idp_preset = \"oauth2\" needs explicit endpoints"
    if s.allowed_github_orgs and s.idp_preset != "github":
        return "allowed_github_orgs: applies to idp_preset = \"github\" only"
    for domain in s.allowed_email_domains:
        if not domain or "@" in domain or domain != domain.strip().lower():
            return f"allowed_email_domains: {domain!r} is not a lower-case domain like example.com"
    return None
