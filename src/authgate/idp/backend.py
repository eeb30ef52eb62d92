"""External mode assembled: what `AuthgateApp` serves and verifies with when an IdP issues the
tokens (`auth_mode = "external"`).

No store, no signing keys, no pages: authgate serves the protected resource metadata (naming
the IdP's issuer), health checks and — only with `mirror_as_metadata` — a mirror of the IdP's
metadata. /authorize, /token, /register, /revoke and the rest answer 404.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate._version import __version__
from authgate.config.settings import Settings
from authgate.error_responses import oauth_error
from authgate.errors import FetchError, TemporarilyUnavailable
from authgate.guard.prm import protected_resource_metadata
from authgate.idp.claims import TokenPolicy
from authgate.idp.discovery import discover
from authgate.idp.introspection import IntrospectionClient, IntrospectionVerifier
from authgate.idp.jwks import JwksCache
from authgate.idp.mirror import MetadataMirror
from authgate.idp.profiles import get_profile
from authgate.idp.scopes import missing_scopes, scope_fix
from authgate.idp.verifier import ExternalJwtVerifier

log = logging.getLogger("authgate.idp")

Handler = Callable[[Request], Awaitable[Response]]
UpstreamReady = Callable[[], Awaitable[tuple[bool, str]]]  # the gateway's upstream check
HTTP_TIMEOUT = 5.0
_PUBLIC = {"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}


def served_routes(settings: Settings) -> frozenset[str]:
    """Route names `AuthgateApp` serves in external mode."""
    names = {"prm", "health", "ready"}
    if settings.mirror_as_metadata:
        names.add("as_metadata")
    return frozenset(names)


def token_policy(settings: Settings) -> TokenPolicy:
    profile = get_profile(settings.idp_profile)
    require_typ = profile.sets_at_jwt_typ if settings.jwt_require_typ is None else settings.jwt_require_typ
    assert settings.issuer is not None  # validated: external mode has an issuer
    return TokenPolicy(
        issuer=settings.issuer,
        audiences=tuple(settings.audiences or [settings.urls.resource]),
        profile=profile,
        require_at_jwt_typ=require_typ,
        algorithms=tuple(settings.jwt_algorithms),
    )


@dataclass(slots=True)
class ExternalBackend:
    settings: Settings
    jwks: JwksCache
    verifier: ExternalJwtVerifier
    mirror: MetadataMirror | None
    upstream_ready: UpstreamReady | None = None

    def handlers(self) -> dict[str, Handler]:
        found: dict[str, Handler] = {"prm": self.prm, "health": self.health, "ready": self.ready}
        if self.mirror is not None:
            found["as_metadata"] = self.as_metadata
        return found

    async def prm(self, request: Request) -> Response:
        return JSONResponse(protected_resource_metadata(self.settings), headers=_PUBLIC)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """Ready when the IdP's keys are held (possibly cached from before an IdP outage)."""
        if not self.jwks.loaded:
            await self.jwks.refresh()
        if not self.jwks.loaded:
            return JSONResponse(
                {"status": "unavailable", "idp": self.jwks.last_error},
                status_code=503,
                headers={"Retry-After": str(self.jwks.retry_after())},
            )
        body = {"status": "ready", "idp": "ok" if self.jwks.last_error is None else "unreachable; using cached keys"}
        if self.upstream_ready is not None:
            ok, body["upstream"] = await self.upstream_ready()
            if not ok:
                return JSONResponse({**body, "status": "unavailable"}, status_code=503)
        return JSONResponse(body)

    async def as_metadata(self, request: Request) -> Response:
        assert self.mirror is not None
        try:
            document = await self.mirror.document()
        except TemporarilyUnavailable as exc:
            return oauth_error(exc)  # 503 with its Retry-After
        return JSONResponse(document, headers=_PUBLIC)


def _introspection(settings: Settings, policy: TokenPolicy, http: httpx.AsyncClient) -> IntrospectionVerifier | None:
    if not settings.introspection_endpoint:
        return None
    secret = settings.introspection_client_secret
    client = IntrospectionClient(
        settings.introspection_endpoint,
        settings.introspection_client_id or "",
        secret.get_secret_value() if secret is not None else "",
    )
    return IntrospectionVerifier(client, policy, http, cache_seconds=float(settings.token_cache_seconds))


async def warn_unknown_scopes(settings: Settings, policy: TokenPolicy, http: httpx.AsyncClient) -> list[str]:
    """At start: warn (naming the setting and the fix) when an advertised scope is not in the IdP's
    `scopes_supported`. Returns the missing scopes; an unreachable IdP or no list: nothing to say."""
    try:
        document = (await discover(http, policy.issuer)).document or {}
    except FetchError:
        return []  # the JWKS warning already says the IdP cannot be reached
    missing = missing_scopes(settings.scopes, document) or []
    if missing:
        log.warning(
            "scope(s) %s advertised by authgate (setting `scopes`) are not in the scopes_supported of %s: MCP "
            "clients asking for them will be refused at the IdP's registration or authorization. Fix: %s",
            ", ".join(missing),
            policy.issuer,
            scope_fix(policy.profile, missing),
        )
    return missing


@contextlib.asynccontextmanager
async def open_external(
    settings: Settings, *, upstream_ready: UpstreamReady | None = None
) -> AsyncIterator[ExternalBackend]:
    """The verifier and handlers of external mode, with one HTTP client to the IdP for their life."""
    policy = token_policy(settings)
    async with httpx.AsyncClient(
        timeout=HTTP_TIMEOUT, follow_redirects=False, headers={"User-Agent": f"authgate/{__version__}"}
    ) as http:
        jwks = JwksCache(policy.issuer, http, min_refetch=float(settings.jwks_refetch_seconds))
        verifier = ExternalJwtVerifier(policy, jwks, opaque=_introspection(settings, policy, http))
        mirror = MetadataMirror(policy.issuer, settings.urls.issuer, http) if settings.mirror_as_metadata else None
        if not await jwks.refresh():  # early word of a wrong issuer; start anyway, keys come later
            log.warning("the signing keys of %s are not available yet: %s", policy.issuer, jwks.last_error)
        else:
            await warn_unknown_scopes(settings, policy, http)
        yield ExternalBackend(settings, jwks, verifier, mirror, upstream_ready)
