"""Sign-in section: browser sessions, sign-in rate limits, password checks, what roles may grant."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from authgate.config.policy import map_from_text

FIXES: dict[str, str] = {
    "user_role_scopes": 'map each role to the scopes it may grant, e.g. {"admin": ["*"], "editor": '
    '["docs.write"]} (on the command line: that JSON object)',
}


class SignInSettings(BaseModel):
    admin_page: bool = Field(
        True,
        description="embedded mode: serve the operator's page at /admin (admins only); false: /admin "
        "and its routes answer 404 and operators use the CLI (a smaller surface on a public host)",
    )
    login_session_ttl: int = Field(8 * 3600, ge=60, description="browser sign-in session lifetime, seconds")
    login_attempts_per_minute: int = Field(
        5,
        ge=1,
        description="sign-in attempts allowed per username and source address (IPv6 by /64) per "
        "minute; a successful sign-in clears the count",
    )
    login_attempts_per_account: int = Field(
        20,
        ge=1,
        description="sign-in attempts allowed per account per hour from addresses that have not signed "
        "in to it successfully before, however many addresses they come from (IPv6 counted by /64); "
        "known addresses are held only by login_attempts_per_minute, so an attack cannot lock the owner out",
    )
    max_concurrent_password_checks: int = Field(
        2,
        ge=1,
        le=64,
        description="password verifications (argon2) running at once, in worker threads; more wait "
        "(argon2 already uses several cores for one check: about the machine's core count)",
    )
    user_role_scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {"admin": ["*"]},
        description='embedded mode: scopes a user with each role may grant at consent ("*" = every '
        "offered scope); a user with no listed role may grant only `scopes`; the first user is admin",
    )

    @field_validator("user_role_scopes", mode="before")
    @classmethod
    def _signin_map_from_text(cls, v: Any) -> Any:
        return map_from_text(v)
