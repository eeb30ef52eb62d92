"""Tokens section: lifetimes of codes, access and refresh tokens, and the scopes offered."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

FIXES: dict[str, str] = {
    "scopes": 'list scope-tokens without spaces or quotes, e.g. ["mcp"] or ["notes.read", "notes.write"] '
    "(offline_access is added by authgate itself)",
    "dpop_required_scopes": 'list scopes that `scopes` offers, e.g. ["notes.write"]; [] binds no scope, '
    "dpop_required = true binds every token",
}


class TokenSettings(BaseModel):
    access_token_ttl: int = Field(900, ge=30, le=86400, description="access token lifetime, seconds")
    token_signing_alg: Literal["RS256", "ES256"] = Field(
        "RS256",
        description="algorithm of the access tokens' signatures: RS256 (what RFC 9068 says every resource "
        "server supports) or ES256 (P-256: ~0.5 ms less CPU a flow to sign, ~50 µs more a verification); "
        "a change takes effect at the next start, the old key verifying its tokens until they expire",
    )
    refresh_token_ttl: int = Field(
        30 * 86400, ge=300, description="refresh token lifetime (renewed at each rotation), seconds"
    )
    code_ttl: int = Field(60, ge=10, le=600, description="authorization code lifetime, seconds")
    refresh_grace_seconds: int = Field(
        10,
        ge=0,
        le=120,
        description="window in which a just-rotated refresh token returns the same successor",
    )
    token_cache_seconds: int = Field(
        30,
        ge=0,
        le=300,
        description="how long the guard trusts a verified token before re-checking its grant and user "
        "(a revoked grant or removed user stops working within this time)",
    )
    scopes: list[str] = Field(default_factory=lambda: ["mcp"], description="scopes the protected MCP server offers")
    dpop_required: bool = Field(
        False,
        description="every access token must be DPoP-bound (RFC 9449): the token endpoint refuses a request "
        "without a proof, the MCP endpoint refuses Bearer tokens, and PRM says dpop_bound_access_tokens_required",
    )
    dpop_required_scopes: list[str] = Field(
        default_factory=list,
        description="scopes whose tokens must be DPoP-bound (RFC 9449): a token request granting one needs a proof, "
        "and /mcp refuses a Bearer token holding one",
    )
    dpop_nonce: bool = Field(
        False,
        description="DPoP proofs must carry a server nonce (RFC 9449 §8, §9): a proof without the current one "
        "is answered use_dpop_nonce with a DPoP-Nonce header",
    )
    dpop_proof_max_age: int = Field(
        300, ge=30, le=600, description="seconds a DPoP proof's iat may lie either side of the server's time"
    )

    @field_validator("scopes")
    @classmethod
    def _tokens_scopes_are_tokens(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s or any(c.isspace() or c in '"\\' for c in s):
                raise ValueError(f"scope {s!r} is not a valid scope-token (RFC 6749 §3.3)")
        if "offline_access" in v:
            raise ValueError("offline_access is not a resource scope; authgate handles it itself")
        return v
