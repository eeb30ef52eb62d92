"""Authenticated encryption for data at rest (AES-256-GCM, keys derived with HKDF).

Two uses: signing keys are sealed under the configured `secret_key`; a rotated refresh
token's successor response is sealed under a key derived from that refresh token itself, so
only the client holding it can read the successor back during the grace window.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from authgate.errors import AuthgateError

_VERSION = b"\x01"


class SealError(AuthgateError):
    """Ciphertext could not be opened: wrong key or tampered data."""


def derive_key(material: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"authgate/v1", info=purpose.encode()).derive(material)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    nonce = os.urandom(12)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    if not blob or blob[:1] != _VERSION:
        raise SealError("unknown sealed-data version")
    try:
        return AESGCM(key).decrypt(blob[1:13], blob[13:], aad)
    except InvalidTag:
        raise SealError("sealed data does not open with this key (wrong secret_key?)") from None
