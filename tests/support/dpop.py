"""A DPoP client's key and the proofs it signs (RFC 9449 §4.2), for tests: EC P-256 with joserfc.

`DpopKey().proof(method, url, token=…, nonce=…)` is a fresh proof (new `jti`, `iat` now unless
given); `jkt` is the key's RFC 7638 thumbprint; `claims_of(jwt)` reads a JWT's claims unverified.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

__all__ = ["DpopKey", "b64", "claims_of"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DpopKey:
    """A client's DPoP key and the proofs it signs (RFC 9449 §4.2)."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", private=True)

    @property
    def jkt(self) -> str:
        return str(self.key.thumbprint())

    def proof(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
        jwk: dict[str, Any] | None = None,
    ) -> str:
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk or self.key.as_dict(private=False)}
        claims: dict[str, Any] = {
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
            "jti": jti or secrets.token_urlsafe(16),
        }
        if token is not None:
            claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
