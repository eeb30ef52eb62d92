"""The authorization code grant as a client: PKCE S256, `resource`, `state`, `iss`; token, refresh.

OAuth 2.1 §4.1 and §7.5.2 (PKCE), RFC 8707 (`resource` in both requests, exactly as the PRM
names it), RFC 9207 (`iss` in the redirect compared, as a plain string, with the issuer whose
metadata was used; required when the AS says it sends it), RFC 6749 §2.3.1 (client secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from authgate.outbound.discovery import AuthServer
from authgate.outbound.errors import OutboundAuthError
from authgate.outbound.registration import Credentials

PostForm = Callable[[str, dict[str, str], dict[str, str], str], Awaitable[tuple[int, bytes]]]
"""`(url, form, headers, what) -> (status, body)`: a form POST through the guarded fetcher."""


@dataclass(frozen=True, slots=True)
class Pending:
    """An authorization request sent and not yet answered."""

    url: str
    state: str
    verifier: str
    redirect_uri: str
    resource: str | None
    scopes: tuple[str, ...]
    issuer: str
    iss_required: bool


@dataclass(frozen=True, slots=True)
class Tokens:
    """What the token endpoint gave, with the scopes asked for (the AS may not echo them)."""

    access_token: str
    issuer: str
    scopes: tuple[str, ...]
    refresh_token: str | None = None
    expires_at: float | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def begin(
    server: AuthServer, creds: Credentials, redirect_uri: str, resource: str | None, scopes: tuple[str, ...]
) -> Pending:
    """A fresh authorization URL: new PKCE verifier and state each time."""
    verifier, state = _b64(secrets.token_bytes(32)), _b64(secrets.token_bytes(24))
    query = {
        "response_type": "code",
        "client_id": creds.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": _b64(hashlib.sha256(verifier.encode("ascii")).digest()),
        "code_challenge_method": "S256",
    }
    if scopes:
        query["scope"] = " ".join(scopes)
    if resource is not None:
        query["resource"] = resource
    separator = "&" if urlsplit(server.authorization_endpoint).query else "?"
    url = server.authorization_endpoint + separator + urlencode(query, quote_via=quote)
    return Pending(url, state, verifier, redirect_uri, resource, scopes, server.issuer, server.iss_parameter_supported)


def code_from(pending: Pending, callback_url: str) -> str:
    """The code of the redirect back, once `state` and `iss` are what they must be."""
    parts = urlsplit(callback_url)
    if f"{parts.scheme}://{parts.netloc}{parts.path}" != pending.redirect_uri.split("?", 1)[0]:
        raise OutboundAuthError("the authorization redirect does not go to our redirect URI")
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items() if v}
    if not hmac.compare_digest(query.get("state", "").encode(), pending.state.encode()):
        raise OutboundAuthError("the authorization response's state is not ours: refused")
    iss = query.get("iss")
    if iss is not None and iss != pending.issuer:  # RFC 9207 §2.4: simple string comparison
        raise OutboundAuthError(f"the authorization response's iss {iss[:200]!r} is not {pending.issuer[:200]!r}")
    if iss is None and pending.iss_required:
        raise OutboundAuthError("the AS promised an iss parameter (RFC 9207) and the response has none: refused")
    if "error" in query:
        raise OutboundAuthError(f"the AS refused the authorization: {query['error'][:100]}", error=query["error"])
    if not query.get("code"):
        raise OutboundAuthError("the authorization response has no code")
    return query["code"]


def client_auth(creds: Credentials, form: dict[str, str]) -> dict[str, str]:
    """RFC 6749 §2.3.1: Basic with form-encoded id and secret, or both in the body, or the id
    (added to `form`); the headers to send. Also for revocation (RFC 7009 §2.1) and exchange."""
    if creds.auth_method == "client_secret_basic" and creds.client_secret is not None:
        pair = f"{quote(creds.client_id, safe='')}:{quote(creds.client_secret, safe='')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}
    form["client_id"] = creds.client_id
    if creds.auth_method == "client_secret_post" and creds.client_secret is not None:
        form["client_secret"] = creds.client_secret
    return {}


async def _token_request(
    server: AuthServer, creds: Credentials, form: dict[str, str], scopes: tuple[str, ...], post: PostForm
) -> Tokens:
    headers = client_auth(creds, form)
    status, body = await post(server.token_endpoint, form, headers, "token request")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise OutboundAuthError(f"token endpoint of {server.issuer[:200]} answered HTTP {status} without JSON")
    if status != 200 or not isinstance(answer.get("access_token"), str):
        code = answer.get("error") if isinstance(answer.get("error"), str) else None
        raise OutboundAuthError(f"token endpoint of {server.issuer[:200]}: HTTP {status} {code or ''}", error=code)
    if str(answer.get("token_type", "")).lower() != "bearer":
        raise OutboundAuthError(f"token endpoint of {server.issuer[:200]} gave a non-Bearer token")
    lifetime = answer.get("expires_in")
    granted = answer.get("scope")
    return Tokens(
        access_token=answer["access_token"],
        issuer=server.issuer,
        scopes=tuple(granted.split()) if isinstance(granted, str) else scopes,
        refresh_token=answer["refresh_token"] if isinstance(answer.get("refresh_token"), str) else None,
        expires_at=time.time() + lifetime if isinstance(lifetime, int | float) and lifetime > 0 else None,
    )


async def redeem(server: AuthServer, creds: Credentials, pending: Pending, code: str, post: PostForm) -> Tokens:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": pending.redirect_uri,
        "code_verifier": pending.verifier,
    }
    if pending.resource is not None:
        form["resource"] = pending.resource
    return await _token_request(server, creds, form, pending.scopes, post)


async def refresh(
    server: AuthServer, creds: Credentials, tokens: Tokens, resource: str | None, post: PostForm
) -> Tokens:
    """OAuth 2.1 §4.3; the new answer keeps the old refresh token if it names none."""
    if tokens.refresh_token is None:
        raise OutboundAuthError("no refresh token to refresh with")
    form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    if resource is not None:
        form["resource"] = resource
    fresh = await _token_request(server, creds, form, tokens.scopes, post)
    if fresh.refresh_token is None:
        return Tokens(fresh.access_token, fresh.issuer, fresh.scopes, tokens.refresh_token, fresh.expires_at)
    return fresh
