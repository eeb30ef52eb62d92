"""The MCP SDK's own ways to do what authgate does, as baselines (clearly not authgate code).

    python -m bench.sdk_servers bearer PORT PUBLIC_KEY_PEM_FILE ISSUER AUDIENCE
        bench/apps.py's echo app behind the SDK's bearer auth (`RequireAuthMiddleware` with a
        `TokenVerifier`). The SDK ships no JWT verifier, so the verifier here wraps the same
        joserfc verification authgate uses (`authgate.oauth.access_tokens.verify`: RS256
        pinned, typ, iss, aud, exp/nbf), once per request: the SDK has no token cache.
    python -m bench.sdk_servers as PORT
        the SDK's auth routes (`mcp.server.auth.routes.create_auth_routes`) with the small
        in-memory provider below: dynamic registration, authorize (no sign-in or consent
        page: the code is issued at once), code and refresh-token grants (rotating).

Run with the project venv's interpreter (the same `mcp` as authgate's); uvicorn with uvloop +
httptools as every server in the comparison; logging at WARNING; the collector settled after
start-up as authgate's `gc_tuning` does (BENCH_GC=default: CPython's defaults).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from joserfc.jwk import RSAKey
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyHttpUrl

from authgate.errors import InvalidToken
from authgate.oauth import access_tokens

TTL = 3600


class _OneKey:
    """What `access_tokens.verify` asks of authgate's `SigningKeys`: the public key for a kid."""

    def __init__(self, pem: str) -> None:
        self._key = RSAKey.import_key(pem)

    async def verification_key(self, kid: str) -> tuple[str, RSAKey]:
        return "RS256", self._key


class JoseTokenVerifier:
    """The SDK's `TokenVerifier` protocol over authgate's joserfc verification."""

    def __init__(self, pem: str, issuer: str, audience: str) -> None:
        self._keys, self._issuer, self._audience = _OneKey(pem), issuer, audience

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await access_tokens.verify(
                token,
                self._keys,  # type: ignore[arg-type]
                issuer=self._issuer,
                audience=self._audience,
                now=time.time(),
            )
        except InvalidToken:
            return None
        return AccessToken(
            token=token,
            client_id=claims.client_id,
            scopes=list(claims.scopes),
            expires_at=claims.expires_at,
            resource=self._audience,
            subject=claims.subject,
        )


def bearer_app(pem: str, issuer: str, audience: str) -> Any:
    server = MCPServer(
        "bench",
        token_verifier=JoseTokenVerifier(pem, issuer, audience),
        auth=AuthSettings(
            issuer_url=AnyHttpUrl(issuer), resource_server_url=AnyHttpUrl(audience), required_scopes=["mcp"]
        ),
    )

    @server.tool()
    def echo(text: str) -> str:
        return text

    return server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


class InMemoryProvider:
    """A minimal `OAuthAuthorizationServerProvider`: everything in dicts, forever (a baseline)."""

    def __init__(self) -> None:
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.access: dict[str, AccessToken] = {}

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self.clients[client_info.client_id] = client_info

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        assert client.client_id is not None
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or [],
            expires_at=time.time() + 300,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
        )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        code = self.codes.get(authorization_code)
        return code if code is not None and code.client_id == client.client_id else None

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        if self.codes.pop(authorization_code.code, None) is None:
            raise TokenError("invalid_grant", "authorization code already used")
        return self._tokens(authorization_code.client_id, authorization_code.scopes, authorization_code.resource)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        token = self.refresh.get(refresh_token)
        return token if token is not None and token.client_id == client.client_id else None

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        if self.refresh.pop(refresh_token.token, None) is None:
            raise TokenError("invalid_grant", "refresh token already used")
        return self._tokens(refresh_token.client_id, scopes or refresh_token.scopes, refresh_token.resource)

    def _tokens(self, client_id: str, scopes: list[str], resource: str | None) -> OAuthToken:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = int(time.time()) + TTL
        self.access[access] = AccessToken(
            token=access, client_id=client_id, scopes=scopes, expires_at=expires, resource=resource
        )
        self.refresh[refresh] = RefreshToken(token=refresh, client_id=client_id, scopes=scopes, resource=resource)
        return OAuthToken(access_token=access, expires_in=TTL, refresh_token=refresh, scope=" ".join(scopes) or None)

    async def load_access_token(self, token: str) -> AccessToken | None:
        return self.access.get(token)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)


def as_app(port: int) -> Any:
    from mcp.server.auth.routes import create_auth_routes
    from starlette.applications import Starlette

    routes = create_auth_routes(
        InMemoryProvider(),  # type: ignore[arg-type]
        issuer_url=AnyHttpUrl(f"http://127.0.0.1:{port}"),
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=["mcp"], default_scopes=["mcp"]
        ),
        revocation_options=RevocationOptions(enabled=True),
    )
    return Starlette(routes=routes)


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.WARNING)  # the SDK's INFO logging halves throughput
    if kind == "bearer":
        app = bearer_app(Path(sys.argv[3]).read_text(), sys.argv[4], sys.argv[5])
    elif kind == "as":
        app = as_app(port)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    if os.environ.get("BENCH_GC", "tuned") != "default":  # as authgate serve does (gc_tuning), for all
        from authgate.server.heap import settle_after_startup

        settle_after_startup()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
