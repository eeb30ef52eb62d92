"""Dynamic client registration management (RFC 7592): a DCR client reads, replaces or deletes
its own registration at its `registration_client_uri` with its registration access token.

    GET    ──> the client's metadata                                  (§2.1)
    PUT    ──> the metadata replaced, checked exactly as a registration  (§2.2)
    DELETE ──> the client deleted, its grants revoked first              (§2.3)

The token is stored only as SHA-256 (oauth/opaque.py), so it cannot be shown again: each GET
and PUT answers with a new one (§2.1/§2.2 allow rotation; the client MUST then discard the old),
swapped in by one conditional UPDATE, so of two requests presenting one token only the first
succeeds. Operator-made clients, CIMD clients and clients registered before 0010 have no token:
every request for them is `invalid_token`, as is a wrong or missing token (RFC 6750 §3.1), with
the same answer whether or not the client exists.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from authgate.errors import InvalidClientMetadata, InvalidToken
from authgate.oauth.authority import Authority
from authgate.oauth.opaque import digest, new_secret
from authgate.oauth.registration import OPEN_GRANTS, SECRET_METHODS, management_uri, validate_metadata
from authgate.store.models import Client


class InvalidRegistrationToken(InvalidToken):
    """A wrong or missing registration access token (a branch of errors.py's tree, declared here)."""

    def headers(self, *, basic_attempted: bool = False) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}  # RFC 6750 §3


# RFC 7592 §2.2: the client MUST NOT send these; a client that sends back what a read gave it
# includes them anyway, so they are ignored rather than refused
IGNORED_ON_UPDATE = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)
_REFUSED = "the registration access token is not valid for this client"


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return authorization[7:].strip()
    return None


async def authorized_client(auth: Authority, client_id: str, authorization: str | None) -> Client:
    """The client whose registration access token this is, or InvalidRegistrationToken."""
    token = bearer_token(authorization)
    if token is None:
        raise InvalidRegistrationToken("a registration access token is required (Authorization: Bearer)")
    client = await auth.store.get_client(client_id) if len(client_id) <= 64 else None
    held = client.registration_token_hash if client is not None else None
    if client is None or held is None or not hmac.compare_digest(digest(token), held):
        raise InvalidRegistrationToken(_REFUSED)
    return client


def information(client: Client, uri: str, token: str, secret: str | None = None) -> dict[str, Any]:
    """The client information response (RFC 7592 §3); the secret only when newly issued."""
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at),
        **client.metadata,
        "registration_access_token": token,
        "registration_client_uri": uri,
    }
    if client.client_secret_hash is not None:
        body["client_secret_expires_at"] = client.client_secret_expires_at
    if secret is not None:
        body["client_secret"] = secret
    return body


async def _store(auth: Authority, old: Client, new: Client) -> None:
    assert old.registration_token_hash is not None  # authorized_client checked it
    if not await auth.store.replace_client(new, expected_token_hash=old.registration_token_hash):
        raise InvalidRegistrationToken(_REFUSED)  # another request used this token first, or a delete came first


async def read(auth: Authority, client_id: str, authorization: str | None, base: str) -> dict[str, Any]:
    """RFC 7592 §2.1, with a new registration access token."""
    client = await authorized_client(auth, client_id, authorization)
    token = new_secret("agr_")
    rotated = replace(client, registration_token_hash=digest(token))
    await _store(auth, client, rotated)
    return information(rotated, management_uri(base, client_id), token)


def _new_secret_hash(client: Client, body: dict[str, Any], method: str) -> tuple[str | None, str | None]:
    """RFC 7592 §2.2: a `client_secret` sent must be the current one (a client never picks its
    own); a secret-based method keeps its secret, gets one if it had none; others drop it.
    Returns the hash to keep and the plaintext of a newly issued secret."""
    sent = body.get("client_secret")
    if sent is not None:
        held = client.client_secret_hash
        if not isinstance(sent, str) or held is None or not hmac.compare_digest(digest(sent), held):
            raise InvalidClientMetadata("client_secret is not this client's current secret (RFC 7592 §2.2)")
    if method not in SECRET_METHODS:
        return None, None
    if client.client_secret_hash is not None:
        return client.client_secret_hash, None
    secret = new_secret("ags_")
    return digest(secret), secret


async def update(
    auth: Authority,
    client_id: str,
    authorization: str | None,
    body: dict[str, Any],
    base: str,
    open_grants: Sequence[str] = OPEN_GRANTS,
) -> dict[str, Any]:
    """RFC 7592 §2.2: full replacement, through the registration's own checks and limits."""
    client = await authorized_client(auth, client_id, authorization)
    if body.get("client_id") != client_id:
        raise InvalidClientMetadata("client_id must be present and equal this client's client_id (RFC 7592 §2.2)")
    metadata = validate_metadata({k: v for k, v in body.items() if k not in IGNORED_ON_UPDATE}, open_grants)
    secret_hash, secret = _new_secret_hash(client, body, metadata["token_endpoint_auth_method"])
    token = new_secret("agr_")
    updated = replace(
        client,
        metadata=metadata,
        client_secret_hash=secret_hash,
        client_secret_expires_at=0,
        registration_token_hash=digest(token),
    )
    await _store(auth, client, updated)
    return information(updated, management_uri(base, client_id), token, secret)


async def delete(auth: Authority, client_id: str, authorization: str | None) -> None:
    """RFC 7592 §2.3: its grants revoked (refresh tokens fail at once, access tokens at the
    guard's next re-check), then the client and its token gone."""
    client = await authorized_client(auth, client_id, authorization)
    # spend the token first (the conditional UPDATE): a request racing with it gets invalid_token
    await _store(auth, client, replace(client, registration_token_hash=digest(new_secret())))
    now = auth.clock()
    await auth.store.revoke_client_grants(client_id, "registration deleted by the client (RFC 7592)", now)
    await auth.store.delete_client(client_id)
