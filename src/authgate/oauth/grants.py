"""The token endpoint (OAuth 2.1 §3.2): one function per grant, dispatched by `grant_type`."""

from __future__ import annotations

import json
from typing import Any

from authgate.errors import (
    InvalidDpopProof,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from authgate.oauth import access_tokens, dpop, jwt_bearer, pkce, roles, scopes
from authgate.oauth.attempts import TokenSeen
from authgate.oauth.authority import Authority
from authgate.oauth.authorize import canonical_resources
from authgate.oauth.clients import authenticate
from authgate.oauth.opaque import digest, new_secret
from authgate.oauth.sealing import SealError, derive_key, seal, unseal
from authgate.store.models import Client, RefreshFamily, RefreshToken, User

TokenResponse = dict[str, Any]

TOUCH_EVERY = 3600.0  # seconds between two records of a client's last use


async def token(
    auth: Authority,
    form: dict[str, str],
    resources: list[str],
    authorization: str | None,
    seen: TokenSeen | None = None,
    dpop_proof: str | None = None,
) -> TokenResponse:
    """`form` holds the single-valued parameters, `resources` every `resource` value; `seen`
    is filled with what the request showed (its client, code, grant) for the connection
    timeline (oauth/attempts.py), success or failure; `dpop_proof`: the request's DPoP header."""
    seen = TokenSeen() if seen is None else seen
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    handler = _GRANTS.get(grant_type)
    if handler is None:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
    if grant_type == jwt_bearer.GRANT_TYPE:  # the assertion may be what identifies the client
        client = seen.client = await jwt_bearer.client_for(auth, form, authorization)
    else:
        client = seen.client = await authenticate(auth, form, authorization)
    allowed = client.metadata.get("grant_types", ["authorization_code", "refresh_token"])
    # refresh_token goes with authorization_code: clients that omit it still expect to refresh
    if grant_type not in allowed and not (grant_type == "refresh_token" and "authorization_code" in allowed):
        raise UnauthorizedClient(f"this client did not register the {grant_type} grant")
    jkt = await _dpop_key(auth, client, dpop_proof)
    response = await handler(auth, client, form, resources, seen, jkt)
    now = auth.clock()
    # pruning spares it; `authgate clients list` shows it. Recorded at most once an hour (a write
    # per token request otherwise): pruning counts days (client_idle_days ≥ 1).
    if client.source in ("dcr", "operator") and now - client.last_used_at >= TOUCH_EVERY:
        await auth.store.touch_client(client.client_id, now)
    return response


async def _dpop_key(auth: Authority, client: Client, proof: str | None) -> str | None:
    """The thumbprint of the request's DPoP key (RFC 9449 §5), or None: a Bearer token."""
    if proof is None:
        if auth.config.dpop_required or client.metadata.get("dpop_bound_access_tokens") is True:
            raise InvalidDpopProof("this client's tokens are DPoP-bound: send a DPoP proof")  # RFC 9449 §5.2
        return None
    checked = await dpop.check(
        proof,
        method="POST",
        url=auth.urls.endpoint("token"),
        now=auth.clock(),
        store=auth.store,
        nonce_key=auth.keys.nonce_key if auth.config.dpop_nonce else None,
        max_age=auth.config.dpop_proof_max_age,
    )
    return checked.jkt


def _bound_refresh(client: Client, jkt: str | None) -> str:
    """A new refresh token; a public client's carries its DPoP key's thumbprint (RFC 9449 §5:
    bound to that key), inside the hashed value, so it cannot be changed."""
    refresh = new_secret("agr_")
    return f"{refresh}.{jkt}" if jkt is not None and client.token_endpoint_auth_method == "none" else refresh


def _check_refresh_binding(presented: str, jkt: str | None) -> None:
    bound = presented.rpartition(".")[2] if "." in presented else None
    if bound is not None and bound != jkt:
        raise InvalidGrant("this refresh token is bound to a DPoP key: refresh with a proof signed by that key")


def _access_token_response(
    auth: Authority,
    *,
    subject: str,
    client_id: str,
    granted: tuple[str, ...],
    resources: tuple[str, ...],
    grant_id: str | None,
    auth_time: float | None = None,
    jkt: str | None = None,
) -> TokenResponse:
    now = auth.clock()
    ttl = auth.config.access_token_ttl
    token_scopes = tuple(s for s in granted if s != scopes.OFFLINE_ACCESS)
    if jkt is None and not auth.config.dpop_scopes.isdisjoint(token_scopes):  # dpop_required_scopes
        bound = " ".join(sorted(auth.config.dpop_scopes.intersection(token_scopes)))
        raise InvalidDpopProof(f"tokens for the scope {bound} must be DPoP-bound: send a DPoP proof")
    at, _ = access_tokens.issue(
        auth.keys,
        issuer=auth.issuer,
        subject=subject,
        client_id=client_id,
        scopes=token_scopes,
        resources=resources,
        now=now,
        ttl=ttl,
        grant_id=grant_id,
        auth_time=auth_time,
        jkt=jkt,
    )
    token_type = "DPoP" if jkt is not None else "Bearer"  # RFC 9449 §5
    return {"access_token": at, "token_type": token_type, "expires_in": ttl, "scope": scopes.render(granted)}


async def _authorization_code(
    auth: Authority, client: Client, form: dict[str, str], resources: list[str], seen: TokenSeen, jkt: str | None
) -> TokenResponse:
    code = form.get("code")
    if not code:
        raise InvalidRequest("code is required")
    now = auth.clock()
    redemption = await auth.store.consume_code(digest(code), now)
    if (found := redemption.code or redemption.replayed) is not None and found.client_id == client.client_id:
        seen.code = found
    if redemption.replayed is not None:
        # RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a replayed code revokes what it issued
        await auth.store.revoke_family(redemption.replayed.family_id, "authorization code replayed", now)
        raise InvalidGrant("authorization code was already used; tokens issued with it are revoked")
    stored = redemption.code
    if stored is None or stored.client_id != client.client_id:
        raise InvalidGrant("authorization code is invalid or was issued to another client")
    if stored.expires_at < now:
        raise InvalidGrant("authorization code has expired")
    presented_redirect = form.get("redirect_uri")
    if presented_redirect is not None and presented_redirect != stored.redirect_uri:
        raise InvalidGrant("redirect_uri differs from the authorization request")
    pkce.verify(form.get("code_verifier"), stored.code_challenge)
    granted_resources = canonical_resources(auth, resources) if resources else stored.resources
    if not set(granted_resources) <= set(stored.resources):
        raise InvalidGrant("resource was not part of the authorization")  # RFC 8707 §2.2
    granted = await _user_may_grant(auth, stored.user_id, stored.scopes)
    body = _access_token_response(
        auth,
        subject=stored.user_id,
        client_id=client.client_id,
        granted=granted,
        resources=granted_resources,
        grant_id=stored.family_id,
        auth_time=stored.auth_time,
        jkt=jkt,
    )
    refresh = _bound_refresh(client, jkt)
    family = RefreshFamily(
        family_id=stored.family_id,
        client_id=client.client_id,
        user_id=stored.user_id,
        scopes=granted,
        resources=stored.resources,
        created_at=stored.created_at,
    )
    first = RefreshToken(
        token_hash=digest(refresh),
        family_id=family.family_id,
        issued_at=now,
        expires_at=now + auth.config.refresh_token_ttl,
    )
    # The family was made with the code; if a racing replay revoked it already, these tokens
    # are born revoked (one answer whatever the timing: one 200, its tokens refused after).
    await auth.store.create_family(family, first)
    body["refresh_token"] = refresh
    return body


async def _user_may_grant(auth: Authority, user_id: str, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """`wanted` narrowed to what the user may grant now (oauth/roles.py): their roles may have
    changed since they consented. Nothing left of what was granted: invalid_grant."""
    return _may_grant(auth, await auth.store.get_user(user_id), wanted)


def _may_grant(auth: Authority, user: User | None, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """`_user_may_grant` of a user already read (None: gone)."""
    if user is None:
        raise InvalidGrant("the user no longer exists")
    granted = roles.limit(wanted, roles.grantable_by(auth.config, user))
    if granted != wanted and roles.grants_nothing(granted):
        raise InvalidGrant("the user's roles no longer allow any scope of this authorization")
    return granted


def _successor_key(refresh_token: str) -> bytes:
    return derive_key(refresh_token.encode(), "refresh-successor")


def _replay_successor(auth: Authority, presented: str, record: RefreshToken) -> TokenResponse | None:
    """Within the grace window the holder of a just-rotated token gets the same successor."""
    if record.rotated_at is None or record.successor is None:
        return None
    if auth.clock() - record.rotated_at > auth.config.refresh_grace_seconds:
        return None
    try:
        body: TokenResponse = json.loads(unseal(_successor_key(presented), record.successor))
    except SealError:
        return None
    return body


async def _check_before_rotation(auth: Authority, family: RefreshFamily, now: float) -> None:
    """The installed RefreshCheck (proxy mode: the upstream grant must still stand). Before the
    rotation, so a transient failure leaves the presented token unrotated for a retry; a
    successor replayed in the grace window is not checked again."""
    check = auth.hooks.refresh_check
    if check is None:
        return
    try:
        await check(family.user_id)
    except InvalidGrant as exc:
        await auth.store.revoke_family(family.family_id, exc.description or "refused by the refresh check", now)
        raise


async def _refresh_token(
    auth: Authority, client: Client, form: dict[str, str], resources: list[str], seen: TokenSeen, jkt: str | None
) -> TokenResponse:
    presented = form.get("refresh_token")
    if not presented:
        raise InvalidRequest("refresh_token is required")
    now = auth.clock()
    # the token, its family, their liveness and the user in one read (one statement)
    grant = await auth.store.get_refresh_grant(digest(presented))
    if grant is None or grant.family.client_id != client.client_id:
        raise InvalidGrant("refresh token is invalid")
    record, family = grant.token, grant.family
    _check_refresh_binding(presented, jkt)
    seen.family = family
    if family.revoked_at is not None:
        raise InvalidGrant("refresh token was revoked")
    if record.rotated_at is not None:
        if (again := _replay_successor(auth, presented, record)) is not None:
            return again
        # RFC 9700 §4.14.2: reuse of a rotated token revokes the whole family
        await auth.store.revoke_family(family.family_id, "refresh token reused", now)
        raise InvalidGrant("refresh token was already used; this grant is revoked")
    if record.expires_at < now:
        raise InvalidGrant("refresh token has expired")
    if not grant.live:
        raise InvalidGrant("the user or client of this grant no longer exists")
    requested = scopes.parse(form.get("scope"))
    if requested and not scopes.is_subset(requested, family.scopes):
        raise InvalidScope("a refresh may narrow the scope but never widen it")  # RFC 6749 §6
    narrowed = canonical_resources(auth, resources) if resources else family.resources
    if not set(narrowed) <= set(family.resources):
        raise InvalidGrant("resource was not part of the original grant")
    granted = _may_grant(auth, grant.user, requested or family.scopes)
    await _check_before_rotation(auth, family, now)
    body = _access_token_response(
        auth,
        subject=family.user_id,
        client_id=client.client_id,
        granted=granted,
        resources=narrowed,
        grant_id=family.family_id,
        jkt=jkt,
    )
    successor = _bound_refresh(client, jkt)
    body["refresh_token"] = successor
    new = RefreshToken(
        token_hash=digest(successor),
        family_id=family.family_id,
        issued_at=now,
        expires_at=now + auth.config.refresh_token_ttl,
    )
    sealed = seal(_successor_key(presented), json.dumps(body).encode())
    if await auth.store.rotate_refresh_token(record.token_hash, new, sealed, now):
        return body
    # a concurrent refresh of the same token won the race: hand out its successor
    winner = await auth.store.get_refresh_token(record.token_hash)
    if winner is not None and (again := _replay_successor(auth, presented, winner)) is not None:
        return again
    raise InvalidGrant("refresh token was already used")


async def _client_credentials(
    auth: Authority, client: Client, form: dict[str, str], resources: list[str], _seen: TokenSeen, jkt: str | None
) -> TokenResponse:
    # Only operator-made clients, authenticated by a secret or a key (private_key_jwt, already
    # checked): one registered dynamically (by an older version) is anyone's
    keyed = client.metadata.get("token_endpoint_auth_method") == "private_key_jwt"
    if client.source != "operator" or (client.client_secret_hash is None and not keyed):
        raise UnauthorizedClient(
            "client_credentials is only for machine clients an operator creates with "
            "`authgate clients add`; this client was registered dynamically"
        )
    offered = set(auth.config.offered_scopes)
    allowed = tuple(s for s in scopes.parse(client.metadata.get("scope")) if s in offered)
    requested = scopes.parse(form.get("scope"))
    # RFC 6749 §3.3: the response's `scope` says what was granted, never more than allowed
    granted = tuple(s for s in requested if s in allowed) if requested else allowed
    if not granted:
        raise InvalidScope(f"this client may be granted only: {scopes.render(allowed) or '(no scope)'}")
    subject = str(client.metadata.get("subject") or client.client_id)
    return _access_token_response(
        auth,
        subject=subject,
        client_id=client.client_id,
        granted=granted,
        resources=canonical_resources(auth, resources),
        grant_id=None,
        jkt=jkt,
    )


async def _jwt_bearer(
    auth: Authority, client: Client, form: dict[str, str], resources: list[str], _seen: TokenSeen, jkt: str | None
) -> TokenResponse:
    """RFC 7523 §2.1: an ID-JAG or a workload assertion (oauth/jwt_bearer.py); no refresh token."""
    decided = await jwt_bearer.exchange(auth, client, form, resources, jkt)
    return _access_token_response(
        auth,
        subject=decided.subject,
        client_id=client.client_id,
        granted=decided.scopes,
        resources=decided.resources,
        grant_id=None,
        jkt=jkt,
    )


_GRANTS = {
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
    "client_credentials": _client_credentials,
    jwt_bearer.GRANT_TYPE: _jwt_bearer,
}
