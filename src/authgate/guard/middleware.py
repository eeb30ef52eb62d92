"""Pure ASGI middleware in front of the MCP app (never BaseHTTPMiddleware: it breaks
streaming). `OriginGuard` refuses foreign browsers and DNS-rebound hosts; `BearerGuard`
demands a valid access token and hands the identity on."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from authgate.config.urls import is_loopback_host
from authgate.error_responses import oauth_error
from authgate.errors import InvalidToken, OAuthError, TemporarilyUnavailable
from authgate.guard.challenge import bearer_challenge
from authgate.guard.identity import SCOPE_KEY, Identity
from authgate.guard.sdk_user import SdkUsers
from authgate.guard.verifier import TokenVerifier
from authgate.observe import note


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_json(send: Send, status: int, body: Mapping[str, object], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_key(value: str) -> tuple[str, str, int] | None:
    """An RFC 6454 origin as (scheme, host, port), the default port filled in; None when the
    value is not an http(s) origin (`null`, a path, userinfo, a bad port or IPv6 literal)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or "@" in parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return None
    return parts.scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS[parts.scheme]


def host_name(value: str) -> str | None:
    """The host of a `Host` header (RFC 9110 §7.2), lowercased, IPv6 without brackets, the
    port dropped; None when malformed."""
    try:
        parts = urlsplit("//" + value.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if not parts.hostname or "@" in parts.netloc or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname


class OriginGuard:
    """MCP transport security (2025-11-25): a present, non-allowlisted Origin gets 403; a Host
    that is neither the public host nor loopback gets 421 (DNS rebinding). Both are parsed as
    URLs, so `http://[::1]` and `http://[::1]:80` are one origin and a malformed value is
    refused, never guessed at."""

    def __init__(self, app: ASGIApp, *, public_host: str, allowed_origins: Iterable[str]) -> None:
        self.app = app
        self.public_host = host_name(public_host) or public_host.lower()
        keys = [(o, origin_key(o)) for o in allowed_origins]
        self.any_origin = any(o == "*" for o, _ in keys)
        self.allowed = {k for _, k in keys if k is not None}
        self.loopback_origins = is_loopback_host(self.public_host)

    def _origin_ok(self, origin: str) -> bool:
        if self.any_origin:
            return True
        key = origin_key(origin)
        if key is None:
            return False
        return key in self.allowed or (self.loopback_origins and key[0] == "http" and is_loopback_host(key[1]))

    def _host_ok(self, host: str) -> bool:
        name = host_name(host)
        return name is not None and (name == self.public_host or is_loopback_host(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is not None and not self._origin_ok(origin):
            await _send_json(
                send,
                403,
                {
                    "error": "forbidden_origin",
                    "error_description": f"Origin {origin} is not allowed; add it to allowed_origins",
                },
                [],
            )
            return
        host = _header(scope, b"host") or ""
        if not self._host_ok(host):
            await _send_json(
                send,
                421,
                {"error": "misdirected_request", "error_description": f"Host {host} is not this server's public host"},
                [],
            )
            return
        await self.app(scope, receive, send)


# Given a request without a token: a `receive` replaying its body if the policy lets it through.
AnonymousHook = Callable[[Scope, Receive], Awaitable[Receive | None]]


class BearerGuard:
    """RFC 6750 bearer check; 401 with a RFC 9728 challenge when missing or invalid, 403
    `insufficient_scope` when the token holds none of the scopes this resource offers.
    (Per-operation scopes are the policy layer's job, above this one.)"""

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        resource_metadata: str,
        scopes: tuple[str, ...],
        anonymous: AnonymousHook | None = None,
        sdk_user: bool = True,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.resource_metadata = resource_metadata
        self.scopes = scopes
        self._sdk_users = SdkUsers() if sdk_user else None  # the SDK's request.user, for SDK apps
        self.anonymous = anonymous  # the policy layer's say on requests without a token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)  # CORS preflight carries no token
            return
        authz = _header(scope, b"authorization")
        if not authz or not authz[:7].lower() == "bearer " or not authz[7:].strip():
            replay = await self.anonymous(scope, receive) if self.anonymous is not None else None
            if replay is not None:  # an operation the policy allows without a token (no identity)
                await self.app(scope, replay, send)
                return
            await self._challenge(send, 401, None, "no bearer token" if not authz else "not a bearer token")
            return
        try:
            identity = await self.verifier.verify(authz[7:].strip())
        except TemporarilyUnavailable as exc:
            # The token could not be checked (the IdP is unreachable): no challenge, or the
            # client would start a sign-in that cannot help.
            await oauth_error(exc)(scope, receive, send)  # 503 with its Retry-After
            return
        except OAuthError as exc:
            await self._challenge(send, 401, InvalidToken.error, exc.description)
            return
        if self.scopes and not set(self.scopes) & set(identity.scopes):
            # MCP 2025-11-25 scope challenge: name what is needed plus what is already held
            await self._challenge(
                send,
                403,
                "insufficient_scope",
                f"token holds none of the scopes {' '.join(self.scopes)}",
                scopes=tuple(dict.fromkeys((*self.scopes, *identity.scopes))),
            )
            return
        note(scope, subject=identity.subject, client_id=identity.client_id)
        await self.app(self._with_identity(scope, identity), receive, send)

    def _with_identity(self, scope: Scope, identity: Identity) -> Scope:
        if self._sdk_users is None:
            return {**scope, SCOPE_KEY: identity}
        return {**scope, SCOPE_KEY: identity, **self._sdk_users.view(identity)}

    async def _challenge(
        self, send: Send, status: int, error: str | None, description: str, scopes: tuple[str, ...] | None = None
    ) -> None:
        challenge = bearer_challenge(
            resource_metadata=self.resource_metadata,
            scopes=scopes if scopes is not None else self.scopes,
            error=error,
            description=description,
        )
        body = {"error": error or "unauthorized", "error_description": description}
        await _send_json(send, status, body, [(b"www-authenticate", challenge.encode())])
