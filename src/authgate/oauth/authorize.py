"""The authorization endpoint's logic (OAuth 2.1 §4.1.1, RFC 8707, RFC 9207).

Errors found before the redirect URI is verified are shown to the user, never redirected
(RFC 6749 §4.1.2.1). Errors after that travel back to the client as a redirect carrying
`error`, `state` and `iss`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from authgate.errors import (
    AuthgateError,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from authgate.oauth import pkce, redirect_uris, roles, scopes
from authgate.oauth.authority import Authority
from authgate.oauth.clients import require_client
from authgate.oauth.opaque import digest, new_secret
from authgate.store.models import AuthorizationCode, Client, User


class UnverifiedRedirect(OAuthError):
    """The client or redirect URI could not be verified: show an error page, don't redirect."""

    error = "invalid_request"


@dataclass(frozen=True, slots=True)
class RedirectError(AuthgateError):
    """An error to deliver to the (verified) redirect URI, with the request's `state`; it
    becomes a redirect in `error_redirect` only."""

    error: OAuthError
    redirect_uri: str
    state: str | None


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client_id: str
    client_name: str
    redirect_uri: str
    state: str | None
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    code_challenge: str
    via_cimd: bool
    loopback_only: bool  # every redirect URI is loopback: anyone could claim to be this client
    unverified_client: bool = True  # it described itself (DCR, CIMD): its name is its own claim

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in ((f, getattr(self, f)) for f in self.__slots__)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthorizationRequest:
        # a request signed before `unverified_client` existed is shown as unverified
        values: dict[str, Any] = {f: data[f] for f in cls.__slots__ if f in data or f != "unverified_client"}
        values["scopes"], values["resources"] = tuple(data["scopes"]), tuple(data["resources"])
        return cls(**values)

    @property
    def redirect_host(self) -> str:
        return redirect_uris.display_host(self.redirect_uri)

    def refused(self, error: OAuthError) -> RedirectError:
        """`error` for this request's client, at its redirect URI with its `state`."""
        return RedirectError(error, self.redirect_uri, self.state)


def canonical_resources(auth: Authority, requested: list[str]) -> tuple[str, ...]:
    """RFC 8707 §2: each `resource` must be one we serve. A trailing slash is tolerated
    (clients differ on it); the canonical form goes into the token's `aud`."""
    if not requested:
        return auth.resources
    out: list[str] = []
    for r in requested:
        canon = r[:-1] if r.endswith("/") else r
        if canon not in auth.resources:
            raise InvalidTarget(f"resource {r!r} is not served by this authorization server")
        if canon not in out:
            out.append(canon)
    return tuple(out)


async def _verified_client(auth: Authority, client_id: str | None) -> Client:
    if not client_id:
        raise UnverifiedRedirect("client_id is missing")
    return await require_client(auth, client_id, UnverifiedRedirect)


def _verified_redirect(client: Client, presented: str | None) -> str:
    if presented is None:
        if len(client.redirect_uris) == 1:
            return client.redirect_uris[0]
        raise UnverifiedRedirect("redirect_uri is required")
    if not redirect_uris.matches(client.redirect_uris, presented):
        raise UnverifiedRedirect("redirect_uri is not registered for this client")
    return presented


async def validate(auth: Authority, params: list[tuple[str, str]]) -> AuthorizationRequest:
    single = dict(params)
    for name in ("client_id", "redirect_uri", "response_type", "state", "code_challenge", "scope"):
        if sum(1 for k, _ in params if k == name) > 1:
            raise UnverifiedRedirect(f"parameter {name} is repeated")  # RFC 6749 §3.1
    client = await _verified_client(auth, single.get("client_id"))
    redirect_uri = _verified_redirect(client, single.get("redirect_uri"))
    state = single.get("state")
    try:
        if single.get("response_type") != "code":
            raise UnsupportedResponseType("response_type must be 'code'")
        if "authorization_code" not in client.metadata.get("grant_types", ["authorization_code"]):
            raise UnauthorizedClient("this client did not register the authorization_code grant")
        challenge = pkce.check_challenge(single.get("code_challenge"), single.get("code_challenge_method"))
        resources = canonical_resources(auth, [v for k, v in params if k == "resource"])
    except OAuthError as exc:
        raise RedirectError(exc, redirect_uri, state) from None
    # the policy's per-tool scopes are offered too; `scopes` stays the default grant (docs/policy.md)
    granted = scopes.grantable(scopes.parse(single.get("scope")), auth.config.offered_scopes, auth.config.scopes)
    return AuthorizationRequest(
        client_id=client.client_id,
        client_name=client.name,
        redirect_uri=redirect_uri,
        state=state,
        scopes=granted,
        resources=resources,
        code_challenge=challenge,
        via_cimd=client.source == "cimd",
        loopback_only=redirect_uris.all_loopback(client.redirect_uris),
        unverified_client=client.source in ("dcr", "cimd"),
    )


def for_user(auth: Authority, req: AuthorizationRequest, user: User) -> AuthorizationRequest:
    """The request narrowed to the scopes `user` may grant (oauth/roles.py), before the consent
    page lists them. Nothing requested left: invalid_scope to the client (RFC 6749 §4.1.2.1),
    not a silent fallback to scopes the client did not ask for."""
    granted = roles.limit(req.scopes, roles.grantable_by(auth.config, user))
    if roles.grants_nothing(granted) and not roles.grants_nothing(req.scopes):
        refused = scopes.render([s for s in req.scopes if s not in granted])
        raise req.refused(InvalidScope(f"the signed-in user may not grant {refused}"))
    return replace(req, scopes=granted)


async def issue_code(auth: Authority, req: AuthorizationRequest, user_id: str, auth_time: float) -> str:
    code = new_secret("agc_")
    now = auth.clock()
    await auth.store.save_code(
        AuthorizationCode(
            code_hash=digest(code),
            client_id=req.client_id,
            user_id=user_id,
            redirect_uri=req.redirect_uri,
            scopes=req.scopes,
            resources=req.resources,
            code_challenge=req.code_challenge,
            family_id=new_secret(),
            created_at=now,
            expires_at=now + auth.config.code_ttl,
            auth_time=auth_time,
        )
    )
    return code


def redirect_url(auth: Authority, redirect_uri: str, params: dict[str, str | None]) -> str:
    """Append response parameters to the redirect URI, keeping its own query, adding RFC 9207
    `iss` to every response, success or error."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    query.append(("iss", auth.issuer))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def error_redirect(auth: Authority, err: RedirectError) -> str:
    """The one way an OAuth error reaches a client by redirect (RFC 6749 §4.1.2.1): `error`,
    `error_description`, the request's `state` when it sent one, and RFC 9207 `iss`."""
    return redirect_url(
        auth,
        err.redirect_uri,
        {
            "error": err.error.error,
            "error_description": err.error.description or None,
            "state": err.state,
        },
    )


__all__ = ["AuthorizationRequest", "RedirectError", "UnverifiedRedirect", "InvalidRequest"]
