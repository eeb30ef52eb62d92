"""JWT access tokens per RFC 9068: issued by the embedded AS, verified by the guard."""

from __future__ import annotations

import base64
import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from authgate.errors import InvalidToken
from authgate.oauth.keys import ALGS, SigningKeys

LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat
TYP = "at+jwt"  # RFC 9068 §2.1


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    subject: str
    client_id: str
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    expires_at: int
    issued_at: int
    jti: str
    grant_id: str | None
    raw: dict[str, Any]


def issue(
    keys: SigningKeys,
    *,
    issuer: str,
    subject: str,
    client_id: str,
    scopes: tuple[str, ...],
    resources: tuple[str, ...],
    now: float,
    ttl: int,
    grant_id: str | None,
    auth_time: float | None = None,
    jkt: str | None = None,
) -> tuple[str, int]:
    iat = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": resources[0] if len(resources) == 1 else list(resources),
        "client_id": client_id,
        "scope": " ".join(scopes),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ttl,
        "jti": uuid.uuid4().hex,
    }
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    if grant_id:
        claims["gid"] = grant_id  # lets the guard re-check the grant is still live
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1: bound to the DPoP proof's key
    return keys.sign({"typ": TYP}, claims), iat + ttl


def _header(token: str) -> dict[str, Any]:
    try:
        head = token.split(".", 1)[0]
        parsed = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("token is not a JWT") from None
    if not isinstance(parsed, dict):
        raise InvalidToken("token is not a JWT")
    return parsed


async def verify(token: str, keys: SigningKeys, *, issuer: str, audience: str, now: float) -> AccessTokenClaims:
    """Signature with the algorithm pinned (the one of the key `kid` names: RS256 or ES256,
    `keys.py`), `typ`, `iss`, `aud`, `exp`/`nbf` with leeway."""
    if token.count(".") != 2:
        raise InvalidToken("token is not a JWS compact JWT")
    header = _header(token)
    alg = header.get("alg")
    if alg not in ALGS:  # never `none`, never HMAC, never an algorithm authgate does not sign with
        raise InvalidToken(f"token algorithm {alg!r} is not accepted")
    if str(header.get("typ", "")).lower() not in (TYP, "application/at+jwt"):
        raise InvalidToken("token is not an access token (typ must be at+jwt, RFC 9068 §4)")
    found = await keys.verification_key(str(header.get("kid", "")))
    if found is None:
        raise InvalidToken("token was signed by an unknown key")
    key_alg, key = found
    if alg != key_alg:  # the key decides the algorithm, never the token (RFC 8725 §3.1)
        raise InvalidToken(f"token algorithm {alg!r} is not its key's")
    try:
        claims = jwt.decode(token, key, algorithms=[key_alg]).claims
    except (JoseError, ValueError):
        raise InvalidToken("token signature is invalid") from None
    return _check_claims(claims, issuer=issuer, audience=audience, now=now)


def _check_claims(claims: dict[str, Any], *, issuer: str, audience: str, now: float) -> AccessTokenClaims:
    if claims.get("iss") != issuer:
        raise InvalidToken("token issuer is not this server")
    aud = claims.get("aud")
    auds = tuple(aud) if isinstance(aud, list) else (aud,)
    if audience not in auds:
        raise InvalidToken("token audience is not this resource (RFC 8707)")
    exp = check_times(claims, now=now, leeway=LEEWAY)
    sub, client_id = claims.get("sub"), claims.get("client_id")
    if not isinstance(sub, str) or not isinstance(client_id, str):
        raise InvalidToken("token lacks sub or client_id")
    return AccessTokenClaims(
        subject=sub,
        client_id=client_id,
        scopes=tuple(str(claims.get("scope", "")).split()),
        audience=tuple(str(a) for a in auds),
        expires_at=exp,
        issued_at=int(claims.get("iat", 0)),  # checked: a number when present
        jti=str(claims.get("jti", "")),
        grant_id=claims.get("gid"),
        raw=claims,
    )


def check_times(claims: dict[str, Any], *, now: float, leeway: int) -> int:
    """`exp` (required), `nbf` and `iat` as any JSON number (RFC 7519 §2 NumericDate: an
    integer or not, never NaN, Infinity, a string or a boolean), with `leeway` seconds of clock
    skew: a float `nbf` in the future is refused like an integer one. Returns `exp`."""
    exp, nbf, iat = (_numeric_date(claims, name) for name in ("exp", "nbf", "iat"))
    if exp is None:
        raise InvalidToken("token has no expiry (exp)")
    if exp + leeway < now:
        raise InvalidToken("token has expired")
    if nbf is not None and nbf - leeway > now:
        raise InvalidToken("token is not valid yet (nbf)")
    if iat is not None and iat - leeway > now:
        raise InvalidToken("token was issued in the future (iat)")
    return int(exp)


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    if name not in claims:
        return None
    value = claims[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):  # an int is finite; JSON allows NaN
        raise InvalidToken(f"token claim {name} is not a NumericDate (RFC 7519 §2)")
    return value
