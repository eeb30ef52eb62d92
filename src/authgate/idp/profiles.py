"""What each identity provider does differently, and the setting that handles each trap.

A profile tells the verifier where the IdP puts the client id, the scopes and the user name,
whether it stamps RFC 9068 `typ: at+jwt`, and which claim carries the audience. Its traps are
what `authgate idp check` and docs/idp/<name>.md name, each with the exact setting to change
(at authgate or at the IdP). Plain data: no I/O. Issuer checks per profile are in config/issuers.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Trap:
    """A known way this IdP breaks MCP sign-in, and what to change."""

    code: str
    problem: str
    fix: str


@dataclass(frozen=True, slots=True)
class IdpProfile:
    name: str
    title: str
    sets_at_jwt_typ: bool  # RFC 9068 §2.1 header; when set, ID tokens are told apart by it
    audience_claim: str = "aud"  # Cognito access tokens carry no `aud`: their `client_id` is checked
    client_id_claims: tuple[str, ...] = ("client_id", "azp")
    scope_claims: tuple[str, ...] = ("scope", "scp")
    username_claims: tuple[str, ...] = ("preferred_username", "email", "username")
    token_use: str | None = None  # Cognito: `token_use` must be "access"
    registration_path: str | None = None  # where DCR lives, relative to the issuer
    traps: tuple[Trap, ...] = ()
    # `aud` values every token of the IdP carries: listed in `audiences`, they check nothing
    blanket_audiences: tuple[str, ...] = ()


_AUTH0 = IdpProfile(
    name="auth0",
    title="Auth0",
    sets_at_jwt_typ=False,
    scope_claims=("scope", "permissions"),
    registration_path="/oidc/register",
    traps=(
        Trap(
            "auth0-resource-ignored",
            "Auth0 ignores the RFC 8707 `resource` parameter MCP clients send: without an audience the "
            "tokens are opaque (or JWE) and authgate refuses them",
            "Auth0 tenant: Settings → Advanced → enable the Resource Parameter Compatibility Profile; or "
            "Settings → General → API Authorization Settings → Default Audience = the MCP URL (the API "
            "Identifier). If the API Identifier is not the MCP URL, add it to authgate `audiences`",
        ),
        Trap(
            "auth0-dcr",
            "Dynamic Client Registration at /oidc/register is off by default, and DCR-created clients "
            "have no connection to sign in with",
            "Auth0: Settings → Advanced → Dynamic Client Registration on; Authentication → Database → "
            "your connection → Promote Connection to Domain Level (and Enable Application Connections)",
        ),
        Trap(
            "auth0-no-rfc8414",
            "Auth0 serves only OIDC discovery (/.well-known/openid-configuration), no RFC 8414 document; "
            "MCP clients since 2025-11-25 use OIDC discovery, older ones find no authorization server",
            "nothing for current clients; for older ones set authgate `mirror_as_metadata = true` "
            "(read its trade-offs in docs/idp/external.md)",
        ),
        Trap(
            "auth0-issuer-slash",
            "Auth0's issuer ends with '/' (https://TENANT.REGION.auth0.com/)",
            "authgate `issuer` = the discovery document's `issuer`, trailing slash included",
        ),
    ),
)

_KEYCLOAK = IdpProfile(
    name="keycloak",
    title="Keycloak",
    sets_at_jwt_typ=False,
    blanket_audiences=("account",),  # the account console client, in every user's token
    registration_path="/clients-registrations/openid-connect",
    traps=(
        Trap(
            "keycloak-audience",
            "Keycloak puts `account` (not the MCP URL) in `aud` and does not implement RFC 8707 "
            "`resource`, so tokens fail authgate's audience check",
            "Keycloak: Client scopes → the scope authgate advertises (`mcp`) → Mappers → By configuration → "
            "Audience, Included Custom Audience = the MCP URL, Add to access token on; and make that scope a "
            "Default realm client scope. Not a separate audience scope: a client that registers naming "
            "`scope` (the MCP SDK does) gets only those scopes, not the realm's default ones",
        ),
        Trap(
            "keycloak-trusted-hosts",
            "anonymous DCR at {issuer}/clients-registrations/openid-connect is blocked by the default "
            "'Trusted Hosts' policy (\"Policy 'Trusted Hosts' rejected request\")",
            "Keycloak: Clients → Client registration → Anonymous access policies → Trusted Hosts: add the "
            "MCP clients' hosts (chatgpt.com, claude.ai, …) and turn off 'Host Sending Client "
            "Registration Request Must Match'; allow your audience scope in 'Allowed Client Scopes'",
        ),
        Trap(
            "keycloak-no-rfc8414",
            "Keycloak before 26.x served its RFC 8414 document only path-appended ({issuer}/.well-known/oauth-"
            "authorization-server), not at the RFC 8414 §3.1 location MCP clients try first (26.7 serves both); "
            "a reverse proxy that forwards only /realms/* still hides the §3.1 one; clients since 2025-11-25 "
            "fall back to OIDC discovery",
            "nothing for current clients; for older ones set authgate `mirror_as_metadata = true`, or have "
            "your reverse proxy answer /.well-known/oauth-authorization-server/realms/REALM with Keycloak's "
            "document",
        ),
        Trap(
            "keycloak-client-scope",
            "a scope authgate advertises (`scopes`, default mcp) is not a client scope of the realm, so "
            "registrations asking for it are refused and authorizations fail with invalid_scope",
            "Keycloak: Client scopes → Create client scope SCOPE (OpenID Connect, Include in token scope on), "
            "add it as an Optional realm default client scope, and allow it in the 'Allowed Client Scopes' "
            "client registration policy",
        ),
        Trap(
            "keycloak-scopes",
            "ChatGPT requests every advertised scope (address phone organization microprofile-jwt); "
            "a scope a DCR client may not use fails the authorization",
            "Keycloak: keep those client scopes optional for DCR clients (Allowed Client Scopes policy)",
        ),
    ),
)

_OKTA = IdpProfile(
    name="okta",
    title="Okta",
    sets_at_jwt_typ=False,
    client_id_claims=("cid", "client_id", "azp"),
    registration_path=None,
    traps=(
        Trap(
            "okta-custom-as",
            "tokens of the Okta org authorization server (https://ORG.okta.com) are for Okta's own APIs "
            "and cannot be validated by you",
            "authgate `issuer` = a custom authorization server, e.g. https://ORG.okta.com/oauth2/default",
        ),
        Trap(
            "okta-audience",
            "the custom authorization server stamps its own Audience (default api://default) in `aud`",
            "Okta: Security → API → Authorization Servers → your server → Audience = the MCP URL; or "
            "add its audience to authgate `audiences`",
        ),
        Trap(
            "okta-dcr",
            "Okta's client registration needs an admin API token, so MCP clients cannot register",
            'pre-register the client in Okta, or use authgate\'s proxy mode (auth_mode = "proxy", coming)',
        ),
    ),
)

_ENTRA = IdpProfile(
    name="entra",
    title="Microsoft Entra ID",
    sets_at_jwt_typ=False,
    client_id_claims=("azp", "appid", "client_id"),
    scope_claims=("scp", "roles"),
    username_claims=("preferred_username", "upn", "email"),
    traps=(
        Trap(
            "entra-no-dcr",
            "Entra ID has no Dynamic Client Registration and no CIMD",
            'use authgate\'s proxy mode (auth_mode = "proxy", coming), where authgate registers MCP clients',
        ),
        Trap(
            "entra-resource",
            "Entra's v2 endpoint refuses the RFC 8707 `resource` parameter (AADSTS9010010)",
            "proxy mode; clients talking to Entra directly must ask for scope api://APP-ID/.default instead",
        ),
        Trap(
            "entra-audience",
            "v2 access tokens carry the application (client) id, a GUID, in `aud`; v1 tokens the Application ID URI",
            'authgate `audiences` = ["APPLICATION-CLIENT-ID"] (and the api:// URI if v1 tokens occur)',
        ),
        Trap(
            "entra-token-version",
            "without requestedAccessTokenVersion = 2 in the app manifest, tokens are v1 with issuer "
            "https://sts.windows.net/TENANT/ and fail the exact issuer check",
            'Entra: App registrations → Manifest → "requestedAccessTokenVersion": 2; authgate `issuer` = '
            "https://login.microsoftonline.com/TENANT-ID/v2.0",
        ),
    ),
)

_COGNITO = IdpProfile(
    name="cognito",
    title="Amazon Cognito",
    sets_at_jwt_typ=False,
    audience_claim="client_id",
    client_id_claims=("client_id",),
    username_claims=("username", "cognito:username"),
    token_use="access",
    traps=(
        Trap(
            "cognito-no-dcr",
            "Cognito has no Dynamic Client Registration",
            'pre-register an app client, or use authgate\'s proxy mode (auth_mode = "proxy", coming)',
        ),
        Trap(
            "cognito-audience",
            "Cognito access tokens carry no `aud`; authgate checks their `client_id` instead",
            "authgate `audiences` = the app client ids allowed to call this MCP server",
        ),
        Trap(
            "cognito-resource-server",
            "custom scopes need a resource server; they then read RESOURCE-SERVER-ID/SCOPE",
            "Cognito: User pool → App integration → Resource servers → create one; authgate `scopes` = "
            '["RESOURCE-SERVER-ID/mcp"]',
        ),
    ),
)

_GENERIC = IdpProfile(name="generic", title="Any RFC 9068 identity provider", sets_at_jwt_typ=True)

PROFILES: dict[str, IdpProfile] = {p.name: p for p in (_GENERIC, _AUTH0, _KEYCLOAK, _OKTA, _ENTRA, _COGNITO)}


def get_profile(name: str) -> IdpProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown IdP profile {name!r}; one of {', '.join(PROFILES)}") from None


_HOST_HINTS = (
    (".auth0.com", "auth0"),
    (".okta.com", "okta"),
    ("login.microsoftonline.com", "entra"),
    ("cognito-idp.", "cognito"),
)


def guess_profile(issuer: str) -> str | None:
    """The profile an issuer URL looks like (for `idp check` to suggest), or None."""
    parts = urlsplit(issuer)
    host = (parts.hostname or "").lower()
    for needle, name in _HOST_HINTS:
        if needle in host:
            return name
    if re.fullmatch(r"(/auth)?/realms/[^/]+", parts.path):
        return "keycloak"
    return None
