"""Who signed in at the upstream, as authgate records it, and the allow-lists.

The subject is stable and namespaced by the upstream, so two IdPs can never share one: OIDC
`iss|sub`, GitHub `github|<numeric id>` (logins can be renamed, ids cannot), plain OAuth 2
`<token host>|<id>`. Only verified e-mail addresses count for the e-mail allow-lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authgate.config.settings import Settings


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    subject: str
    username: str
    email: str | None = None
    email_verified: bool = False
    orgs: tuple[str, ...] = ()


def from_oidc(issuer: str, claims: dict[str, Any]) -> UpstreamIdentity:
    sub = str(claims["sub"])
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    # Google and Entra say so; oidc-provider and many IdPs omit it for addresses they manage
    verified = claims.get("email_verified", email is not None) in (True, "true")
    username = next((str(claims[k]) for k in ("preferred_username", "login", "email") if claims.get(k)), sub)
    return UpstreamIdentity(subject=f"{issuer}|{sub}", username=username, email=email, email_verified=verified)


def from_github(user: dict[str, Any], emails: list[dict[str, Any]], orgs: list[dict[str, Any]]) -> UpstreamIdentity:
    primary = next((e for e in emails if e.get("primary") and e.get("verified")), None)
    email = str(primary["email"]) if primary else None
    return UpstreamIdentity(
        subject=f"github|{user['id']}",
        username=str(user["login"]),
        email=email,
        email_verified=primary is not None,
        orgs=tuple(str(o["login"]) for o in orgs if o.get("login")),
    )


def from_oauth2(host: str, info: dict[str, Any]) -> UpstreamIdentity:
    ident = info.get("sub", info.get("id"))
    if ident is None:
        raise KeyError("the user info names no `sub` or `id`")
    email = info.get("email") if isinstance(info.get("email"), str) else None
    username = next(
        (str(info[k]) for k in ("preferred_username", "login", "username", "email") if info.get(k)), str(ident)
    )
    return UpstreamIdentity(
        subject=f"{host}|{ident}",
        username=username,
        email=email,
        email_verified=bool(info.get("email_verified", email is not None)),
    )


def refusal(settings: Settings, who: UpstreamIdentity) -> str | None:
    """None when `who` may sign in; else why not. Any one list admitting is enough; with every
    list empty everyone the upstream authenticates is admitted."""
    lists = (
        settings.allowed_users,
        settings.allowed_emails,
        settings.allowed_email_domains,
        settings.allowed_github_orgs,
    )
    if not any(lists):
        return None
    email = who.email.lower() if who.email and who.email_verified else None
    if who.username.lower() in {u.lower() for u in settings.allowed_users}:
        return None
    if email and email in {e.lower() for e in settings.allowed_emails}:
        return None
    if email and email.rsplit("@", 1)[-1] in {d.lower() for d in settings.allowed_email_domains}:
        return None
    if {o.lower() for o in who.orgs} & {o.lower() for o in settings.allowed_github_orgs}:
        return None
    return f"{who.username} is not on this server's allow-list"
