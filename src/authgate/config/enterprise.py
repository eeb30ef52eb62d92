"""Enterprise section: trusted enterprise IdPs whose Identity Assertion JWT Authorization Grants
(ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant-04) the embedded server exchanges for
access tokens, and workload issuers (RFC 7523 §2.1, e.g. a Kubernetes service-account issuer)
whose assertions authenticate operator-approved machine clients (oauth/jwt_bearer.py).

Each is a map keyed by the issuer identifier, compared with an assertion's `iss` byte for byte.
One issuer is never both: an ID-JAG issuer's assertion is no workload assertion, nor the reverse.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from authgate.config.issuers import issuer_problem
from authgate.config.policy import map_from_text
from authgate.config.problems import Refusal

FIXES: dict[str, str] = {
    "enterprise_idps": 'a map of issuer → {"jwks_uri": "https://…"}, e.g. {"https://idp.example.com": '
    '{"jwks_uri": "https://idp.example.com/keys"}}; an issuer listed here must not be a workload issuer',
    "workload_issuers": 'a map of issuer → {"jwks_uri": "https://…", "subjects": {"SUB": "CLIENT_ID"}}; the '
    "clients are made with `authgate clients add NAME --grant jwt-bearer`",
}
MAX_ISSUERS = 20
_ROLE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _jwks_uri(uri: str) -> str:
    if problem := issuer_problem(uri):  # https (http on loopback only), no credentials, no fragment
        raise ValueError(problem.replace("issuer", "jwks_uri", 1))
    return uri


JwksUri = Annotated[str, Field(max_length=2048), AfterValidator(_jwks_uri)]  # both kinds of issuer


class EnterpriseIdp(BaseModel):
    """One trusted enterprise IdP (the key of `enterprise_idps` is its issuer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jwks_uri: JwksUri = Field(description="the IdP's JWK Set, fetched through the SSRF guard")
    email_mapping: bool = Field(
        False,
        description="also map an assertion to the local user whose username is its `email` claim "
        "(only when the IdP vouches for it: email_verified not false); off: by (iss, sub) only",
    )
    allow_public_clients: bool = Field(
        False, description="accept ID-JAGs from public clients (no client authentication); off by default"
    )
    provision_users: bool = Field(
        True,
        description="a subject without a local user gets one (user id `ISSUER|SUB`, the roles below); "
        "off: such an assertion is invalid_grant",
    )
    roles: tuple[str, ...] = Field((), max_length=10, description="roles of users provisioned for this IdP")

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if bad := [r for r in v if not _ROLE.fullmatch(r)]:
            raise ValueError(f"role names are 1-64 of A-Z a-z 0-9 . _ : - (not {bad[0]!r})")
        return v


class WorkloadIssuer(BaseModel):
    """One workload issuer (the key of `workload_issuers`): which subjects are which machine clients."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jwks_uri: JwksUri = Field(description="the issuer's JWK Set, fetched through the SSRF guard")
    subjects: dict[str, str] = Field(
        max_length=1000,
        description="assertion `sub` → the client_id of an operator-made client with the jwt-bearer grant",
    )

    @field_validator("subjects")
    @classmethod
    def _subjects(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("name at least one subject and its client_id")
        if any(not 0 < len(s) <= 255 or not 0 < len(c) <= 255 for s, c in v.items()):
            raise ValueError("subjects and client ids are 1-255 characters")
        return v


def _issuers(v: Any) -> Any:
    v = map_from_text(v)
    if isinstance(v, dict):
        if len(v) > MAX_ISSUERS:
            raise ValueError(f"at most {MAX_ISSUERS} issuers")
        for issuer in v:
            if problem := issuer_problem(str(issuer)):
                raise ValueError(problem)
    return v


class EnterpriseSettings(BaseModel):
    enterprise_idps: dict[str, EnterpriseIdp] = Field(
        default_factory=dict,
        description="embedded mode: trusted enterprise IdPs whose ID-JAGs (jwt-bearer grant, "
        "docs/enterprise.md) the token endpoint exchanges for access tokens, keyed by issuer",
    )
    workload_issuers: dict[str, WorkloadIssuer] = Field(
        default_factory=dict,
        description="embedded mode: workload issuers (RFC 7523 §2.1, e.g. Kubernetes) whose assertions "
        "authenticate operator-approved machine clients at the jwt-bearer grant, keyed by issuer",
    )

    @field_validator("enterprise_idps", "workload_issuers", mode="before")
    @classmethod
    def _issuer_keys(cls, v: Any) -> Any:
        return _issuers(v)


def enterprise_refusals(s: EnterpriseSettings, auth_mode: str) -> list[Refusal]:
    """An issuer is an enterprise IdP or a workload issuer, never both; both need embedded mode."""
    found = []
    if both := sorted(set(s.enterprise_idps) & set(s.workload_issuers)):
        problem = f"{both[0]} is both an enterprise IdP and a workload issuer: an issuer is one or the other"
        found.append(Refusal("workload_issuers", problem, depends=("enterprise_idps",)))
    for name in ("enterprise_idps", "workload_issuers"):
        if getattr(s, name) and auth_mode != "embedded":
            found.append(
                Refusal(name, "only the embedded authorization server exchanges assertions", depends=("auth_mode",))
            )
    return found
