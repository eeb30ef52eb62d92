"""DPoP pieces without a server (RFC 9449): `htu` normalization (RFC 3986 §6.2.2/§6.2.3, no query
or fragment), the per-process replay ledger of external mode, and the HTTP gateway's strip list
(the `DPoP` header never reaches the upstream)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from authgate.errors import InvalidDpopProof, InvalidToken, UseDpopNonce
from authgate.gateway.headers import IdentityHeaderNames, UpstreamRequestHeaders
from authgate.guard.dpop import MemoryJtis
from authgate.guard.identity import Identity
from authgate.oauth import dpop
from authgate.oauth.dpop import access_token_hash, normalized_url
from support import requirements as req
from support.dpop import DpopKey


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
@pytest.mark.parametrize(
    "given",
    [
        "https://mcp.example.com/mcp",
        "HTTPS://MCP.Example.COM/mcp",
        "https://mcp.example.com:443/mcp",
        "https://mcp.example.com/a/../mcp",
        "https://mcp.example.com/./mcp",
        "https://mcp.example.com/%6Dcp",  # an unreserved character percent-encoded
        "https://mcp.example.com/mcp?x=1#frag",
    ],
)
def test_htu_spellings_of_one_url_normalize_alike(given: str) -> None:
    assert normalized_url(given) == "https://mcp.example.com/mcp"


@pytest.mark.parametrize(
    "other", ["http://mcp.example.com/mcp", "https://mcp.example.com:8443/mcp", "https://mcp.example.com/MCP"]
)
def test_another_scheme_port_or_path_case_stays_another_url(other: str) -> None:
    assert normalized_url(other) != "https://mcp.example.com/mcp"


def test_percent_encoding_is_uppercased_and_empty_path_is_slash() -> None:
    assert normalized_url("https://h.example/a%2fb") == "https://h.example/a%2Fb"
    assert normalized_url("https://h.example") == "https://h.example/"
    with pytest.raises(InvalidDpopProof):
        normalized_url("mcp.example.com/mcp")


def test_ath_is_base64url_sha256_of_the_token() -> None:
    # RFC 9449 §7.1's example: the token "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU" and its ath
    assert (
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
        == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    )


async def test_the_memory_ledger_refuses_a_jti_until_it_expires() -> None:
    ledger = MemoryJtis(max_entries=2)
    assert await ledger.use_jti("dpop", "a", expires_at=100.0, now=0.0)
    assert not await ledger.use_jti("dpop", "a", expires_at=100.0, now=50.0)
    assert await ledger.use_jti("dpop", "a", expires_at=300.0, now=101.0)  # expired: a new use
    assert await ledger.use_jti("dpop", "b", 300.0, 101.0) and await ledger.use_jti("dpop", "c", 300.0, 101.0)
    assert len(ledger._seen) == 2  # bounded


def test_the_gateway_never_forwards_the_dpop_proof() -> None:
    identity = Identity(subject="s", client_id="c", scopes=("mcp",), audience=("https://gw/mcp",), expires_at=0)
    scope = {
        "type": "http",
        "headers": [(b"dpop", b"eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.sig"), (b"authorization", b"DPoP t"), (b"x-ok", b"1")],
        "client": ("10.0.0.7", 5555),
        "scheme": "https",
    }
    built = UpstreamRequestHeaders({}, IdentityHeaderNames()).build(scope, identity)
    names = {n.lower() for n, _ in built}
    assert "dpop" not in names and "authorization" not in names and "x-ok" in names


def test_userinfo_in_htu_makes_another_url() -> None:
    # RFC 3986 §6.2.2 normalizes case, encoding and dot segments; it never drops userinfo
    assert normalized_url("https://someone@mcp.example.com/mcp") != "https://mcp.example.com/mcp"
    assert normalized_url("https://a:b@MCP.example.com:443/mcp") == "https://a:b@mcp.example.com/mcp"


URL = "https://mcp.example.com/mcp"


async def _checked(proof: str, **given: Any) -> dpop.Proof:
    return await dpop.check(proof, method="POST", url=URL, now=time.time(), store=MemoryJtis(), **given)


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
@pytest.mark.parametrize("value", ["é", "\u2603" * 40, 7, ["x"], None])
async def test_an_odd_nonce_is_answered_use_dpop_nonce(value: object) -> None:
    # hmac.compare_digest raises TypeError on a non-ASCII str: that was a 500, not the RFC 9449 §8 answer
    key = DpopKey()
    proof = key.proof("POST", URL) if value is None else _with(key, nonce=value)
    with pytest.raises(UseDpopNonce) as caught:
        await _checked(proof, nonce_key=b"k" * 32)
    assert caught.value.nonce == dpop.nonce(b"k" * 32, time.time())


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
@pytest.mark.parametrize("ath", ["é", 12, {"a": 1}])
async def test_an_odd_ath_is_invalid_dpop_proof(ath: object) -> None:
    with pytest.raises(InvalidDpopProof, match="ath"):
        await _checked(_with(DpopKey(), ath=ath), access_token="tok")


async def test_a_token_bound_to_a_non_ascii_jkt_refuses_the_proof() -> None:
    # an IdP's token (external mode) may carry any string as cnf.jkt
    key = DpopKey()
    with pytest.raises(InvalidDpopProof, match="bound to"):
        await _checked(key.proof("POST", URL), jkt="é" + key.jkt[1:])
    assert (await _checked(key.proof("POST", URL), jkt=key.jkt)).jkt == key.jkt


def _with(key: DpopKey, **extra: object) -> str:
    """A proof of POST URL signed by `key`, with `extra` claims as given (any JSON value)."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.key.as_dict(private=False)}
    claims = {"htm": "POST", "htu": URL, "iat": int(time.time()), "jti": secrets.token_urlsafe(16), **extra}
    return jwt.encode(header, claims, key.key, algorithms=["ES256"])


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # the small key is the point
async def test_a_proof_by_an_rsa_key_under_2048_bits_is_refused() -> None:
    # RFC 7518 §3.3: RS256 needs a key of 2048 bits or more (joserfc signs and verifies 1024)
    small, enough = RSAKey.generate_key(1024, private=True), RSAKey.generate_key(2048, private=True)

    def signed(key: RSAKey) -> str:
        header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": key.as_dict(private=False)}
        claims = {"htm": "POST", "htu": URL, "iat": int(time.time()), "jti": secrets.token_urlsafe(16)}
        return jwt.encode(header, claims, key, algorithms=["RS256"])

    with pytest.raises(InvalidDpopProof, match="2048"):
        await _checked(signed(small))
    assert (await _checked(signed(enough))).jkt == enough.thumbprint()


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
@pytest.mark.parametrize(
    ("alg", "make"),
    [
        ("RS256", lambda: RSAKey.generate_key(2048, private=True)),
        ("PS512", lambda: RSAKey.generate_key(4096, private=True)),
        ("ES384", lambda: ECKey.generate_key("P-384", private=True)),
        ("ES512", lambda: ECKey.generate_key("P-521", private=True)),
        ("Ed25519", lambda: OKPKey.generate_key("Ed25519", private=True)),
    ],
)
async def test_every_advertised_alg_verifies(alg: str, make: Callable[[], Any]) -> None:
    # dpop_signing_alg_values_supported lists these: a proof by each must verify (RSA ones did
    # not: joserfc's default 512-byte header bound is smaller than a 2048-bit RSA jwk)
    key = make()
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": key.as_dict(private=False)}
    claims = {"htm": "POST", "htu": URL, "iat": int(time.time()), "jti": secrets.token_urlsafe(16)}
    proof = jwt.encode(header, claims, key, algorithms=[alg])
    assert (await _checked(proof, jkt=key.thumbprint())).jkt == key.thumbprint()
    assert alg in dpop.ALGS


@pytest.mark.requirement(req.RFC9449_4_3_PROOF_CHECKS)
@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # joserfc flags EdDSA as deprecated
async def test_the_deprecated_eddsa_name_is_accepted_but_not_advertised() -> None:
    # RFC 9864 deprecates the polymorphic `EdDSA` for `Ed25519`; clients that still send it
    # (older oauth4webapi, jose's remap) keep working, and the metadata names only Ed25519
    key = OKPKey.generate_key("Ed25519", private=True)
    header = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.as_dict(private=False)}
    claims = {"htm": "POST", "htu": URL, "iat": int(time.time()), "jti": secrets.token_urlsafe(16)}
    proof = jwt.encode(header, claims, key, algorithms=["EdDSA"])
    assert (await _checked(proof, jkt=key.thumbprint())).jkt == key.thumbprint()
    assert "EdDSA" not in dpop.ALGS and "Ed25519" in dpop.ALGS


@pytest.mark.requirement(req.RFC9449_7_RESOURCE_ACCESS)
@pytest.mark.parametrize(
    "cnf",
    [
        {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},  # RFC 8705: mTLS-bound
        {"jwk": {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}},  # RFC 7800
        {"jkt": 12},
        {"jkt": "é" * 43},
        {"jkt": ""},
        "jkt",
    ],
)
def test_a_token_bound_by_a_method_authgate_cannot_check_is_refused(cnf: object) -> None:
    # taken as unbound, such a token was accepted as a bearer token: its sender constraint dropped
    with pytest.raises(InvalidToken, match="cnf"):
        dpop.bound_key({"sub": "s", "cnf": cnf})


def test_an_unbound_or_jkt_bound_token_reads_as_before() -> None:
    key = DpopKey()
    assert dpop.bound_key({"sub": "s"}) is None and dpop.bound_key({"cnf": {}}) is None
    assert dpop.bound_key({"cnf": {"jkt": key.jkt}}) == key.jkt
    assert dpop.bound_key({"cnf": {"jkt": key.jkt, "x5t#S256": "x"}}) == key.jkt  # its jkt is checked
