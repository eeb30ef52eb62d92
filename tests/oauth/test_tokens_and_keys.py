"""Access tokens (RFC 9068), signing-key rotation and sealing, on a real SQLite store."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authgate.errors import ConfigError, InvalidToken
from authgate.oauth import access_tokens
from authgate.oauth.keys import SigningKeys
from authgate.oauth.sealing import SealError, derive_key, seal, unseal
from authgate.store.sql import SqlStore
from support import requirements as req

ISS, AUD = "https://as.example", "https://as.example/mcp"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def keys(store: SqlStore) -> SigningKeys:
    k = SigningKeys(store, b"secret", retire_after=1200, clock=Clock())
    await k.load()
    return k


def issue(keys: SigningKeys, now: float, **kw: object) -> str:
    args: dict[str, object] = dict(
        issuer=ISS, subject="u1", client_id="c1", scopes=("mcp",), resources=(AUD,), now=now, ttl=900, grant_id="g1"
    )
    args.update(kw)
    return access_tokens.issue(keys, **args)[0]  # type: ignore[arg-type]


def segments(token: str) -> list[dict[str, object]]:
    return [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in token.split(".")[:2]]


@pytest.mark.requirement(req.RFC9068_2_SHAPE)
async def test_access_token_has_rfc_9068_shape(keys: SigningKeys) -> None:
    header, claims = segments(issue(keys, 1000.0))
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256" and header["kid"]
    for claim in ("iss", "sub", "aud", "client_id", "scope", "iat", "exp", "jti"):
        assert claim in claims
    assert claims["aud"] == AUD and claims["exp"] == 1900


async def test_valid_token_verifies(keys: SigningKeys) -> None:
    claims = await access_tokens.verify(issue(keys, 1000.0), keys, issuer=ISS, audience=AUD, now=1000.0)
    assert (claims.subject, claims.client_id, claims.scopes, claims.grant_id) == ("u1", "c1", ("mcp",), "g1")


@pytest.mark.requirement(req.RFC9068_4_AUD)
@pytest.mark.requirement(req.RFC9068_4_ISS)
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"resources": ("https://other.example/mcp",)}, "audience"),
        ({"issuer": "https://evil.example"}, "issuer"),
    ],
)
async def test_wrong_audience_or_issuer_is_refused(keys: SigningKeys, kw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidToken, match=message):
        await access_tokens.verify(issue(keys, 1000.0, **kw), keys, issuer=ISS, audience=AUD, now=1000.0)


@pytest.mark.requirement(req.RFC9068_4_EXP)
async def test_expiry_with_leeway(keys: SigningKeys) -> None:
    token = issue(keys, 1000.0)
    await access_tokens.verify(token, keys, issuer=ISS, audience=AUD, now=1900 + access_tokens.LEEWAY)
    with pytest.raises(InvalidToken, match="expired"):
        await access_tokens.verify(token, keys, issuer=ISS, audience=AUD, now=1901 + access_tokens.LEEWAY)


@pytest.mark.requirement(req.RFC8725_3_1_ALGORITHM_PINNED)
@pytest.mark.requirement(req.RFC9068_2_1_TYP_AT_JWT)
async def test_algorithm_and_type_confusion_is_refused(keys: SigningKeys) -> None:
    token = issue(keys, 1000.0)
    head, body, sig = token.split(".")

    def b64(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    header = segments(token)[0]
    for forged in ({**header, "alg": "none"}, {**header, "alg": "HS256"}, {**header, "typ": "JWT"}):
        with pytest.raises(InvalidToken):
            await access_tokens.verify(f"{b64(forged)}.{body}.{sig}", keys, issuer=ISS, audience=AUD, now=1000.0)
    with pytest.raises(InvalidToken, match="signature"):
        await access_tokens.verify(f"{head}.{body[:-4]}AAAA.{sig}", keys, issuer=ISS, audience=AUD, now=1000.0)


async def test_rotation_keeps_old_tokens_valid_and_publishes_next_before_use(store: SqlStore) -> None:
    clock = Clock()
    keys = SigningKeys(store, b"secret", retire_after=1200, clock=clock)
    await keys.load()
    published = {k["kid"] for k in keys.jwks()["keys"]}
    old_token = issue(keys, clock.now)
    new_kid = await keys.rotate()
    assert new_kid in published  # the next key was in the JWKS before it signed anything
    assert segments(issue(keys, clock.now))[0]["kid"] == new_kid
    await access_tokens.verify(old_token, keys, issuer=ISS, audience=AUD, now=clock.now)  # retired still verifies
    clock.now += 1201
    await keys.load()  # past the longest token lifetime + leeway: the retired key goes
    assert segments(old_token)[0]["kid"] not in {k["kid"] for k in keys.jwks()["keys"]}


async def test_private_keys_are_sealed_at_rest(store: SqlStore, keys: SigningKeys) -> None:
    records = await store.list_keys()
    assert records and all(b'"d"' not in r.private_jwk_encrypted for r in records)
    other = SigningKeys(store, b"another secret", retire_after=1200)
    with pytest.raises(ConfigError) as err:
        await other.load()
    assert err.value.setting == "secret_key"


def test_sealing_round_trip_and_tamper_detection() -> None:
    key = derive_key(b"refresh-token-plaintext", "refresh-successor")
    blob = seal(key, b"payload")
    assert unseal(key, blob) == b"payload"
    with pytest.raises(SealError):
        unseal(derive_key(b"another token", "refresh-successor"), blob)
    with pytest.raises(SealError):
        unseal(key, blob[:-1] + bytes([blob[-1] ^ 1]))


# -- token_signing_alg: RS256 (the default) or ES256 ----------------------------------------------


def _b64(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _hs256(header: dict[str, object], body: str, secret: bytes) -> str:
    """A token signed with HMAC-SHA-256 under `secret` (e.g. a public key's bytes)."""
    import hashlib
    import hmac

    head = _b64(header)
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_token_of_each_algorithm_verifies_and_the_jwks_names_its_key(store: SqlStore, alg: str) -> None:
    keys = SigningKeys(store, b"secret", retire_after=1200, alg=alg, clock=Clock())
    await keys.load()
    token = issue(keys, 1000.0)
    header = segments(token)[0]
    assert header["alg"] == alg == keys.alg
    claims = await access_tokens.verify(token, keys, issuer=ISS, audience=AUD, now=1000.0)
    assert claims.subject == "u1"
    published = {k["kid"]: k for k in keys.jwks()["keys"]}
    assert published[str(header["kid"])]["alg"] == alg
    assert published[str(header["kid"])]["kty"] == ("EC" if alg == "ES256" else "RSA")
    assert all("d" not in k for k in published.values())  # public halves only


async def test_changing_the_algorithm_keeps_both_kinds_published_and_verifying(store: SqlStore) -> None:
    clock = Clock()
    rsa = SigningKeys(store, b"secret", retire_after=1200, clock=clock)
    await rsa.load()
    old = issue(rsa, clock.now)
    ec = SigningKeys(store, b"secret", retire_after=1200, alg="ES256", clock=clock)  # the next start
    await ec.load()
    new = issue(ec, clock.now)
    assert segments(new)[0]["alg"] == "ES256"
    kinds = {(k["alg"], k["kty"]) for k in ec.jwks()["keys"]}
    assert kinds == {("RS256", "RSA"), ("ES256", "EC")}  # the RS256 key retired, still published
    assert sorted(r.state for r in await store.list_keys() if r.alg == "RS256") == ["retired"]  # its next went
    for token in (old, new):  # either kind verifies
        await access_tokens.verify(token, ec, issuer=ISS, audience=AUD, now=clock.now)
    clock.now += 6  # a replica started before the change meets the new kid and reloads the keys
    for token in (old, new):
        await access_tokens.verify(token, rsa, issuer=ISS, audience=AUD, now=clock.now)
    assert segments(issue(rsa, clock.now))[0]["alg"] == "ES256"  # and signs with the active key from then on
    rotated = await ec.rotate()
    assert {**segments(issue(ec, clock.now))[0]}.items() >= {"kid": rotated, "alg": "ES256"}.items()  # stays ES256
    clock.now += 1201
    await ec.load()  # the retired RS256 key goes like any other
    assert {k["alg"] for k in ec.jwks()["keys"]} == {"ES256"}
    with pytest.raises(InvalidToken, match="unknown key"):
        await access_tokens.verify(old, ec, issuer=ISS, audience=AUD, now=clock.now - 1201)


@pytest.mark.requirement(req.RFC8725_3_1_ALGORITHM_PINNED)
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_the_key_decides_the_algorithm_never_the_token(store: SqlStore, alg: str) -> None:
    keys = SigningKeys(store, b"secret", retire_after=1200, alg=alg, clock=Clock())
    await keys.load()
    token = issue(keys, 1000.0)
    head, body, sig = token.split(".")
    header = segments(token)[0]
    public = json.dumps(keys.jwks()["keys"][0]).encode()
    other = "ES256" if alg == "RS256" else "RS256"
    forged = [
        _hs256({**header, "alg": "HS256"}, body, public),  # HMAC keyed with the public key
        f"{_b64({**header, 'alg': 'none'})}.{body}.",  # unsigned
        f"{_b64({**header, 'alg': 'none'})}.{body}.{sig}",
        f"{_b64({**header, 'alg': other})}.{body}.{sig}",  # the other accepted alg, on this key
        f"{_b64({**header, 'alg': 'RS384'})}.{body}.{sig}",  # an algorithm not configured
        f"{_b64({**header, 'alg': 'PS256'})}.{body}.{sig}",
        f"{_b64({**header, 'alg': 'EdDSA'})}.{body}.{sig}",
    ]
    for token in forged:
        with pytest.raises(InvalidToken):
            await access_tokens.verify(token, keys, issuer=ISS, audience=AUD, now=1000.0)
    await access_tokens.verify(f"{head}.{body}.{sig}", keys, issuer=ISS, audience=AUD, now=1000.0)


def test_only_rs256_and_es256_can_be_configured(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from authgate.config.tokens import TokenSettings

    assert TokenSettings().token_signing_alg == "RS256"  # RFC 9068 §2.1
    assert TokenSettings(token_signing_alg="ES256").token_signing_alg == "ES256"
    for alg in ("HS256", "none", "RS384", "es256"):
        with pytest.raises(ValidationError):
            TokenSettings(token_signing_alg=alg)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="HS256"):
        SigningKeys(SqlStore(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"), b"s", retire_after=1, alg="HS256")
