"""authgate as a client of the upstream IdP (httpx): the authorization URL, the code exchange
(with authgate's client secret and PKCE), refresh, and the user's identity.

    UpstreamIdpError                 the upstream refused or answered something unusable
    ├── TokenRequestRefused          the token endpoint answered an OAuth error (`error`: its code)
    └── TokenEndpointUnavailable     unreachable, timed out, or HTTP 5xx / 429: worth a retry
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from authgate.config.settings import Settings
from authgate.errors import AuthgateError, Unreachable
from authgate.httpx_errors import translated
from authgate.idp.proxy import identity
from authgate.idp.proxy.identity import UpstreamIdentity
from authgate.idp.proxy.presets import UpstreamIdp

TIMEOUT = 10.0


class UpstreamIdpError(AuthgateError):
    """The upstream refused or answered something unusable."""


class TokenRequestRefused(UpstreamIdpError):
    """The token endpoint said no. `error` is its OAuth error code when it gave one
    (`invalid_grant`: the grant ended; GitHub says `bad_refresh_token`, with HTTP 200)."""

    def __init__(self, message: str, error: str | None) -> None:
        self.error = error
        super().__init__(message)


class TokenEndpointUnavailable(UpstreamIdpError):
    """The token endpoint could not answer now (network, timeout, 5xx, 429): nothing is known
    about the grant, so nothing may be concluded from it."""


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class UpstreamClient:
    def __init__(self, settings: Settings, upstream: UpstreamIdp, http: httpx.AsyncClient) -> None:
        self.upstream = upstream
        self.http = http
        self.client_id = settings.idp_client_id or ""
        secret = settings.idp_client_secret
        self._secret = secret.get_secret_value() if secret is not None else ""
        self.redirect_uri = settings.urls.endpoint("upstream/callback")

    def authorize_url(self, state: str, challenge: str, nonce: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.upstream.scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **self.upstream.extra_params,
        }
        if self.upstream.kind == "oidc":
            params["nonce"] = nonce
        sep = "&" if "?" in self.upstream.authorize_url else "?"
        return self.upstream.authorize_url + sep + urlencode(params)

    async def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token(self, form: dict[str, str]) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.upstream.token_auth == "post":
            form = {**form, "client_id": self.client_id, "client_secret": self._secret}
        else:  # client_secret_basic (RFC 6749 §2.3.1)
            pair = f"{quote(self.client_id, safe='')}:{quote(self._secret, safe='')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        try:
            with translated(f"POST {self.upstream.token_url}"):
                r = await self.http.post(self.upstream.token_url, data=form, headers=headers)
        except Unreachable as exc:
            raise TokenEndpointUnavailable(f"the upstream token endpoint is unreachable ({exc.kind})") from None
        if r.status_code >= 500 or r.status_code == 429:
            raise TokenEndpointUnavailable(f"the upstream token endpoint answered HTTP {r.status_code}")
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code == 200 and isinstance(body, dict) and "access_token" in body:
            return body
        error = body.get("error") if isinstance(body, dict) else None  # GitHub answers 200 with an error
        code = error if isinstance(error, str) else None
        raise TokenRequestRefused(
            f"the upstream refused the {form['grant_type']} request: {code or r.status_code}", code
        )

    async def identity(self, tokens: dict[str, Any], nonce: str) -> UpstreamIdentity:
        try:
            if self.upstream.kind == "github":
                return await self._github(tokens["access_token"])
            info = (
                await self._get_json(self.upstream.userinfo_url, tokens["access_token"])
                if self.upstream.userinfo_url
                else {}
            )
            if self.upstream.kind == "oauth2":
                return identity.from_oauth2(urlsplit(self.upstream.token_url).netloc, info)
            claims = {**self._id_token_claims(tokens, nonce), **info}
            return identity.from_oidc(self.upstream.issuer or "", claims)
        except (KeyError, TypeError) as exc:
            raise UpstreamIdpError(f"the upstream's user info is incomplete: {exc}") from None

    def _id_token_claims(self, tokens: dict[str, Any], nonce: str) -> dict[str, Any]:
        """Claims of the ID token received straight from the token endpoint over the back
        channel (OIDC Core §3.1.3.7: TLS stands in for the signature); iss, aud, nonce checked."""
        raw = tokens.get("id_token")
        if not isinstance(raw, str):
            return {}
        try:
            claims = _jwt_claims(raw)
        except ValueError as exc:
            raise UpstreamIdpError(f"unreadable ID token: {exc}") from None
        aud = claims.get("aud")
        if claims.get("iss") != self.upstream.issuer or self.client_id not in (aud if isinstance(aud, list) else [aud]):
            raise UpstreamIdpError("the ID token was not issued by the upstream for authgate")
        if "nonce" in claims and claims["nonce"] != nonce:
            raise UpstreamIdpError("the ID token's nonce does not match this sign-in")
        return claims

    async def _github(self, token: str) -> UpstreamIdentity:
        base = (self.upstream.userinfo_url or "https://api.github.com").rstrip("/")
        user = await self._get_json(base + "/user", token)
        emails = await self._get_json(base + "/user/emails", token)
        orgs = await self._get_json(base + "/user/orgs", token) if "read:org" in self.upstream.scopes else []
        return identity.from_github(
            user, emails if isinstance(emails, list) else [], orgs if isinstance(orgs, list) else []
        )

    async def _get_json(self, url: str | None, token: str) -> Any:
        try:
            with translated(f"GET {url}"):
                r = await self.http.get(
                    url or "", headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
                )
            if not r.is_success:  # as raise_for_status: 1xx and 3xx too
                raise ValueError(f"HTTP {r.status_code}")
            return r.json()
        except (Unreachable, ValueError) as exc:
            raise UpstreamIdpError(f"the upstream's user info failed: {exc}") from None


def _jwt_claims(raw: str) -> dict[str, Any]:
    parts = raw.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWS compact serialization")
    payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    if not isinstance(payload, dict):
        raise ValueError("the payload is not a JSON object")
    return payload
