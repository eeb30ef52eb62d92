"""Finding a client (stored via DCR, or fetched via CIMD) and authenticating it at /token."""

from __future__ import annotations

import base64
import hmac
import logging
from urllib.parse import unquote_plus

from authgate.errors import FetchError, InvalidClient, InvalidClientMetadata, InvalidRequest, OAuthError
from authgate.oauth import client_assertion
from authgate.oauth.authority import Authority
from authgate.oauth.opaque import digest
from authgate.store.models import Client

log = logging.getLogger("authgate.cimd")

# What a client (and the browser showing its error page) learns about a failed CIMD fetch. The
# detail (a private address, a DNS answer, a status code) names the server's network: log only.
FETCH_FAILED = "the client's metadata document could not be fetched"


async def find_client(auth: Authority, client_id: str) -> Client | None:
    """A stored client, or a CIMD document turned into a client; None if neither.
    Raises FetchError / InvalidClientMetadata when a CIMD document cannot be used."""
    if auth.cimd is not None and auth.cimd.handles(client_id):
        metadata = await auth.cimd.resolve(client_id)
        now = auth.clock()
        return Client(client_id=client_id, metadata=metadata, created_at=now, last_used_at=now, source="cimd")
    return await auth.store.get_client(client_id)


async def require_client(auth: Authority, client_id: str, error: type[OAuthError]) -> Client:
    """`find_client`, with every way of not finding it turned into `error`."""
    try:
        client = await find_client(auth, client_id)
    except FetchError as exc:
        log.warning("client metadata document not fetched: %s", exc)
        raise error(FETCH_FAILED) from None
    except InvalidClientMetadata as exc:  # the fetched document itself: its author may read this
        raise error(f"the client's metadata document cannot be used: {exc}") from None
    if client is None:
        raise error("unknown client_id: the client must register again")
    return client


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        user, _, password = decoded.partition(":")
    except (ValueError, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64
    return unquote_plus(user), unquote_plus(password)


def _may_use_none(client: Client) -> bool:
    """A public client. ChatGPT's CIMD document declares `private_key_jwt` yet lists `none`
    among its `token_endpoint_auth_methods_supported`, and uses `none` with servers that
    advertise only that: honour the list."""
    if client.token_endpoint_auth_method == "none":
        return True
    supported = client.metadata.get("token_endpoint_auth_methods_supported")
    return client.source == "cimd" and isinstance(supported, list) and "none" in supported


async def _by_assertion(auth: Authority, form: dict[str, str], basic: bool) -> Client:
    """RFC 7523 §2.2 `private_key_jwt`: the client named by `client_id` (else by the assertion's
    `iss`), which must have registered that method, proven by its signed assertion."""
    if basic or form.get("client_secret"):
        raise InvalidRequest("use one client authentication method, not both")  # RFC 6749 §2.3
    if form.get("client_assertion_type") != client_assertion.ASSERTION_TYPE:
        raise InvalidClient(f"client_assertion_type must be {client_assertion.ASSERTION_TYPE}")
    assertion = form.get("client_assertion") or ""
    if not assertion:
        raise InvalidClient("client_assertion is required with client_assertion_type")
    _, claims = client_assertion.unverified_claims(assertion)
    client_id = form.get("client_id") or claims.get("iss")
    if not isinstance(client_id, str) or not client_id:
        raise InvalidClient("client_assertion names no client (iss)")
    if claims.get("iss") != client_id or claims.get("sub") != client_id:  # checked again once verified
        raise InvalidClient("client_assertion iss and sub must both be the client_id")
    client = await require_client(auth, client_id, InvalidClient)
    if client.token_endpoint_auth_method != "private_key_jwt":
        raise InvalidClient(f"this client authenticates with {client.token_endpoint_auth_method}, not private_key_jwt")
    await client_assertion.verify(auth, client, assertion)
    return client


async def authenticate(auth: Authority, form: dict[str, str], authorization: str | None) -> Client:
    """RFC 6749 §2.3 client authentication: `none`, `client_secret_basic`, `client_secret_post`,
    and `private_key_jwt` (RFC 7523 §2.2, oauth/client_assertion.py)."""
    basic = _basic_credentials(authorization)
    if "client_assertion" in form or "client_assertion_type" in form:
        return await _by_assertion(auth, form, basic is not None)
    if basic and form.get("client_secret"):
        raise InvalidRequest("use one client authentication method, not both")  # RFC 6749 §2.3
    client_id, secret = basic if basic else (form.get("client_id", ""), form.get("client_secret"))
    if basic and form.get("client_id") and form["client_id"] != client_id:
        raise InvalidClient("client_id in the body differs from the authenticated client")
    if not client_id:
        raise InvalidClient("client authentication is required")
    client = await require_client(auth, client_id, InvalidClient)
    if client.client_secret_hash is None:
        if not _may_use_none(client):
            if client.token_endpoint_auth_method == "private_key_jwt":
                raise InvalidClient("this client authenticates with private_key_jwt: send a client_assertion")
            raise InvalidClient(
                f"token_endpoint_auth_method {client.token_endpoint_auth_method!r} "
                "is not supported by this server; use 'none'"
            )
        return client  # public client: identified, not authenticated (PKCE binds the code)
    if not secret:
        raise InvalidClient("client authentication failed: no client_secret presented")
    if not hmac.compare_digest(digest(secret), client.client_secret_hash):
        raise InvalidClient("client authentication failed")
    if client.client_secret_expires_at and client.client_secret_expires_at < auth.clock():
        raise InvalidClient("client secret has expired; register again")
    return client
