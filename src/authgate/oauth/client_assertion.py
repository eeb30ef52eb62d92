"""`private_key_jwt` client authentication (RFC 7523 §2.2 and §3, RFC 7521 §4.2): a JWT the
client signs with its own key, checked against the keys it registered (oauth/client_keys.py).

Audience, per draft-ietf-oauth-rfc7523bis-11 (the update after CVE-2025-27370/27371, in the
RFC Editor queue): the assertion's `aud` is authgate's issuer identifier as its sole value (a
string, or an array holding only it); the token endpoint URL is accepted only with
`client_assertion_token_endpoint_audience` (off by default). `typ`, when present, is `JWT` or
the draft's `client-authentication+jwt`, so no other kind of JWT (an access token, a DPoP proof,
an ID-JAG) passes as a client assertion.

Every refusal is `invalid_client` (RFC 6749 §5.2); the description says which check failed but
never echoes the assertion.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from authgate.errors import FetchError, InvalidClient, InvalidClientMetadata
from authgate.oauth.authority import Authority
from authgate.oauth.client_keys import ACCEPTED_SIGNING_ALGS, SIGNING_ALGS
from authgate.oauth.opaque import digest
from authgate.store.models import Client

log = logging.getLogger("authgate.cimd")  # the fetch's other failures log there too (oauth/clients.py)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2
JTI_KIND = "client_assertion"
MAX_ASSERTION = 8192  # bytes of the compact JWT
MAX_LIFETIME = 600.0  # exp at most this far ahead: a long-lived assertion is a bearer secret
LEEWAY = 60.0  # clock skew allowed on exp / nbf / iat
_TYPES = frozenset({"jwt", "client-authentication+jwt", "application/jwt", "application/client-authentication+jwt"})


def _segment(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def unverified_claims(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, before any check: only to find the client the assertion names."""
    parts = assertion.split(".")
    if len(assertion) > MAX_ASSERTION or len(parts) != 3:
        raise InvalidClient("client_assertion is not a compact JWS of at most 8 KiB")
    try:
        header, claims = _segment(parts[0]), _segment(parts[1])
    except (ValueError, UnicodeDecodeError):
        raise InvalidClient("client_assertion cannot be decoded") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidClient("client_assertion cannot be decoded")
    return header, claims


def _check_header(header: dict[str, Any]) -> str:
    alg = header.get("alg")
    if alg not in ACCEPTED_SIGNING_ALGS:  # RFC 8725 §3.1: never `none`; never HS* with a public key
        raise InvalidClient(f"client_assertion alg must be one of {', '.join(SIGNING_ALGS)}")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in _TYPES):
        raise InvalidClient("client_assertion typ must be JWT or client-authentication+jwt")
    return str(alg)


def _audience_ok(aud: Any, accepted: tuple[str, ...]) -> bool:
    """The sole audience (rfc7523bis): a string, or an array of exactly one string."""
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return isinstance(aud, str) and aud in accepted


def check_claims(claims: dict[str, Any], client_id: str, accepted: tuple[str, ...], now: float) -> float:
    """RFC 7523 §3 items 1-7 for client authentication; returns `exp`."""
    if claims.get("iss") != client_id or claims.get("sub") != client_id:  # §3 items 1, 2.B
        raise InvalidClient("client_assertion iss and sub must both be the client_id")
    if not _audience_ok(claims.get("aud"), accepted):  # §3 item 3, rfc7523bis
        raise InvalidClient(f"client_assertion aud must be this server's issuer {accepted[0]} as its sole value")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):  # §3 item 4: exp is REQUIRED
        raise InvalidClient("client_assertion has no numeric exp")
    if exp <= now - LEEWAY:
        raise InvalidClient("client_assertion has expired")
    if exp > now + MAX_LIFETIME + LEEWAY:
        raise InvalidClient(f"client_assertion exp is more than {int(MAX_LIFETIME)} s ahead")
    for name in ("nbf", "iat"):  # §3 items 5, 6
        value = claims.get(name)
        if value is not None and (not isinstance(value, int | float) or value > now + LEEWAY):
            raise InvalidClient(f"client_assertion {name} is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:  # §3 item 7; required here (replay)
        raise InvalidClient("client_assertion needs a jti of at most 256 characters")
    return float(exp)


def _pick_key(keys: KeySet, kid: Any) -> Any:
    """The key the header names; without a kid, the only key (RFC 7515 §4.1.4)."""
    if kid is None:
        if len(keys.keys) != 1:
            raise InvalidClient("client_assertion has no kid and the client has several keys")
        return keys.keys[0]
    if not isinstance(kid, str):
        raise InvalidClient("client_assertion kid must be a string")
    return keys.get_by_kid(kid)


async def _key(auth: Authority, client: Client, kid: Any) -> Any:
    if auth.client_keys is None:
        raise InvalidClient("private_key_jwt is not available on this server")
    try:
        try:
            return _pick_key(await auth.client_keys.key_set(client), kid)
        except (JoseError, ValueError):  # an unknown kid: the client may have rotated its keys
            return _pick_key(await auth.client_keys.key_set(client, refresh=True), kid)
    except (JoseError, ValueError):
        raise InvalidClient("client_assertion kid names none of the client's keys") from None
    except FetchError as exc:  # the detail (an address, a status) names the network: the log's
        log.warning("client %s: jwks_uri not fetched: %s", client.client_id[:200], exc)
        raise InvalidClient("the client's jwks_uri could not be fetched") from None
    except InvalidClientMetadata as exc:
        raise InvalidClient(f"the client's keys cannot be used: {exc.description}") from None


async def verify(auth: Authority, client: Client, assertion: str) -> None:
    """Authenticate `client` by `assertion`, or raise InvalidClient. The `jti` is recorded in
    the store (single use on every replica) only after the signature and every claim check."""
    header, _ = unverified_claims(assertion)
    alg = _check_header(header)
    registered = client.metadata.get("token_endpoint_auth_signing_alg")
    if registered is not None and alg != registered:  # RFC 7591 §2: the client said which
        raise InvalidClient(f"client_assertion must be signed with {registered}")
    key = await _key(auth, client, header.get("kid"))
    try:
        token = jwt.decode(assertion, key, algorithms=[alg])
    except (JoseError, ValueError):
        raise InvalidClient("client_assertion signature does not verify with the client's key") from None
    accepted = (
        (auth.issuer, auth.urls.endpoint("token")) if auth.config.assertion_token_endpoint_aud else (auth.issuer,)
    )
    now = auth.clock()
    exp = check_claims(dict(token.claims), client.client_id, accepted, now)
    jti_hash = digest(f"{client.client_id}\n{token.claims['jti']}")
    if not await auth.store.use_jti(JTI_KIND, jti_hash, exp + LEEWAY, now):
        raise InvalidClient("client_assertion jti was already used")  # RFC 7523 §3 item 7
