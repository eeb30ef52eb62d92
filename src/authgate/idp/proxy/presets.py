"""What authgate knows about each upstream IdP, and the endpoints resolved from the settings
(explicit URLs win over a preset's; OIDC presets read the issuer's discovery document)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import httpx

from authgate.config.settings import Settings
from authgate.errors import ConfigError, Unreachable
from authgate.httpx_errors import translated

Kind = Literal["oidc", "github", "oauth2"]


@dataclass(frozen=True, slots=True)
class Preset:
    kind: Kind
    scopes: tuple[str, ...]
    issuer: str | None = None  # OIDC presets with a fixed issuer
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    token_auth: Literal["basic", "post"] = "basic"
    extra_params: dict[str, str] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    # GitHub OAuth apps: no OIDC, no refresh tokens, user info from the REST API
    "github": Preset(
        kind="github",
        scopes=("read:user", "user:email"),
        token_auth="post",
        authorize_url="https://github.com/login/oauth/authorize",
        token_url="https://github.com/login/oauth/access_token",
        userinfo_url="https://api.github.com",
    ),
    # Google: OIDC; a refresh token only with access_type=offline (and prompt=consent to get it again)
    "google": Preset(
        kind="oidc",
        scopes=("openid", "email", "profile"),
        issuer="https://accounts.google.com",
        token_auth="post",
        extra_params={"access_type": "offline", "prompt": "consent"},
    ),
    # Entra ID: OIDC at https://login.microsoftonline.com/<tenant>/v2.0; refresh with offline_access
    "entra": Preset(kind="oidc", scopes=("openid", "profile", "email", "offline_access"), token_auth="post"),
    "oidc": Preset(kind="oidc", scopes=("openid", "profile", "email", "offline_access")),
    "oauth2": Preset(kind="oauth2", scopes=()),
}


@dataclass(frozen=True, slots=True)
class UpstreamIdp:
    """The resolved upstream: where to send the browser and where authgate calls."""

    name: str
    kind: Kind
    issuer: str | None
    authorize_url: str
    token_url: str
    userinfo_url: str | None
    scopes: tuple[str, ...]
    token_auth: Literal["basic", "post"]
    extra_params: dict[str, str]


async def resolve(settings: Settings, http: httpx.AsyncClient) -> UpstreamIdp:
    name = settings.idp_preset or "oauth2"
    preset = PRESETS[name]
    scopes = tuple(settings.idp_scopes) or preset.scopes
    if name == "github" and settings.allowed_github_orgs and "read:org" not in scopes:
        scopes += ("read:org",)
    issuer = settings.idp_issuer or preset.issuer
    doc: dict[str, object] = {}
    if preset.kind == "oidc" and issuer:
        doc = await _discover(http, issuer)
    authorize_url = settings.idp_authorize_url or _s(doc.get("authorization_endpoint")) or preset.authorize_url
    token_url = settings.idp_token_url or _s(doc.get("token_endpoint")) or preset.token_url
    userinfo = settings.idp_userinfo_url or _s(doc.get("userinfo_endpoint")) or preset.userinfo_url
    if not authorize_url or not token_url:
        raise ConfigError(
            "idp_authorize_url",
            f"the {name} upstream names no authorization or token endpoint",
            "set idp_authorize_url and idp_token_url",
        )
    return UpstreamIdp(
        name=name,
        kind=preset.kind,
        issuer=issuer if preset.kind == "oidc" else None,
        authorize_url=authorize_url,
        token_url=token_url,
        userinfo_url=userinfo,
        scopes=scopes,
        token_auth=preset.token_auth,
        extra_params=dict(preset.extra_params),
    )


async def _discover(http: httpx.AsyncClient, issuer: str) -> dict[str, object]:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with translated(f"GET {url}"):
            r = await http.get(url)
        if not r.is_success:  # as raise_for_status: 1xx and 3xx too
            raise ValueError(f"HTTP {r.status_code}")
        doc = r.json()
    except (Unreachable, ValueError) as exc:
        raise ConfigError(
            "idp_issuer",
            f"no OIDC discovery document at {url} ({exc})",
            'check idp_issuer, or use idp_preset = "oauth2" with explicit endpoints',
        ) from None
    if not isinstance(doc, dict) or doc.get("issuer") != issuer:
        raise ConfigError(
            "idp_issuer",
            f"the discovery document at {url} names another issuer",
            "set idp_issuer to its `issuer` value exactly",
        )
    return doc


def _s(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
