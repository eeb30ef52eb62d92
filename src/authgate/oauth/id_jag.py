"""The Identity Assertion JWT Authorization Grant (ID-JAG), the resource authorization server's
half: draft-ietf-oauth-identity-assertion-authz-grant §4.4.1 ("Processing Rules"; section numbers
of the editor's copy after -03, docs/enterprise.md) and the MCP Enterprise-Managed Authorization
extension (SEP-990) §5.1. The client first exchanged the user's
identity assertion at its enterprise IdP for an ID-JAG; here that ID-JAG becomes an access token
for the user, without a consent screen: the enterprise IdP decided.

Checks, each failure `invalid_grant` unless said: the issuer is a trusted enterprise IdP and
`typ` is oauth-id-jag+jwt (jwt_bearer.kind_of); the signature verifies with that IdP's JWKS
(fetched through the SSRF guard); `aud` is authgate's issuer; `client_id` is the authenticated
client; `resource`, when present, is the MCP URL; `iat` present (§3.1), exp/iat within MAX_LIFETIME;
a `cnf.jkt` key binding needs a DPoP proof by that key (§8.6.1.2); `jti` single use
per IdP on every replica; a public client only when the IdP allows it (`unauthorized_client`).
Scope: the requested scopes must lie within the assertion's (`invalid_scope` otherwise); the
grant is requested (or the assertion's) ∩ offered ∩ the client's allowance ∩ what the user's
roles may grant.
The subject is the local user `ISSUER|SUB` (as proxy mode names upstream users; `ISSUER|TENANT|SUB`
with a `tenant` claim), else, with `email_mapping`, the local user named by the verified `email`,
else one provisioned with the IdP's `roles` (unless `provision_users` is off). No refresh token
(§4.4.3 SHOULD NOT): the client exchanges a fresh ID-JAG, so the IdP's decision (a disabled
employee) takes effect within one access token lifetime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from authgate.errors import InvalidGrant, InvalidScope, StoreError, UnauthorizedClient
from authgate.oauth import roles, scopes
from authgate.oauth.authority import Authority
from authgate.oauth.authorize import canonical_resources
from authgate.oauth.jwt_bearer import Granted, check_common, spend_jti, verified_claims
from authgate.oauth.opaque import digest
from authgate.store.models import Client, User

if TYPE_CHECKING:
    from authgate.config.enterprise import EnterpriseIdp

JTI_KIND = "id_jag"


def is_public(client: Client) -> bool:
    return client.client_secret_hash is None and client.token_endpoint_auth_method != "private_key_jwt"


def _resources(claims: dict[str, Any], mcp_url: str) -> None:
    resource = claims.get("resource")
    if resource is None:
        return
    named = resource if isinstance(resource, list) else [resource]
    if not named or any(not isinstance(r, str) or r.rstrip("/") != mcp_url for r in named):
        raise InvalidGrant(f"assertion resource must be this server's MCP URL {mcp_url}")


def _scopes(auth: Authority, client: Client, claims: dict[str, Any], form: dict[str, str]) -> tuple[str, ...]:
    """Requested (within the assertion's) or the assertion's, ∩ offered ∩ the client's own
    allowance when it has one (`authgate clients add --scopes`)."""
    asserted = scopes.parse(claims["scope"]) if isinstance(claims.get("scope"), str) else tuple(auth.config.scopes)
    requested = scopes.parse(form.get("scope"))
    if beyond := [s for s in requested if s not in asserted]:
        raise InvalidScope(f"scope {' '.join(beyond)} is beyond what the ID-JAG grants")
    allowed = set(auth.config.offered_scopes)
    if isinstance(client.metadata.get("scope"), str):
        allowed &= set(scopes.parse(client.metadata["scope"]))
    return tuple(s for s in (requested or asserted) if s in allowed)


def _user_id(iss: str, sub: str, tenant: Any = None) -> str:
    """`ISSUER|SUB`; `ISSUER|TENANT|SUB` when the ID-JAG names a tenant: a multi-tenant issuer's
    `sub` is unique only within (iss, tenant) (the draft §3.1 `sub`, §6.3)."""
    named = f"{iss}|{sub}" if tenant is None else f"{iss}|{tenant}|{sub}"
    return named if len(named) <= 255 else f"sha256:{digest(named)}"


def _tenant(claims: dict[str, Any]) -> str | None:
    tenant = claims.get("tenant")
    if tenant is None:
        return None
    if not isinstance(tenant, str) or not 0 < len(tenant) <= 255 or "|" in tenant:
        raise InvalidGrant("assertion tenant must be a string of at most 255 characters without '|'")
    return tenant


def _proof_of_possession(claims: dict[str, Any], jkt: str | None) -> None:
    """The draft §8.6.1.2: an ID-JAG bound to a key (`cnf.jkt`) is honoured only with a DPoP proof
    by that key; otherwise invalid_grant (§8.6.1.2.1 item 4, §8.6.1.2.2)."""
    cnf = claims.get("cnf")
    if cnf is None:
        return
    bound = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not isinstance(bound, str):
        raise InvalidGrant("assertion cnf carries no jkt: only DPoP key binding is supported")
    if jkt is None:
        raise InvalidGrant("this ID-JAG is bound to a key (cnf.jkt): send a DPoP proof signed by it")
    if jkt != bound:
        raise InvalidGrant("the DPoP proof's key is not the one this ID-JAG is bound to (cnf.jkt)")


async def local_user(auth: Authority, iss: str, idp: EnterpriseIdp, claims: dict[str, Any]) -> User:
    user_id = _user_id(iss, str(claims["sub"]), _tenant(claims))
    if (user := await auth.store.get_user(user_id)) is not None:
        return user
    email = claims.get("email")
    if idp.email_mapping and isinstance(email, str) and claims.get("email_verified", True) in (True, "true"):
        if (user := await auth.store.get_user_by_name(email[:255])) is not None:
            return user
    if not idp.provision_users:
        raise InvalidGrant("no local user is linked to this subject")
    user = User(user_id=user_id, username=user_id, password_hash="!", created_at=auth.clock(), roles=idp.roles)
    try:
        await auth.store.add_user(user)
    except StoreError:  # another replica provisioned it meanwhile
        if (user := await auth.store.get_user(user_id)) is None:
            raise InvalidGrant("the subject's local user could not be made") from None
    return user


async def exchange(
    auth: Authority, client: Client, form: dict[str, str], resources: list[str], iss: str, jkt: str | None = None
) -> Granted:
    idp = auth.config.enterprise_idps[iss]
    if is_public(client) and not idp.allow_public_clients:
        raise UnauthorizedClient("ID-JAGs are accepted from confidential clients only")
    claims = await verified_claims(auth, form["assertion"], idp.jwks_uri)
    exp = check_common(claims, auth.issuer, auth.clock())
    if not isinstance(claims.get("iat"), int | float) or isinstance(claims["iat"], bool):
        raise InvalidGrant("assertion has no numeric iat")  # REQUIRED in an ID-JAG (the draft §3.1)
    if claims.get("client_id") != client.client_id:  # the draft §4.3: the ID-JAG names its client
        raise InvalidGrant("assertion client_id is not the authenticated client")
    _resources(claims, auth.config.urls.resource)
    _proof_of_possession(claims, jkt)
    _tenant(claims)
    if "authorization_details" in claims:  # the draft §4.4.1: MUST be processed per RFC 9396, which
        # authgate does not implement; ignoring it would grant by scope (or the default) what the IdP
        # may have narrowed by authorization details
        raise InvalidGrant("authorization_details (RFC 9396) is not supported here: the IdP should grant by scope")
    wanted = _scopes(auth, client, claims, form)
    audience = canonical_resources(auth, resources)  # invalid_target before the jti is spent
    await spend_jti(auth, JTI_KIND, iss, claims, exp)
    user = await local_user(auth, iss, idp, claims)
    granted = roles.limit(wanted, roles.grantable_by(auth.config, user))
    if roles.grants_nothing(granted):
        raise InvalidScope("the user may be granted none of the ID-JAG's scopes")
    return Granted(user.user_id, granted, audience)
