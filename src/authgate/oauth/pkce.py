"""PKCE (RFC 7636), S256 only as OAuth 2.1 §4.1.1 and the MCP spec require."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from authgate.errors import InvalidGrant, InvalidRequest

# RFC 7636 §4.1: 43..128 chars of [A-Z a-z 0-9 - . _ ~]
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url(SHA-256) without padding


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str | None, method: str | None) -> str:
    """Validate the authorization request's PKCE parameters; return the challenge."""
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE, OAuth 2.1 §4.1.1)")
    if (method or "plain") != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not _CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge is not a base64url SHA-256 value")
    return challenge


def verify(verifier: str | None, challenge: str) -> None:
    """RFC 7636 §4.6: the verifier must hash to the stored challenge."""
    if not verifier or not _VERIFIER.match(verifier):
        raise InvalidGrant("code_verifier is missing or malformed")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")
