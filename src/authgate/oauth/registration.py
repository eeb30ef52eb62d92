"""Dynamic client registration (RFC 7591): validate metadata, mint the client."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from authgate.errors import InvalidClientMetadata, InvalidRedirectUri
from authgate.oauth import redirect_uris
from authgate.oauth.client_keys import validate_key_metadata
from authgate.oauth.opaque import digest, new_secret
from authgate.store.models import Client

AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post", "private_key_jwt")
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
OPEN_GRANTS = ("authorization_code", "refresh_token")  # `dcr_grant_types` default: grants with a user
_STRING_FIELDS = (
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
    "scope",
)


def _string_list(body: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = body.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidClientMetadata(f"{name} must be an array of strings")
    return list(value)


def _check_grants(grants: list[str], open_grants: Sequence[str]) -> None:
    """Open registration offers only grants with a user behind them (`dcr_grant_types`)."""
    if unknown := [g for g in grants if g not in GRANT_TYPES]:
        raise InvalidClientMetadata(f"grant_types {unknown} are not supported")
    if "client_credentials" in grants:
        raise InvalidClientMetadata(
            "grant_types client_credentials cannot be registered here: machine clients are created by "
            "an operator of this server with `authgate clients add NAME --grant client_credentials`"
        )
    if closed := [g for g in grants if g not in open_grants]:
        raise InvalidClientMetadata(
            f"grant_types {closed} are not open to dynamic registration on this "
            f"server; it offers {', '.join(open_grants) or 'none'}"
        )


def validate_metadata(body: dict[str, Any], open_grants: Sequence[str] = OPEN_GRANTS) -> dict[str, Any]:
    """Return the metadata we keep; unknown fields are ignored (RFC 7591 §2). `open_grants`
    is the `dcr_grant_types` setting."""
    method = body.get("token_endpoint_auth_method", "client_secret_basic")  # RFC 7591 §2 default
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata(
            f"token_endpoint_auth_method {method!r} is not supported; use one of {', '.join(AUTH_METHODS)}"
        )
    default = [g for g in OPEN_GRANTS if g in open_grants]
    grants = _string_list(body, "grant_types", default)
    _check_grants(grants, open_grants)
    responses = _string_list(body, "response_types", ["code"] if "authorization_code" in grants else [])
    if any(r != "code" for r in responses):
        raise InvalidClientMetadata("only response_type 'code' is supported (OAuth 2.1)")
    uris = _string_list(body, "redirect_uris", [])
    # OIDC Registration §2 default is "web"; a client that omits it but redirects to a
    # private-use scheme can only be a native app (desktop MCP clients do this).
    inferred = "native" if any(not u.lower().startswith(("http:", "https:")) for u in uris) else "web"
    app_type = body.get("application_type", inferred)
    if app_type not in ("web", "native"):
        raise InvalidClientMetadata("application_type must be 'web' or 'native'")
    if "authorization_code" in grants and not uris:
        raise InvalidRedirectUri("redirect_uris is required for the authorization_code grant")
    for uri in uris:
        redirect_uris.validate_for_registration(uri, app_type)
    kept: dict[str, Any] = {
        "redirect_uris": uris,
        "token_endpoint_auth_method": method,
        "grant_types": grants,
        "response_types": responses,
        "application_type": app_type,
    }
    for name in _STRING_FIELDS:
        if name in body:
            if not isinstance(body[name], str):
                raise InvalidClientMetadata(f"{name} must be a string")
            kept[name] = body[name][:500]
    if "contacts" in body:
        kept["contacts"] = _string_list(body, "contacts", [])[:10]
    if "dpop_bound_access_tokens" in body:  # RFC 9449 §5.2: then every token request needs a proof
        if not isinstance(body["dpop_bound_access_tokens"], bool):
            raise InvalidClientMetadata("dpop_bound_access_tokens must be a boolean")
        kept["dpop_bound_access_tokens"] = body["dpop_bound_access_tokens"]
    if method == "private_key_jwt":  # RFC 7523 §2.2: its public keys, by value or by reference
        kept.update(validate_key_metadata(body))
    return kept


def register(
    body: dict[str, Any], now: float, open_grants: Sequence[str] = OPEN_GRANTS, *, management_base: str | None = None
) -> tuple[Client, dict[str, Any]]:
    """Mint a client from validated metadata. Returns the record and the 201 response body
    (which alone carries the plaintext secret and registration access token). With
    `management_base` (the registration endpoint's URL), the client gets RFC 7592 management:
    a registration access token and its `registration_client_uri` under that URL."""
    metadata = validate_metadata(body, open_grants)
    client_id = str(uuid.uuid4())
    secret = new_secret("ags_") if metadata["token_endpoint_auth_method"] in SECRET_METHODS else None
    token = new_secret("agr_") if management_base is not None else None
    client = Client(
        client_id=client_id,
        metadata=metadata,
        created_at=now,
        last_used_at=now,
        client_secret_hash=digest(secret) if secret else None,  # 256 random bits: SHA-256 suffices
        client_secret_expires_at=0,
        registration_token_hash=digest(token) if token else None,
    )
    response: dict[str, Any] = {"client_id": client_id, "client_id_issued_at": int(now), **metadata}
    if secret:
        response["client_secret"] = secret
        response["client_secret_expires_at"] = 0  # RFC 7591 §3.2.1: REQUIRED with a secret
    if token and management_base:  # RFC 7592 §3
        response["registration_access_token"] = token
        response["registration_client_uri"] = management_uri(management_base, client_id)
    return client, response


def management_uri(management_base: str, client_id: str) -> str:
    """The client's RFC 7592 client configuration endpoint (its id is a UUID: no escaping)."""
    return f"{management_base}/{client_id}"


def machine_client(
    name: str,
    scopes: Sequence[str],
    subject: str | None,
    now: float,
    grant: str = "client_credentials",
    keys: dict[str, Any] | None = None,
) -> tuple[Client, str | None]:
    """An operator-made client (`authgate clients add`) of one grant: client_credentials, or the
    jwt-bearer grant (oauth/jwt_bearer.py: ID-JAGs, workload assertions). The record and its
    plaintext secret, shown once — or, with `keys` (`jwks` or `jwks_uri`, checked as at
    registration), a `private_key_jwt` client (RFC 7523 §2.2) that has no secret at all. `scopes`
    bounds every token it gets; `subject` is their `sub` (default: the client_id; an ID-JAG's
    tokens carry the user's)."""
    client_id = str(uuid.uuid4())
    secret = None if keys is not None else new_secret("ags_")
    metadata: dict[str, Any] = {
        "client_name": name,
        "grant_types": [grant],
        "response_types": [],
        "redirect_uris": [],
        "token_endpoint_auth_method": "client_secret_basic" if keys is None else "private_key_jwt",
        "scope": " ".join(scopes),
        "subject": subject or client_id,
    }
    if keys is not None:
        metadata.update(validate_key_metadata(keys))
    client = Client(
        client_id=client_id,
        metadata=metadata,
        created_at=now,
        last_used_at=now,
        client_secret_hash=digest(secret) if secret is not None else None,
        source="operator",
    )
    return client, secret
