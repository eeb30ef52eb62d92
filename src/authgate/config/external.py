"""External IdP section: an OAuth/OIDC identity provider issues the tokens, authgate guards /mcp."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from authgate.config.issuers import SUPPORTED_ALGORITHMS, issuer_problem
from authgate.config.problems import Refusal

FIXES: dict[str, str] = {
    "auth_mode": "use embedded, external or proxy",
    "issuer": "set issuer to the `issuer` value of the IdP's discovery document, exactly "
    "(check it with `authgate idp check ISSUER`)",
    "audiences": 'list the `aud` values the IdP puts in access tokens, e.g. ["https://mcp.example.com/mcp"], '
    "each without surrounding spaces",
    "jwt_algorithms": 'list the asymmetric algorithms your IdP signs with, e.g. ["RS256"]',
    "introspection_endpoint": "set the IdP's introspection endpoint URL (https, or http on loopback)",
    "introspection_client_id": "set it to the client_id the IdP lets introspect tokens",
    "introspection_client_secret": "set introspection_client_id and introspection_client_secret to a client "
    "the IdP allows to introspect",
    "mirror_as_metadata": 'remove mirror_as_metadata, or set auth_mode = "external"',
}


class ExternalSettings(BaseModel):
    # -- external identity provider (authgate.idp): the IdP issues the tokens, authgate guards --
    auth_mode: Literal["embedded", "external", "proxy"] = Field(
        "embedded",
        description="embedded: authgate is the authorization server; external: an OAuth/OIDC identity "
        "provider (issuer) issues the tokens and authgate only guards /mcp; proxy: authgate is the "
        "authorization server and people sign in at an upstream IdP (idp_preset)",
    )
    idp_profile: Literal["generic", "auth0", "keycloak", "okta", "entra", "cognito"] = Field(
        "generic", description="the external IdP's known quirks (see docs/idp/); generic: any RFC 9068 IdP"
    )
    issuer: str | None = Field(
        None,
        description="external mode: the IdP's issuer, exactly as in its discovery document and tokens "
        "(a trailing slash matters: Auth0's ends with /)",
    )
    audiences: list[str] = Field(
        default_factory=list,
        description="external mode: token `aud` values accepted (any one suffices); default: the MCP URL",
    )
    jwt_algorithms: list[str] = Field(
        default_factory=lambda: list(SUPPORTED_ALGORITHMS),
        description="external mode: JWS algorithms accepted on access tokens (never none or HS*)",
    )
    jwt_require_typ: bool | None = Field(
        None,
        description="external mode: require the RFC 9068 `typ: at+jwt` header; default: the profile's "
        "(generic: yes; auth0, keycloak, okta, entra, cognito: no, they do not set it)",
    )
    jwks_refetch_seconds: int = Field(
        30,
        ge=1,
        le=3600,
        description="external mode: least time between two JWKS fetches when a token names an unknown key",
    )
    introspection_endpoint: str | None = Field(
        None, description="external mode: RFC 7662 endpoint for IdPs that issue opaque access tokens"
    )
    introspection_client_id: str | None = Field(
        None, description="client_id authgate authenticates with at introspection_endpoint"
    )
    introspection_client_secret: SecretStr | None = Field(
        None, description="client secret authgate authenticates with at introspection_endpoint"
    )
    mirror_as_metadata: bool = Field(
        False,
        description="external mode, for clients older than MCP 2025-06-18: serve the IdP's metadata as "
        "authgate's own RFC 8414 document (issuer = public_url; see docs/idp/external.md for trade-offs)",
    )

    @field_validator("issuer")
    @classmethod
    def _external_issuer_is_kept_exactly(cls, v: str | None) -> str | None:
        # Only stripped, never normalized: tokens' `iss` is compared byte for byte
        return v.strip() if v is not None and v.strip() else None

    @field_validator("audiences")
    @classmethod
    def _external_audiences_are_values(cls, v: list[str]) -> list[str]:
        for aud in v:
            if not aud or aud != aud.strip():
                raise ValueError(f"audience {aud!r} is empty or has surrounding whitespace")
        return v

    @field_validator("jwt_algorithms")
    @classmethod
    def _external_asymmetric_algorithms_only(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("no algorithm left: no token could be verified")
        for alg in v:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ValueError(
                    f"{alg} is never accepted: tokens must be signed with the IdP's private key "
                    "(none is unsigned; HS* would let any holder of the secret mint tokens)"
                )
            if alg not in SUPPORTED_ALGORITHMS:
                raise ValueError(f"{alg} is not one of {', '.join(SUPPORTED_ALGORITHMS)}")
        return v

    @field_validator("introspection_endpoint")
    @classmethod
    def _external_introspection_is_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        problem = issuer_problem(v.strip(), "generic")
        if problem:
            raise ValueError(problem.replace("issuer", "introspection endpoint"))
        return v.strip()


def external_refusals(s: ExternalSettings) -> list[Refusal]:
    """Rules across settings: external mode needs an issuer valid for its profile, and so on."""
    found = []
    if s.issuer is None and s.auth_mode == "external":
        found.append(
            Refusal("issuer", "auth_mode = external needs the identity provider's issuer", depends=("auth_mode",))
        )
    elif s.issuer is not None and (problem := issuer_problem(s.issuer, s.idp_profile)):
        found.append(Refusal("issuer", problem, depends=("idp_profile",)))
    if s.introspection_endpoint and (s.introspection_client_secret is None or not s.introspection_client_id):
        found.append(
            Refusal(
                "introspection_client_secret",
                "introspection_endpoint needs introspection_client_id "
                "and introspection_client_secret (RFC 7662 §2.1: the resource server authenticates)",
                depends=("introspection_endpoint", "introspection_client_id"),
            )
        )
    if s.mirror_as_metadata and s.auth_mode != "external":
        found.append(
            Refusal(
                "mirror_as_metadata",
                "the mirror applies to auth_mode = external only (embedded mode serves its own metadata)",
                depends=("auth_mode",),
            )
        )
    return found
