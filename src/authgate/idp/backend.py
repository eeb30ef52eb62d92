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
from dataclasses import dataclass, replace

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate._version import __version__
from authgate.config.settings import Settings
from authgate.error_responses import oauth_error
from authgate.errors import ConfigError, FetchError, SettingProblem, TemporarilyUnavailable
from authgate.guard.prm import protected_resource_metadata
from authgate.idp.claims import TokenPolicy
from authgate.idp.discovery import discover
from authgate.idp.introspection import IntrospectionClient, IntrospectionVerifier
from authgate.idp.jwks import JwksCache
from authgate.idp.mirror import MetadataMirror
from authgate.idp.profiles import get_profile
from authgate.idp.scopes import scope_problem
from authgate.idp.verifier import ExternalJwtVerifier

log = logging.getLogger("authgate.idp")

Handler = Callable[[Request], Awaitable[Response]]
UpstreamReady = Callable[[], Awaitable[tuple[bool, str]]]  # the gateway's upstream check
HTTP_TIMEOUT = 5.0
UNREACHABLE_FIX = (
    "check that `issuer` is the IdP's issuer exactly and that authgate can reach it; "
    "without `strict` authgate starts anyway and fetches the keys when the first token comes"
)
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


async def unknown_scopes(settings: Settings, policy: TokenPolicy, http: httpx.AsyncClient) -> SettingProblem | None:
    """At start: the advertised scopes (setting `scopes`) not in the IdP's `scopes_supported`, as the
    problem to warn about (or, with `strict`, to refuse). An unreachable IdP or no list: nothing to say."""
    try:
        document = (await discover(http, policy.issuer)).document or {}
    except FetchError:
        return None  # the keys' warning already says the IdP cannot be reached
    return scope_problem(settings.scopes, policy.issuer, policy.profile, document)


def blanket_audience(policy: TokenPolicy) -> SettingProblem | None:
    """An accepted audience every token of the IdP carries (Keycloak's `account`): no audience check."""
    blanket = [a for a in policy.audiences if a in policy.profile.blanket_audiences]
    if not blanket:
        return None
    return SettingProblem(
        "audiences",
        f"{', '.join(blanket)} is in every {policy.profile.title} token's aud: accepting it accepts any token "
        "of the realm, for any client or resource",
        f"remove {', '.join(blanket)} from `audiences` and give the MCP URL an audience mapper at the IdP "
        "(docs/idp/keycloak.md, keycloak-audience)",
    )


async def check_idp_at_start(settings: Settings, policy: TokenPolicy, jwks: JwksCache, http: httpx.AsyncClient) -> None:
    """Check the audiences, fetch the IdP's keys and check its scopes: warnings, or with `strict` a
    ConfigError naming each setting and its fix (`authgate serve --strict` exits 2 before it listens)."""
    found = [blanket_audience(policy)]
    if not await jwks.refresh(quiet=True):  # early word of a wrong issuer; start anyway, keys come later
        found.append(
            SettingProblem(
                "issuer",
                f"the signing keys of {policy.issuer} are not available yet: {jwks.last_error}",
                UNREACHABLE_FIX,
            )
        )
    else:
        found.append(await unknown_scopes(settings, policy, http))
    problems = [p for p in found if p is not None]
    if problems and settings.strict:
        raise ConfigError.of([replace(p, problem=f"{p.problem} (refused: `strict` is on)") for p in problems])
    for p in problems:
        log.warning("%s", p.problem if p.setting == "issuer" else f"{p.problem}. Fix: {p.fix}")


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
        await check_idp_at_start(settings, policy, jwks, http)
        yield ExternalBackend(settings, jwks, verifier, mirror, upstream_ready)
