"""From an MCP server's URL (and its 401 challenge) to its authorization server's metadata.

MCP 2025-11-25 / 2026-07-28 authorization, "Authorization Server Discovery": the PRM URL of
the challenge, else the path-inserted then the root well-known URL (RFC 9728 §3.1); the PRM's
`resource` must name the server (RFC 9728 §3.3); then the AS's metadata at the spec's ordered
well-known URLs (RFC 8414 §3.1 path insertion, OIDC Discovery both ways), whose `issuer` must be
exactly the issuer the URL was built from (RFC 8414 §3.3). A server without PRM is a 2025-03-26
one only when the caller says so: its origin is then the AS, with the default endpoints if it
has no metadata either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authgate.errors import FetchError
from authgate.outbound.challenge import Challenge
from authgate.outbound.errors import OutboundAuthError

GetJson = Callable[[str, str], Awaitable[Any]]
"""`(url, what) -> parsed JSON` of a 200 answer; raises `FetchError` for anything else."""
UrlCheck = Callable[[str], "str | None"]
"""Why a URL a remote advertised may not be used (scheme, host), or None."""

_PRM = "/.well-known/oauth-protected-resource"
_OAUTH = "/.well-known/oauth-authorization-server"
_OIDC = "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class AuthServer:
    """An authorization server's metadata, validated: what the flow needs of it."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    scopes_supported: tuple[str, ...] | None = None
    auth_methods: tuple[str, ...] = ("client_secret_basic",)  # RFC 8414 §2 default
    cimd_supported: bool = False
    iss_parameter_supported: bool = False
    revocation_endpoint: str | None = None  # RFC 7009, RFC 8414 §2 (a connection revoked there too)


@dataclass(frozen=True, slots=True)
class Discovery:
    """Where a server sends its clients: the resource to ask a token for and the AS."""

    resource: str | None  # None: no PRM (2025-03-26 server): no `resource` parameter is sent
    auth_server: AuthServer
    scopes_supported: tuple[str, ...] | None = None  # the PRM's
    tried: tuple[str, ...] = field(default=())  # every URL fetched, in order


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


def prm_urls(server_url: str, challenge: Challenge) -> list[str]:
    """The PRM URLs to try, in the spec's order."""
    origin, path = _split(server_url)
    urls = [challenge.resource_metadata] if challenge.resource_metadata else []
    if path:
        urls.append(f"{origin}{_PRM}{path}")
    urls.append(f"{origin}{_PRM}")
    return urls


def as_metadata_urls(issuer: str) -> list[str]:
    """The AS metadata URLs to try for `issuer`, in the spec's order."""
    origin, path = _split(issuer)
    if not path:
        return [f"{origin}{_OAUTH}", f"{origin}{_OIDC}"]
    return [f"{origin}{_OAUTH}{path}", f"{origin}{_OIDC}{path}", f"{origin}{path}{_OIDC}"]


def _origin_and_port(url: str) -> tuple[str, str, int | None, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port, parts.path or "/"


def resource_problem(resource: Any, server_url: str) -> str | None:
    """Why a PRM's `resource` does not name `server_url` (RFC 9728 §3.3), or None. It may be
    the server URL or a prefix of it on the same origin, at a path-segment boundary."""
    if not isinstance(resource, str) or not resource:
        return "has no resource"
    have, want = _origin_and_port(resource), _origin_and_port(server_url)
    if have[:3] != want[:3]:
        return f"names resource {resource[:200]!r}, not this server {server_url[:200]!r}"
    prefix = have[3].rstrip("/")
    if want[3] != have[3] and not (want[3] + "/").startswith(prefix + "/"):
        return f"names resource {resource[:200]!r}, not this server {server_url[:200]!r}"
    return None


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def auth_server_from(document: Any, issuer: str, check: UrlCheck) -> AuthServer:
    """Validate AS metadata fetched for `issuer` (RFC 8414 §3.3, MCP: PKCE S256 must be listed)."""
    if not isinstance(document, dict):
        raise OutboundAuthError(f"AS metadata for {issuer[:200]} is not a JSON object")
    if document.get("issuer") != issuer:  # exact string comparison, no normalization
        raise OutboundAuthError(
            f"AS metadata issuer {str(document.get('issuer'))[:200]!r} is not {issuer[:200]!r}, "
            "the issuer its URL was built from (RFC 8414 §3.3): refused"
        )
    if "S256" not in (_strings(document.get("code_challenge_methods_supported")) or ()):
        raise OutboundAuthError(f"AS {issuer[:200]} does not list PKCE S256 in code_challenge_methods_supported")
    endpoints: dict[str, str | None] = {}
    for name in ("authorization_endpoint", "token_endpoint", "registration_endpoint"):
        value = document.get(name)
        if value is None and name == "registration_endpoint":
            endpoints[name] = None
            continue
        if not isinstance(value, str) or (problem := check(value)):
            raise OutboundAuthError(f"AS {issuer[:200]}: {name} {str(value)[:200]!r} {problem or 'is missing'}")
        endpoints[name] = value
    return AuthServer(
        issuer=issuer,
        authorization_endpoint=str(endpoints["authorization_endpoint"]),
        token_endpoint=str(endpoints["token_endpoint"]),
        registration_endpoint=endpoints["registration_endpoint"],
        scopes_supported=_strings(document.get("scopes_supported")),
        auth_methods=_strings(document.get("token_endpoint_auth_methods_supported")) or ("client_secret_basic",),
        cimd_supported=document.get("client_id_metadata_document_supported") is True,
        iss_parameter_supported=document.get("authorization_response_iss_parameter_supported") is True,
        revocation_endpoint=_checked_optional(document.get("revocation_endpoint"), check),
    )


def _checked_optional(value: Any, check: UrlCheck) -> str | None:
    """An optional endpoint: kept when it is a URL authgate may call, else dropped."""
    return value if isinstance(value, str) and len(value) <= 2048 and check(value) is None else None


async def _first(
    urls: Sequence[str], what: str, get_json: GetJson, tried: list[str], why: list[str] | None = None
) -> tuple[str, Any] | None:
    """The first URL that answers a JSON document (a 404 or a refusal moves on to the next);
    each failure's reason goes to `why`, so that the error can name the last one."""
    for url in urls:
        tried.append(url)
        try:
            return url, await get_json(url, what)
        except FetchError as exc:
            if why is not None:
                why.append(str(exc)[:300])
            continue
    return None


def _last(why: list[str]) -> str:
    return f" (last: {why[-1]})" if why else ""


async def discover(
    server_url: str, challenge: Challenge, get_json: GetJson, check: UrlCheck, *, legacy: bool = False
) -> Discovery:
    """PRM, then the AS it names (the first one), both validated."""
    tried: list[str] = []
    why: list[str] = []  # e.g. an address the SSRF guard refused: named in the error
    found = await _first(prm_urls(server_url, challenge), "protected resource metadata", get_json, tried, why)
    if found is None:
        if legacy:
            return await _legacy(server_url, get_json, check, tried)
        raise OutboundAuthError(
            f"{server_url[:200]} publishes no protected resource metadata (tried {len(tried)} URLs){_last(why)}"
        )
    url, prm = found
    if not isinstance(prm, dict):
        raise OutboundAuthError(f"protected resource metadata {url[:200]} is not a JSON object")
    if problem := resource_problem(prm.get("resource"), server_url):
        raise OutboundAuthError(f"protected resource metadata {url[:200]} {problem}: refused (RFC 9728 §3.3)")
    servers = _strings(prm.get("authorization_servers")) or ()
    if not servers:
        raise OutboundAuthError(f"protected resource metadata {url[:200]} names no authorization server")
    issuer = servers[0]
    if problem := check(issuer):
        raise OutboundAuthError(f"authorization server {issuer[:200]} {problem}")
    document = await _first(as_metadata_urls(issuer), "AS metadata", get_json, tried, why)
    if document is None:
        raise OutboundAuthError(f"authorization server {issuer[:200]} publishes no metadata{_last(why)}")
    return Discovery(
        resource=str(prm["resource"]),
        auth_server=auth_server_from(document[1], issuer, check),
        scopes_supported=_strings(prm.get("scopes_supported")),
        tried=tuple(tried),
    )


async def _legacy(server_url: str, get_json: GetJson, check: UrlCheck, tried: list[str]) -> Discovery:
    """MCP 2025-03-26: the server's origin is the AS; without metadata, its default endpoints."""
    origin, _ = _split(server_url)
    found = await _first([f"{origin}{_OAUTH}"], "AS metadata", get_json, tried)
    if found is not None:
        return Discovery(None, auth_server_from(found[1], origin, check), tried=tuple(tried))
    fallback = AuthServer(
        issuer=origin,
        authorization_endpoint=f"{origin}/authorize",
        token_endpoint=f"{origin}/token",
        registration_endpoint=f"{origin}/register",
        auth_methods=("client_secret_basic", "client_secret_post", "none"),
    )
    return Discovery(None, fallback, tried=tuple(tried))
