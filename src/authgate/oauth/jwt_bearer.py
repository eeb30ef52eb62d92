"""The jwt-bearer authorization grant (RFC 7523 §2.1): an assertion becomes an access token.

Two kinds, told apart by the assertion's issuer and `typ`, never one for the other:

    assertion ──> iss in enterprise_idps ──> typ oauth-id-jag+jwt? ──> ID-JAG: a person (id_jag.py)
              └─> iss in workload_issuers ─> not an ID-JAG? ────────> workload: a machine client
              └─> any other iss: invalid_grant (untrusted issuer)

An ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant-04, MCP Enterprise-Managed
Authorization) is presented by the client it names (`client_id`), authenticated as usual
(confidential clients only unless the IdP's `allow_public_clients`). A workload assertion
(RFC 7523 §3, e.g. a Kubernetes service-account token) authenticates the operator-made client
its (iss, sub) is mapped to in `workload_issuers`; a request that also authenticates a client
must name that same client. Either kind's `jti` is single use per issuer, on every replica
(the store's used_jtis table). Both need the client to hold the jwt-bearer grant, which only an
operator gives (`authgate clients add NAME --grant jwt-bearer`): open registration cannot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from authgate.errors import FetchError, InvalidClient, InvalidClientMetadata, InvalidGrant, InvalidRequest, InvalidScope
from authgate.oauth import client_assertion, scopes
from authgate.oauth.authority import Authority
from authgate.oauth.authorize import canonical_resources
from authgate.oauth.client_keys import ACCEPTED_SIGNING_ALGS, SIGNING_ALGS
from authgate.oauth.clients import authenticate, require_client
from authgate.oauth.opaque import digest
from authgate.store.models import Client

log = logging.getLogger("authgate.oauth")

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"  # AS metadata, the ID-JAG draft §7
ID_JAG_TYPES = frozenset({"oauth-id-jag+jwt", "application/oauth-id-jag+jwt"})  # the draft §3.1, JOSE typ
MAX_LIFETIME = 600.0  # exp at most this far ahead of now (and of iat): a long-lived grant is a bearer secret
LEEWAY = 60.0


@dataclass(frozen=True, slots=True)
class Granted:
    """What the grant decided; grants.py turns it into the token response."""

    subject: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return client_assertion.unverified_claims(assertion)
    except InvalidClient:
        raise InvalidGrant("assertion is not a compact JWS of at most 8 KiB") from None


def is_id_jag(header: dict[str, Any]) -> bool:
    typ = header.get("typ")
    return isinstance(typ, str) and typ.lower() in ID_JAG_TYPES


def kind_of(auth: Authority, assertion: str) -> tuple[str, str]:
    """("id_jag" | "workload", issuer) of an assertion, before any signature check; InvalidGrant
    for an untrusted issuer or an assertion of the other kind."""
    header, claims = _unverified(assertion)
    iss = claims.get("iss")
    if not isinstance(iss, str) or not iss:
        raise InvalidGrant("assertion has no iss")
    if iss in auth.config.enterprise_idps:
        if not is_id_jag(header):
            raise InvalidGrant(
                "this issuer is a trusted enterprise IdP: only its ID-JAGs (typ oauth-id-jag+jwt) are accepted"
            )
        return "id_jag", iss
    if iss in auth.config.workload_issuers:
        if is_id_jag(header):
            raise InvalidGrant("an ID-JAG is not a workload assertion: its issuer is not a trusted enterprise IdP")
        return "workload", iss
    raise InvalidGrant("the assertion's issuer is not trusted by this server")


def _has_credentials(form: dict[str, str], authorization: str | None) -> bool:
    return bool(authorization) or any(k in form for k in ("client_secret", "client_assertion", "client_assertion_type"))


async def client_for(auth: Authority, form: dict[str, str], authorization: str | None) -> Client:
    """The client of a jwt-bearer request: the authenticated one; for a workload assertion
    without client credentials, the client its (iss, sub) is mapped to (identified only: the
    grant verifies the assertion before issuing anything)."""
    assertion = form.get("assertion")
    if not assertion:
        raise InvalidRequest("assertion is required")  # RFC 7523 §2.1
    kind, iss = kind_of(auth, assertion)
    if kind == "id_jag" or _has_credentials(form, authorization):
        return await authenticate(auth, form, authorization)
    sub = _unverified(assertion)[1].get("sub")
    client_id = auth.config.workload_issuers[iss].subjects.get(sub) if isinstance(sub, str) else None
    if client_id is None:
        raise InvalidGrant("the workload assertion's subject is not mapped to a client (workload_issuers)")
    if form.get("client_id") not in (None, client_id):
        raise InvalidClient("client_id differs from the client the workload assertion is mapped to")
    return await require_client(auth, client_id, InvalidGrant)


async def _key_set(auth: Authority, uri: str, refresh: bool) -> KeySet:
    if auth.client_keys is None:
        raise InvalidGrant("assertions are not accepted by this server")
    try:
        return await auth.client_keys.uri_key_set(uri, refresh=refresh)
    except (FetchError, InvalidClientMetadata) as exc:  # the detail names the network: the log's
        log.warning("issuer keys at %s not fetched: %s", uri[:200], exc)
        raise InvalidGrant("the issuer's keys could not be fetched") from None


def _pick(keys: KeySet, kid: Any) -> Any:
    if kid is None:
        if len(keys.keys) != 1:
            raise ValueError("no kid and several keys")
        return keys.keys[0]
    if not isinstance(kid, str):
        raise ValueError("kid is not a string")
    return keys.get_by_kid(kid)


async def verified_claims(auth: Authority, assertion: str, jwks_uri: str) -> dict[str, Any]:
    """The claims of `assertion` once its signature verifies with a key at `jwks_uri` (an
    unknown kid refetches the set once: the issuer may have rotated its keys)."""
    header, _ = _unverified(assertion)
    alg = header.get("alg")
    if alg not in ACCEPTED_SIGNING_ALGS:  # RFC 8725 §3.1
        raise InvalidGrant(f"assertion alg must be one of {', '.join(SIGNING_ALGS)}")
    try:
        try:
            key = _pick(await _key_set(auth, jwks_uri, False), header.get("kid"))
        except (JoseError, ValueError):
            key = _pick(await _key_set(auth, jwks_uri, True), header.get("kid"))
        return dict(jwt.decode(assertion, key, algorithms=[str(alg)]).claims)
    except (JoseError, ValueError):
        raise InvalidGrant("assertion signature does not verify with the issuer's keys") from None


def _sole(value: Any) -> Any:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def check_common(claims: dict[str, Any], issuer: str, now: float) -> float:
    """RFC 7523 §3 items 2-7: sub, aud = this server's issuer (sole value), exp / iat / nbf
    within bounds, a jti. Returns exp."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= 255:
        raise InvalidGrant("assertion needs a sub of at most 255 characters")
    if _sole(claims.get("aud")) != issuer:
        raise InvalidGrant(f"assertion aud must be this server's issuer {issuer}")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise InvalidGrant("assertion has no numeric exp")
    if exp <= now - LEEWAY:
        raise InvalidGrant("assertion has expired")
    if exp > now + MAX_LIFETIME + LEEWAY:
        raise InvalidGrant(f"assertion exp is more than {int(MAX_LIFETIME)} s ahead")
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int | float) or value > now + LEEWAY):
            raise InvalidGrant(f"assertion {name} is in the future")
    if isinstance(iat, int | float) and exp - iat > MAX_LIFETIME + LEEWAY:
        raise InvalidGrant(f"assertion lives more than {int(MAX_LIFETIME)} s")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise InvalidGrant("assertion needs a jti of at most 256 characters")
    return float(exp)


async def spend_jti(auth: Authority, kind: str, iss: str, claims: dict[str, Any], exp: float) -> None:
    """Single use per issuer on every replica (the store's used_jtis), after every other check."""
    jti_hash = digest(f"{iss}\n{claims['jti']}")
    if not await auth.store.use_jti(kind, jti_hash, exp + LEEWAY, auth.clock()):
        raise InvalidGrant("assertion jti was already used")  # RFC 7523 §3 item 7


async def exchange(
    auth: Authority, client: Client, form: dict[str, str], resources: list[str], jkt: str | None = None
) -> Granted:
    """Verify the request's assertion for `client` and decide the grant; `jkt`: the thumbprint of
    the request's DPoP key, checked against an ID-JAG's `cnf`."""
    assertion = form["assertion"]  # client_for checked it
    kind, iss = kind_of(auth, assertion)
    if kind == "id_jag":
        from authgate.oauth import id_jag

        return await id_jag.exchange(auth, client, form, resources, iss, jkt)
    return await _workload(auth, client, form, resources, iss)


async def _workload(auth: Authority, client: Client, form: dict[str, str], resources: list[str], iss: str) -> Granted:
    if client.source != "operator":
        raise InvalidGrant("workload assertions are only for machine clients an operator creates")
    claims = await verified_claims(auth, form["assertion"], auth.config.workload_issuers[iss].jwks_uri)
    exp = check_common(claims, auth.issuer, auth.clock())
    if auth.config.workload_issuers[iss].subjects.get(claims["sub"]) != client.client_id:
        raise InvalidGrant("the workload assertion's subject is not mapped to this client")
    offered = set(auth.config.offered_scopes)
    allowed = tuple(s for s in scopes.parse(client.metadata.get("scope")) if s in offered)
    requested = scopes.parse(form.get("scope"))
    if requested and not set(requested) <= set(allowed):
        raise InvalidScope(f"this client may be granted only: {scopes.render(allowed) or '(no scope)'}")
    granted = requested or allowed
    if not granted:
        raise InvalidScope("this client may be granted no scope")
    audience = canonical_resources(auth, resources)  # invalid_target before the jti is spent
    await spend_jti(auth, "workload_assertion", iss, claims, exp)
    subject = str(client.metadata.get("subject") or client.client_id)
    return Granted(subject, granted, audience)
