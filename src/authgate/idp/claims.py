"""The checks every external access token passes, whether its claims came from a verified JWT
(RFC 9068) or from an introspection response (RFC 7662 §2.2 uses the same claim names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authgate.errors import InvalidToken
from authgate.guard.identity import Identity
from authgate.idp.profiles import IdpProfile
from authgate.oauth.access_tokens import check_times
from authgate.oauth.dpop import bound_key

LEEWAY = 60  # seconds of clock skew tolerated between authgate and the IdP

# Claims only an OpenID Connect ID token carries (OIDC Core §2, §3.1.3.6, §3.3.2.11).
ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash", "s_hash")


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What an access token from the external IdP must satisfy."""

    issuer: str
    audiences: tuple[str, ...]
    profile: IdpProfile
    require_at_jwt_typ: bool
    algorithms: tuple[str, ...]
    leeway: int = LEEWAY


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _first_string(claims: dict[str, Any], names: tuple[str, ...]) -> str | None:
    return next((claims[n] for n in names if isinstance(claims.get(n), str) and claims[n]), None)


def refuse_id_token(claims: dict[str, Any], profile: IdpProfile) -> None:
    """An ID token says who signed in *to a client*; it grants nothing at a resource."""
    present = [c for c in ID_TOKEN_CLAIMS if c in claims]
    if present or claims.get("typ") in ("ID", "id"):  # Keycloak marks ID tokens with typ "ID"
        raise InvalidToken(f"an ID token is not an access token (it carries {', '.join(present) or 'typ ID'})")
    if profile.token_use is not None and claims.get("token_use") != profile.token_use:
        raise InvalidToken(f"token_use is {claims.get('token_use')!r}, not {profile.token_use!r}")


def _check_audience(claims: dict[str, Any], policy: TokenPolicy) -> tuple[str, ...]:
    claim = policy.profile.audience_claim
    held = claims.get(claim)
    values = (
        (held,)
        if isinstance(held, str)
        else tuple(a for a in held if isinstance(a, str))
        if isinstance(held, list)
        else ()
    )
    accepted = [a for a in values if a in policy.audiences]
    if not accepted:
        raise InvalidToken(
            f"token {claim} {list(values)} is none of this resource's audiences (RFC 8707); "
            "the IdP must issue tokens for this MCP URL, or `audiences` must list it"
        )
    return (accepted[0], *(a for a in values if a != accepted[0]))


def identity_from_claims(claims: dict[str, Any], policy: TokenPolicy, now: float) -> Identity:
    """`iss` exact, an accepted audience, exp/nbf with leeway, not an ID token → the caller."""
    if claims.get("iss") != policy.issuer:
        raise InvalidToken(f"token issuer {claims.get('iss')!r} is not {policy.issuer!r}")
    refuse_id_token(claims, policy.profile)
    audience = _check_audience(claims, policy)
    expires_at = check_times(claims, now=now, leeway=policy.leeway)  # exp, nbf, iat: any JSON number
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("token has no subject (sub)")
    profile = policy.profile
    scopes = tuple(dict.fromkeys(s for name in profile.scope_claims for s in _strings(claims.get(name))))
    return Identity(
        subject=subject,
        client_id=_first_string(claims, profile.client_id_claims) or "",
        scopes=scopes,
        audience=audience,
        expires_at=expires_at,
        username=_first_string(claims, profile.username_claims),
        claims=claims,
        jkt=bound_key(claims),  # an IdP's DPoP-bound token (RFC 9449 §6.1): the guard asks for its proof
    )
