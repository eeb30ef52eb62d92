"""What a CIMD client_id, every URL fetched for it, and the document it names must be.

draft-ietf-oauth-client-id-metadata-document: the client_id is an https URL with a path and
no fragment, dot segments or user information; the document is a JSON object whose client_id
equals that URL, with no shared secret and redirect URIs that pass DCR's own rules.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlsplit

from authgate.errors import InvalidClientMetadata, InvalidRedirectUri
from authgate.oauth.cimd.policy import CimdPolicy
from authgate.oauth.redirect_uris import validate_for_registration

_SECRET_AUTH_METHODS = frozenset({"client_secret_post", "client_secret_basic", "client_secret_jwt"})
_ALLOWED_AUTH_METHODS = frozenset({"none", "private_key_jwt"})


def client_id_problem(client_id: str, policy: CimdPolicy) -> str | None:
    """Why `client_id` is not a CIMD URL (CIMD: client identifier), or None if it is."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in client_id):
        return "contains whitespace or control characters"
    if "#" in client_id:
        return "has a fragment"
    if problem := fetch_url_problem(client_id, policy):
        return problem
    path = urlsplit(client_id).path
    if path in ("", "/"):
        return "has no path component"
    segments = path.lower().replace("%2e", ".").split("/")
    return "has dot segments in its path" if "." in segments or ".." in segments else None


def fetch_url_problem(url: str, policy: CimdPolicy) -> str | None:
    """Rules for every URL we fetch: the client_id and each redirect target alike."""
    import httpx  # here, not at start: only a URL client_id (CIMD) gets this far

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        return "is not a valid URL"
    allowed = ("https", "http") if policy.allow_loopback_http else ("https",)
    if parts.scheme.lower() not in allowed:
        return "is not https"
    if not parts.hostname:
        return "has no host"
    return "contains user information" if "@" in parts.netloc else None


def is_cimd_client_id(client_id: str, policy: CimdPolicy | None = None) -> bool:
    """Cheap syntactic test: should this client_id be resolved as a metadata document?"""
    if not client_id[:8].lower().startswith(("https://", "http://")):
        return False  # a registered client's id, the common case: no URL parsing (~11 µs)
    return client_id_problem(client_id, policy or CimdPolicy()) is None


def parse_json(body: bytes, where: str) -> Any:
    # Content-Type is tolerated loosely (not enforced); the body must still be JSON.
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidClientMetadata(f"{where}: is not valid JSON ({type(exc).__name__})") from None


def validate_metadata(document: Any, client_id: str) -> dict[str, Any]:
    """Check a fetched document (CIMD: client metadata); return a copy with defaults filled in."""
    where = f"CIMD document {client_id}"
    if not isinstance(document, dict):
        raise InvalidClientMetadata(f"{where}: is not a JSON object")
    if document.get("client_id") != client_id:  # simple string comparison, RFC 3986 §6.2.1
        raise InvalidClientMetadata(f"{where}: its client_id does not equal the document URL")
    # CIMD: no shared secret can exist, so no secret and no secret-based auth method
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise InvalidClientMetadata(f"{where}: must not contain a client secret")
    method = document.get("token_endpoint_auth_method", "none")
    if method in _SECRET_AUTH_METHODS:
        raise InvalidClientMetadata(f"{where}: shared-secret auth method '{method}' is not allowed")
    if method not in _ALLOWED_AUTH_METHODS:
        raise InvalidClientMetadata(f"{where}: token_endpoint_auth_method must be none or private_key_jwt")
    if method == "private_key_jwt" and not (document.get("jwks_uri") or document.get("jwks")):
        raise InvalidClientMetadata(f"{where}: private_key_jwt needs jwks_uri or jwks")
    if "jwks_uri" in document and "jwks" in document:  # RFC 7591 §2
        raise InvalidClientMetadata(f"{where}: jwks_uri and jwks must not both be present")
    _check_redirect_uris(document, where)
    for key in ("grant_types", "response_types"):
        if key in document and not _is_str_list(document[key]):
            raise InvalidClientMetadata(f"{where}: {key} must be a list of strings")
    return copy.deepcopy(document) | {"token_endpoint_auth_method": method}


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_redirect_uris(document: dict[str, Any], where: str) -> None:
    """Non-empty; each URI obeys the same rules as at DCR registration (RFC 7591 §2)."""
    uris = document.get("redirect_uris")
    if not _is_str_list(uris) or not uris:
        raise InvalidClientMetadata(f"{where}: redirect_uris must be a non-empty list of strings")
    app_type = document.get("application_type", "web")
    for uri in uris:
        try:
            validate_for_registration(uri, app_type if isinstance(app_type, str) else "web")
        except InvalidRedirectUri as exc:
            raise InvalidClientMetadata(f"{where}: {exc.description}") from None
