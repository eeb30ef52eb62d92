"""Token exchange section: the remote authorization servers that trust authgate's issuer, toward
which authgate obtains a person's token by RFC 8693 token exchange instead of a browser step
(authgate.outbound.exchange, docs/outbound.md "RFC 8693 token exchange").

Each entry is an issuer identifier, compared with the provider's AS metadata `issuer` string for
string. A provider marked `token_exchange` whose AS is not listed never gets an exchange request:
the JWT authgate signs for the person goes only where the operator said it is trusted.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from authgate.config.issuers import issuer_problem

FIXES: dict[str, str] = {
    "token_exchange_issuers": 'a list of issuer URLs, e.g. ["https://as.partner.example"] (at most 20): the '
    "authorization servers configured to accept authgate's issuer as a subject token issuer (RFC 8693)",
}
MAX_ISSUERS = 20


def _issuer(value: str) -> str:
    if problem := issuer_problem(value):  # https (http on loopback only), no credentials, no query
        raise ValueError(problem)
    return value


Issuer = Annotated[str, Field(max_length=2048), AfterValidator(_issuer)]


class TokenExchangeSettings(BaseModel):
    # -- RFC 8693 token exchange toward ASes that trust authgate's issuer (authgate.outbound.exchange) --
    token_exchange_issuers: list[Issuer] = Field(
        default_factory=list,
        max_length=MAX_ISSUERS,
        description="authorization servers (issuer URLs) that trust authgate's issuer: for a connection provider "
        "marked token_exchange whose AS is listed, authgate gets the person's token by RFC 8693 token exchange, "
        "with a short-lived JWT it signs for that person (aud = that issuer), before any browser step; toward any "
        "other AS no exchange is ever attempted",
    )
    token_exchange_subject_ttl: int = Field(
        60, ge=10, le=300, description="seconds the subject token authgate signs for a token exchange stays valid"
    )
