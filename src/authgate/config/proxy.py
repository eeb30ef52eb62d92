"""Proxy-mode section: people sign in at an upstream IdP with authgate's one client (authgate.idp.proxy).

`proxy_refusals` is the start-time check of the whole section: each problem names the setting
to change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from authgate.config.issuers import issuer_problem
from authgate.config.problems import Refusal

_URL_SETTINGS = ("idp_issuer", "idp_authorize_url", "idp_token_url", "idp_userinfo_url")
_URL_FIX = "(https, or http on loopback)"
_MODE, _PRESET = ("auth_mode",), ("auth_mode", "idp_preset")  # what a rule read besides its setting

FIXES: dict[str, str] = {
    "idp_preset": 'set auth_mode = "proxy" and idp_preset to github, google, entra, oidc or oauth2 '
    "(see docs/idp/proxy.md), or remove idp_preset",
    "idp_issuer": f"set it to the upstream's OIDC issuer URL {_URL_FIX}, as in its discovery document",
    "idp_authorize_url": f"set it to the upstream's authorization endpoint URL {_URL_FIX}",
    "idp_token_url": f"set it to the upstream's token endpoint URL {_URL_FIX}",
    "idp_userinfo_url": f"set it to the upstream's user info endpoint URL {_URL_FIX}",
    "idp_client_id": "register authgate as a client at the upstream IdP (redirect URI: PUBLIC_URL/upstream/callback) "
    "and set idp_client_id to its client_id",
    "idp_client_secret": "set idp_client_secret (AUTHGATE_IDP_CLIENT_SECRET) to the secret the upstream "
    "issued for idp_client_id",
    "idp_scopes": 'list the scopes to ask the upstream for, e.g. ["openid", "email"], or leave it empty',
    "allowed_users": 'list upstream usernames (login), e.g. ["octocat"]',
    "allowed_emails": 'list e-mail addresses, e.g. ["alice@example.com"]',
    "allowed_email_domains": 'list lower-case domains without "@", e.g. ["example.com"]',
    "allowed_github_orgs": 'list GitHub organisation logins, e.g. ["acme"], with idp_preset = "github"',
}


class ProxySettings(BaseModel):
    # -- proxy mode (authgate.idp.proxy): people sign in at an upstream IdP with authgate's one client --
    idp_preset: Literal["github", "google", "entra", "oidc", "oauth2"] | None = Field(
        None,
        description="proxy mode: the upstream IdP (see docs/idp/proxy.md); oidc: any OIDC issuer "
        "(discovery), oauth2: explicit endpoints",
    )
    idp_issuer: str | None = Field(
        None, description="proxy mode: the upstream's OIDC issuer (oidc, entra; google: a stand-in's)"
    )
    idp_authorize_url: str | None = Field(
        None, description="proxy mode: upstream authorization endpoint (oauth2; overrides the preset's)"
    )
    idp_token_url: str | None = Field(
        None, description="proxy mode: upstream token endpoint (oauth2; overrides the preset's)"
    )
    idp_userinfo_url: str | None = Field(
        None,
        description="proxy mode: upstream user info endpoint (oauth2; overrides the preset's; github: the API base)",
    )
    idp_client_id: str | None = Field(None, description="proxy mode: authgate's client_id at the upstream")
    idp_client_secret: SecretStr | None = Field(
        None, description="proxy mode: authgate's client secret at the upstream"
    )
    idp_scopes: list[str] = Field(
        default_factory=list, description="proxy mode: scopes asked of the upstream; default: the preset's"
    )
    allowed_users: list[str] = Field(
        default_factory=list,
        description="proxy mode: upstream usernames (login) allowed to sign in; all four allow-lists empty: everyone",
    )
    allowed_emails: list[str] = Field(
        default_factory=list, description="proxy mode: verified e-mail addresses allowed to sign in"
    )
    allowed_email_domains: list[str] = Field(
        default_factory=list, description="proxy mode: e-mail domains allowed to sign in (verified addresses only)"
    )
    allowed_github_orgs: list[str] = Field(
        default_factory=list,
        description="proxy mode, github: members of these organisations may sign in (asks read:org)",
    )


def _url_refusal(name: str, value: str) -> Refusal | None:
    problem = issuer_problem(value, "generic")
    return Refusal(name, problem.replace("issuer", name), depends=_MODE) if problem else None


def _endpoint_refusals(s: ProxySettings) -> list[Refusal]:
    found = [r for name in _URL_SETTINGS if (value := getattr(s, name)) and (r := _url_refusal(name, value))]
    if s.idp_preset in ("oidc", "entra") and not s.idp_issuer:
        found.append(
            Refusal(
                "idp_issuer",
                f'idp_preset = "{s.idp_preset}" needs the upstream\'s issuer (OIDC discovery)',
                depends=_PRESET,
            )
        )
    if s.idp_preset == "oauth2":
        found += [
            Refusal(name, 'idp_preset = "oauth2" needs explicit endpoints', depends=_PRESET)
            for name in _URL_SETTINGS[1:]
            if not getattr(s, name)
        ]
    return found


def proxy_refusals(s: ProxySettings, auth_mode: str) -> list[Refusal]:
    """Empty when the proxy settings are consistent; else every problem, each naming its setting."""
    if auth_mode != "proxy":
        return [Refusal("idp_preset", 'applies to auth_mode = "proxy" only', depends=_MODE)] if s.idp_preset else []
    found = []
    if s.idp_preset is None:
        found.append(
            Refusal(
                "idp_preset",
                'auth_mode = "proxy" needs the upstream IdP: github, google, entra, oidc or oauth2',
                depends=_MODE,
            )
        )
    if not s.idp_client_id:
        found.append(
            Refusal(
                "idp_client_id",
                "proxy mode needs the client_id registered for authgate at the upstream IdP",
                depends=_MODE,
            )
        )
    if s.idp_client_secret is None or not s.idp_client_secret.get_secret_value():
        found.append(Refusal("idp_client_secret", "proxy mode needs the client secret of idp_client_id", depends=_MODE))
    found += _endpoint_refusals(s)
    if s.allowed_github_orgs and s.idp_preset != "github":
        found.append(Refusal("allowed_github_orgs", 'applies to idp_preset = "github" only', depends=_PRESET))
    for domain in s.allowed_email_domains:
        if not domain or "@" in domain or domain != domain.strip().lower():
            found.append(
                Refusal(
                    "allowed_email_domains", f"{domain!r} is not a lower-case domain like example.com", depends=_MODE
                )
            )
            break
    return found
