"""Which client id authgate uses at an authorization server.

MCP 2025-11-25 / 2026-07-28 authorization, "Client Registration Approaches", in its order: a
client pre-configured for that issuer; else a Client ID Metadata Document URL when the AS
advertises `client_id_metadata_document_supported` and authgate has an HTTPS URL for its
document; else Dynamic Client Registration (RFC 7591). Registrations are per issuer: one AS's
client id is never shown to another (RFC 6749 §2.2).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authgate.outbound.discovery import AuthServer
from authgate.outbound.errors import OutboundAuthError

PostJson = Callable[[str, dict[str, Any], str], Awaitable[tuple[int, bytes]]]
"""`(url, body, what) -> (status, body)`: a JSON POST through the guarded fetcher."""

# authgate keeps a secret better than a public client would: a secret method first
_PREFERRED = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True, slots=True)
class Credentials:
    """A client at one AS: its id, its secret if any, and how it authenticates at /token."""

    client_id: str
    client_secret: str | None = None
    auth_method: str = "none"  # none | client_secret_basic | client_secret_post


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """What authgate says about itself as a client."""

    redirect_uri: str
    client_name: str = "authgate"
    cimd_url: str | None = None  # HTTPS URL of authgate's own client metadata document


def _method_for(server: AuthServer, has_secret: bool) -> str:
    usable = _PREFERRED if has_secret else ("none",)
    return next((m for m in usable if m in server.auth_methods), usable[0])


def preconfigured(server: AuthServer, client_id: str, client_secret: str | None) -> Credentials:
    """A configured client, with the auth method the AS lists that fits it."""
    return Credentials(client_id, client_secret, _method_for(server, client_secret is not None))


def _application_type(redirect_uri: str) -> str:
    host = (urlsplit(redirect_uri).hostname or "").lower()
    return "native" if host in ("localhost", "127.0.0.1", "::1") else "web"


async def obtain(server: AuthServer, profile: ClientProfile, post_json: PostJson) -> Credentials:
    """CIMD if the AS takes it, else DCR; an AS with neither needs a configured client."""
    if server.cimd_supported and profile.cimd_url:
        return Credentials(profile.cimd_url)  # CIMD: a public client, `none` at /token
    if server.registration_endpoint is None:
        raise OutboundAuthError(
            f"AS {server.issuer[:200]} offers neither CIMD nor dynamic registration: configure a client for it"
        )
    method = next((m for m in _PREFERRED if m in server.auth_methods), "client_secret_basic")
    request = {
        "client_name": profile.client_name,
        "redirect_uris": [profile.redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "application_type": _application_type(profile.redirect_uri),  # MCP 2026-07-28 (SEP-837)
    }
    status, body = await post_json(server.registration_endpoint, request, "client registration")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status not in (200, 201) or not isinstance(answer, dict) or not isinstance(answer.get("client_id"), str):
        code = answer.get("error") if isinstance(answer, dict) else None
        raise OutboundAuthError(f"registration at {server.issuer[:200]} failed: HTTP {status}", error=code)
    secret = answer.get("client_secret") if isinstance(answer.get("client_secret"), str) else None
    granted = answer.get("token_endpoint_auth_method")
    if not isinstance(granted, str) or granted not in _PREFERRED:
        granted = method if secret else "none"
    return Credentials(answer["client_id"], secret, granted)
