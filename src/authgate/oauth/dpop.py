"""DPoP proofs (RFC 9449): checked at the token endpoint (oauth/grants.py) and by the guard on
the MCP endpoint (guard/dpop.py).

A proof is a JWT with `typ: dpop+jwt`, signed with an asymmetric algorithm by the public key in
its own `jwk` header (§4.2, §4.3). The checks, in order: the header (typ, alg allow-list, a
public `jwk`), the signature, `htm`, `htu` (both sides normalized per RFC 3986 §6.2.2/§6.2.3,
query and fragment dropped: §4.3 item 9), `iat` within `max_age` seconds either way, `ath`
(§4.3 item 12), the key's RFC 7638 thumbprint against the token's `cnf.jkt` (§6.1), the server
nonce when one is asked for (§8, §9), and last the `jti`, recorded once in the store so a proof
is single use on every replica (§11.1: the store's `used_jtis`, kind `dpop`).

Server nonces are stateless: an HMAC over a time step under a key derived from authgate's
`secret_key`, so every replica makes and accepts the same ones without sharing state; the
current and the previous step are accepted, and the answer to a stale one names the current.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from joserfc.jws import JWSRegistry

from authgate.errors import InvalidDpopProof, InvalidToken, UseDpopNonce
from authgate.oauth.opaque import digest

# RFC 9449 §5: asymmetric only, never `none` or a MAC (RFC 8725 §3.1). Advertised: the fully
# specified `Ed25519` (RFC 9864); the polymorphic `EdDSA` it deprecates is still accepted from
# clients that send it (oauth4webapi before 3.x, jose's remap), never advertised.
ALGS = ("ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "Ed25519")
ACCEPTED_ALGS = (*ALGS, "EdDSA")
TYP = "dpop+jwt"
JTI_KIND = "dpop"
MIN_RSA_BITS = 2048  # RFC 7518 §3.3, §3.5: RS* and PS* keys of 2048 bits or larger MUST be used
MAX_PROOF = 8192  # bytes of the compact JWT, header and all
MAX_AGE = 300  # seconds either side of now for `iat` (the MCP DPoP profile's ±5 minutes)
NONCE_STEP = 300  # seconds a server nonce stays current (and one more step accepted)
# joserfc refuses a JWS header over 512 bytes by default: the jwk of any RSA key of 2048 bits
# or more is larger, so RS*/PS* proofs never verified. The proof's own bound holds instead.
_REGISTRY = JWSRegistry(algorithms=ACCEPTED_ALGS)
_REGISTRY.max_header_length = MAX_PROOF
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_UNRESERVED_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url SHA-256, unpadded (RFC 7638 §3)


class JtiLedger(Protocol):
    """Where proofs' `jti`s are recorded: the store (`Store.use_jti`, shared by replicas), or in
    external mode, which has no database, `guard/dpop.py`'s `MemoryJtis` (this process only)."""

    async def use_jti(self, kind: str, jti_hash: str, expires_at: float, now: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Proof:
    jkt: str  # RFC 7638 thumbprint of the proof's key (base64url SHA-256)
    jti: str
    iat: float


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def access_token_hash(token: str) -> str:
    """`ath` (RFC 9449 §4.2): base64url SHA-256 of the access token's ASCII."""
    return b64(hashlib.sha256(token.encode("ascii", "replace")).digest())


def _escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))  # RFC 3986 §6.2.2.2: unreserved decoded, the rest uppercased
    return char if char.isascii() and (char.isalnum() or char in "-._~") else "%" + match.group(1).upper()


def _dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 remove_dot_segments."""
    out: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    tail = "/" if path.endswith(("/.", "/..")) else ""
    return "/" + "/".join(out) + tail


def normalized_url(url: str) -> str:
    """`url` per RFC 3986 §6.2.2 (case, percent-encoding, dot segments) and §6.2.3 (default
    port, empty path as `/`), without query or fragment (RFC 9449 §4.3 item 9)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidDpopProof("htu is not a URL") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise InvalidDpopProof("htu must be an absolute http(s) URL")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    if "@" in parts.netloc:  # userinfo is part of the URI (RFC 3986 §3.2.1): kept, case and all
        netloc = parts.netloc.rpartition("@")[0] + "@" + netloc
    path = _dot_segments(_UNRESERVED_ESCAPE.sub(_escape, parts.path or "/"))
    return f"{scheme}://{netloc}{path}"


def nonce(key: bytes, now: float, *, step_offset: int = 0) -> str:
    """The server nonce of `now`'s time step (RFC 9449 §8): the step and its HMAC."""
    packed = struct.pack(">Q", int(now // NONCE_STEP) + step_offset)
    return b64(packed + hmac.new(key, b"dpop-nonce" + packed, hashlib.sha256).digest()[:16])


def same(given: object, expected: str) -> bool:
    """`given` is the string `expected`, compared in constant time; a non-ASCII or non-string
    `given` is simply different (`hmac.compare_digest` raises TypeError on non-ASCII str)."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def nonce_is_current(key: bytes, value: object, now: float) -> bool:
    return any(same(value, nonce(key, now, step_offset=o)) for o in (0, -1))


def _header(proof: str) -> dict[str, Any]:
    parts = proof.split(".")
    if len(proof) > MAX_PROOF or len(parts) != 3:
        raise InvalidDpopProof("the DPoP proof is not a compact JWS of at most 8 KiB")
    try:
        head = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidDpopProof("the DPoP proof header cannot be decoded") from None
    if not isinstance(head, dict):
        raise InvalidDpopProof("the DPoP proof header cannot be decoded")
    if str(head.get("typ", "")).lower() != TYP:  # §4.2: explicit typing
        raise InvalidDpopProof("the DPoP proof typ must be dpop+jwt")
    if head.get("alg") not in ACCEPTED_ALGS:
        raise InvalidDpopProof(f"the DPoP proof alg must be one of {', '.join(ALGS)}")
    jwk = head.get("jwk")
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS & jwk.keys():  # §4.3 item 6
        raise InvalidDpopProof("the DPoP proof jwk must be a public key")
    return head


def _signed_claims(proof: str) -> tuple[str, dict[str, Any]]:
    """The thumbprint of the proof's key and its claims, once the signature checks."""
    head = _header(proof)
    if head["jwk"].get("kty") == "RSA" and _modulus_bits(head["jwk"].get("n")) < MIN_RSA_BITS:
        raise InvalidDpopProof(f"the DPoP proof's RSA key must have at least {MIN_RSA_BITS} bits")
    try:
        key = JWKRegistry.import_key(head["jwk"])
        if key.is_private or key.key_type not in ("EC", "RSA", "OKP"):
            raise InvalidDpopProof("the DPoP proof jwk must be a public EC, RSA or OKP key")
        claims = jwt.decode(proof, key, registry=_REGISTRY).claims  # alg: one of ACCEPTED_ALGS (_header)
        return str(key.thumbprint()), dict(claims)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidDpopProof("the DPoP proof signature does not verify with its jwk") from None


def _modulus_bits(n: object) -> int:
    """The bit length of an RSA JWK's `n` (checked before joserfc, which only warns under 2048)."""
    if not isinstance(n, str) or len(n) > 2048:  # 2048 base64url characters: a 12288-bit key
        return 0
    try:
        return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))).bit_length()
    except ValueError:
        return 0


def _iat(claims: dict[str, Any], now: float, max_age: int) -> float:
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
        raise InvalidDpopProof("the DPoP proof has no numeric iat")
    if abs(now - iat) > max_age:  # §11.1: a window either way, for clock skew
        raise InvalidDpopProof(f"the DPoP proof iat is more than {max_age} s from the server's time")
    return float(iat)


async def check(
    proof: str | None,
    *,
    method: str,
    url: str,
    now: float,
    store: JtiLedger,
    access_token: str | None = None,
    jkt: str | None = None,
    nonce_key: bytes | None = None,
    max_age: int = MAX_AGE,
) -> Proof:
    """The proof of one request (`method` on `url`), or InvalidDpopProof / UseDpopNonce.
    `access_token`: the token it goes with (checks `ath`); `jkt`: the key the token is bound
    to; `nonce_key`: a server nonce is required."""
    if not proof:
        raise InvalidDpopProof("a DPoP proof (the DPoP header) is required")
    thumbprint, claims = _signed_claims(proof)
    if claims.get("htm") != method:
        raise InvalidDpopProof("the DPoP proof htm is not this request's method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalized_url(htu) != normalized_url(url):
        raise InvalidDpopProof("the DPoP proof htu is not this request's URL")
    iat = _iat(claims, now, max_age)
    if access_token is not None and not same(claims.get("ath"), access_token_hash(access_token)):
        raise InvalidDpopProof("the DPoP proof ath does not match the access token")
    if jkt is not None and not same(jkt, thumbprint):  # jkt: the token's claim, any string
        raise InvalidDpopProof("the DPoP proof key is not the key the token is bound to")
    if nonce_key is not None and not nonce_is_current(nonce_key, claims.get("nonce"), now):
        raise UseDpopNonce("a current server nonce is required in the DPoP proof", nonce=nonce(nonce_key, now))
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 256:
        raise InvalidDpopProof("the DPoP proof needs a jti of at most 256 characters")
    # §11.1: single use while its iat is inside the window, on every replica
    if not await store.use_jti(JTI_KIND, digest(f"{thumbprint}\n{jti}"), iat + max_age + 1, now):
        raise InvalidDpopProof("the DPoP proof jti was already used")
    return Proof(jkt=thumbprint, jti=jti, iat=iat)


def bound_key(claims: dict[str, Any]) -> str | None:
    """The `cnf.jkt` of a token's claims (RFC 9449 §6.1), or None for an unbound token (no
    `cnf`, or an empty one). A token confirmed otherwise (RFC 8705 `x5t#S256`, RFC 7800 `jwk`,
    a `jkt` that is not a thumbprint …) is InvalidToken: authgate cannot check that binding, and
    taking the token as a bearer one would drop the sender constraint its issuer put on it."""
    cnf = claims.get("cnf")
    if cnf is None or cnf == {}:
        return None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not isinstance(jkt, str) or not _THUMBPRINT.fullmatch(jkt):
        raise InvalidToken("the token is sender-constrained (cnf) by a method authgate cannot check: only cnf.jkt")
    return jkt
