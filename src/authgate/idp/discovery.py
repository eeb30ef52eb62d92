"""Finding an authorization server's metadata: OIDC discovery and RFC 8414.

Since MCP 2025-11-25, clients try, for an issuer with a path, RFC 8414 path insertion
(`/.well-known/oauth-authorization-server/<path>`), then OIDC with insertion
(`/.well-known/openid-configuration/<path>`), then OIDC appended (`<issuer>/.well-known/
openid-configuration`, OIDC Discovery §4). A document counts only if its `issuer` equals the
issuer it was fetched for, exactly (RFC 8414 §3.3, OIDC Discovery §4.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx

from authgate.config.urls import insert_well_known
from authgate.errors import FetchError, Unreachable
from authgate.httpx_errors import translated

Kind = Literal["rfc8414", "oidc"]
MAX_DOCUMENT_BYTES = 256 * 1024


def rfc8414_url(issuer: str) -> str:
    """RFC 8414 §3.1: insert the well-known segment; a terminating '/' is removed first."""
    return insert_well_known(issuer, "oauth-authorization-server")


def oidc_urls(issuer: str) -> list[str]:
    """OIDC Discovery §4 (appended), then the insertion form MCP 2025-11-25 clients also try."""
    appended = issuer.rstrip("/") + "/.well-known/openid-configuration"
    inserted = insert_well_known(issuer, "openid-configuration")
    return [appended] if inserted == appended else [appended, inserted]


def candidate_urls(issuer: str) -> list[tuple[Kind, str]]:
    return [("rfc8414", rfc8414_url(issuer)), *(("oidc", u) for u in oidc_urls(issuer))]


@dataclass(frozen=True, slots=True)
class Fetched:
    """One well-known URL and what it answered: a JSON object, or why not."""

    kind: Kind
    url: str
    status: int | None  # None: no HTTP answer at all
    document: dict[str, Any] | None
    error: str | None

    @property
    def issuer(self) -> str | None:
        value = (self.document or {}).get("issuer")
        return value if isinstance(value, str) else None


async def fetch_json(http: httpx.AsyncClient, url: str) -> tuple[int | None, dict[str, Any] | None, str | None]:
    """GET a JSON object: (status, document, error)."""
    try:
        with translated(f"GET {url}"):
            response = await http.get(url, headers={"Accept": "application/json"})
    except Unreachable as exc:
        return None, None, f"unreachable: {exc.kind}: {exc.detail}"
    if response.status_code != 200:
        return response.status_code, None, f"HTTP {response.status_code}"
    if len(response.content) > MAX_DOCUMENT_BYTES:
        return 200, None, "document larger than 256 KiB"
    try:
        body = response.json()
    except ValueError:
        return 200, None, "not JSON"
    if not isinstance(body, dict):
        return 200, None, "not a JSON object"
    return 200, body, None


async def fetch_document(http: httpx.AsyncClient, kind: Kind, url: str) -> Fetched:
    status, document, error = await fetch_json(http, url)
    return Fetched(kind, url, status, document, error)


async def fetch_all(http: httpx.AsyncClient, issuer: str) -> list[Fetched]:
    """Every candidate document, in the order MCP clients try them."""
    return [await fetch_document(http, kind, url) for kind, url in candidate_urls(issuer)]


async def discover(http: httpx.AsyncClient, issuer: str) -> Fetched:
    """The first document whose `issuer` is exactly `issuer`. FetchError says what was found
    instead: nothing reachable (the IdP is down), or documents naming another issuer."""
    seen: list[str] = []
    unreachable = True
    for kind, url in candidate_urls(issuer):
        found = await fetch_document(http, kind, url)
        if found.status is not None:
            unreachable = False
        if found.document is None:
            seen.append(f"{url}: {found.error}")
            continue
        if found.issuer == issuer:
            return found
        seen.append(f"{url}: names issuer {found.issuer!r}")
    detail = "; ".join(seen)
    if unreachable:
        raise FetchError(f"the identity provider {issuer} is unreachable ({detail})")
    raise FetchError(
        f"no discovery document of {issuer} names that issuer exactly ({detail}); "
        "set `issuer` to the document's issuer value"
    )
