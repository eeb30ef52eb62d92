"""Opaque secrets handed to clients (codes, refresh tokens, client secrets): generated with
the OS CSPRNG and stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str = "") -> str:
    """256 bits of randomness, URL-safe. The prefix makes leaked secrets recognisable."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """SHA-256 suffices for 256-bit random secrets (no dictionary to attack)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
