"""Registration section: RFC 7591 dynamic registration, its limits, and Client ID Metadata Documents."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

FIXES: dict[str, str] = {
    "dcr_grant_types": "list only authorization_code and refresh_token; create a machine client with "
    "`authgate clients add NAME --grant client_credentials --scopes …`",
    "cimd_ca_file": "point it at a PEM file of CA certificates that exists, or leave it unset",
}


class RegistrationSettings(BaseModel):
    registration_enabled: bool = Field(True, description="allow RFC 7591 dynamic client registration")
    registrations_per_minute: int = Field(
        10, ge=1, description="dynamic registrations allowed per source address (IPv6: per /64) per minute"
    )
    max_clients: int = Field(
        10000,
        ge=1,
        description="cap on registered clients outside the unverified pool: those a user has consented to "
        "and operator-made ones; a registration is refused (503) only when these fill it",
    )
    client_idle_days: int = Field(
        30, ge=1, description="registered clients unused this long and holding no grant are pruned"
    )
    dcr_grant_types: list[str] = Field(
        default_factory=lambda: ["authorization_code", "refresh_token"],
        description="grant types open dynamic registration may ask for; grants without a person "
        "(client_credentials) are only for clients an operator creates with `authgate clients add`",
    )
    max_unverified_clients: int = Field(
        1000,
        ge=10,
        description="dynamically registered clients that no user has consented to yet; when the pool is "
        "full the oldest is removed, so a new registration always succeeds",
    )
    client_assertion_token_endpoint_audience: bool = Field(
        False,
        description="LEGACY: also accept the token endpoint URL as a private_key_jwt assertion's aud; by "
        "default only the issuer is (draft-ietf-oauth-rfc7523bis, after CVE-2025-27370/27371)",
    )
    cimd_enabled: bool = Field(True, description="accept Client ID Metadata Documents (HTTPS client_id)")
    cimd_allow_loopback_http: bool = Field(
        False, description="TESTING ONLY: allow CIMD documents on http://127.0.0.1 / localhost"
    )
    cimd_timeout: float = Field(5.0, gt=0, le=30, description="CIMD fetch timeout, seconds")
    cimd_max_bytes: int = Field(65536, ge=1024, description="largest CIMD document accepted")
    cimd_ca_file: Path | None = Field(
        None,
        description="TESTING ONLY: extra CA bundle (PEM) trusted for CIMD fetches, e.g. a "
        "stand-in host's test CA (`authgate doctor --cimd-host-map`)",
    )

    @field_validator("dcr_grant_types")
    @classmethod
    def _registration_grants_have_a_user(cls, v: list[str]) -> list[str]:
        # A grant without a person would hand anyone who can reach /register a token (issue 11)
        if "client_credentials" in v:
            raise ValueError(
                "client_credentials is for machine clients an operator creates, never for open registration"
            )
        if unknown := [g for g in v if g not in ("authorization_code", "refresh_token")]:
            raise ValueError(f"{', '.join(unknown)} is not a grant type open registration can offer")
        return v
