"""Signing keys: generated, sealed at rest, shared by every replica through the store.

Lifecycle: next → active → retired → deleted. JWKS lists all three states, so a key is
published before it signs (caches pick it up ahead of rotation) and stays published after it
stops signing, for the longest access-token lifetime plus leeway. Any replica may rotate;
the others learn of new keys when they meet an unknown `kid` or on their periodic reload.

Algorithm (`token_signing_alg`): RS256 by default — RFC 9068 §2.1 makes it the one every
resource server must support — or ES256 (P-256), opt-in: ~7× cheaper to sign, ~2× dearer to
verify (docs/benchmarks.md, "OAuth flows"). Each key carries its algorithm; when the setting
changes, the next start makes a key of the new algorithm active and retires the old one, which
stays published (and verifies its tokens) until it is dropped like any retired key. A token is
verified with the algorithm of the key its `kid` names, never one the token picks: an RS256
`kid` with `"alg": "ES256"` (or HS256, `none`, anything else) is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from authgate.errors import ConfigError
from authgate.oauth.sealing import SealError, derive_key, seal, unseal
from authgate.store.models import SigningKey
from authgate.store.protocols import KeyStore

ALG = "RS256"  # RFC 9068 §2.1 / RFC 7518: the algorithm every resource server supports
ALGS = ("RS256", "ES256")  # what `token_signing_alg` may name, and all that verification accepts
Key = RSAKey | ECKey
_KEY_TYPES: dict[str, type[RSAKey] | type[ECKey]] = {"RS256": RSAKey, "ES256": ECKey}
_RELOAD_MIN_INTERVAL = 5.0


class SigningKeys:
    def __init__(
        self,
        store: KeyStore,
        secret: bytes,
        *,
        retire_after: float,
        alg: str = ALG,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if alg not in ALGS:
            raise ValueError(f"token signing algorithm {alg!r} is not one of {', '.join(ALGS)}")
        self._alg = alg  # what new keys use
        self._store = store
        self._seal_key = derive_key(secret, "signing-keys")
        self.nonce_key = derive_key(secret, "dpop-nonce")  # the same on every replica (oauth/dpop.py)
        self._retire_after = retire_after
        self._clock = clock
        self._records: list[SigningKey] = []
        self._public: dict[str, tuple[str, Key]] = {}  # kid → (its algorithm, its public key)
        self._signing: tuple[str, str, Key] | None = None  # kid, algorithm, private key
        self._last_reload = 0.0

    async def load(self) -> None:
        """Read keys; create an active and a next key if missing; drop long-retired ones."""
        await self._reload()
        now = self._clock()
        for r in self._records:
            if r.state == "next" and r.alg != self._alg:  # published, never signed: another alg was set
                await self._store.delete_key(r.kid)
        if not any(r.state == "active" and r.alg == self._alg for r in self._records):
            for r in self._records:  # token_signing_alg changed: the old key verifies until dropped
                if r.state == "active":
                    await self._store.set_key_state(r.kid, "retired", now)
            await self._store.add_key(self._generate("active", now))
        if not any(r.state == "next" and r.alg == self._alg for r in self._records):
            await self._store.add_key(self._generate("next", now))
        for r in self._records:
            if r.state == "retired" and r.retired_at and now - r.retired_at > self._retire_after:
                await self._store.delete_key(r.kid)
        await self._reload()

    async def rotate(self) -> str:
        """Promote next to active, retire the active key, create a new next. Returns new kid."""
        await self._reload()
        now = self._clock()
        nxt = [r for r in self._records if r.state == "next"]
        if not nxt:
            await self._store.add_key(self._generate("next", now))
            await self._reload()
            nxt = [r for r in self._records if r.state == "next"]
        for r in self._records:
            if r.state == "active":
                await self._store.set_key_state(r.kid, "retired", now)
        await self._store.set_key_state(nxt[0].kid, "active", now)
        await self._store.add_key(self._generate("next", now))
        await self._reload()
        return nxt[0].kid

    def signing_key(self) -> tuple[str, Key]:
        if self._signing is None:
            raise RuntimeError("SigningKeys.load() was not awaited")
        return self._signing[0], self._signing[2]

    @property
    def alg(self) -> str:
        """The algorithm of the key that signs now."""
        if self._signing is None:
            raise RuntimeError("SigningKeys.load() was not awaited")
        return self._signing[1]

    def sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """A JWS compact JWT of `claims` signed by the active key, its `alg` and `kid` in the
        header next to `header`'s members (e.g. `typ`)."""
        kid, alg, key = self._signing or self._not_loaded()
        return jwt.encode({**header, "alg": alg, "kid": kid}, claims, key, algorithms=[alg])

    @staticmethod
    def _not_loaded() -> tuple[str, str, Key]:
        raise RuntimeError("SigningKeys.load() was not awaited")

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(r.public_jwk, use="sig", alg=r.alg) for r in self._records]}

    async def verification_key(self, kid: str) -> tuple[str, Key] | None:
        """The algorithm and public key of `kid` (reloaded once when unknown and not lately)."""
        found = self._public.get(kid)
        if found is None and self._clock() - self._last_reload > _RELOAD_MIN_INTERVAL:
            await self._reload()  # another replica may have rotated
            found = self._public.get(kid)
        return found

    def _generate(self, state: str, now: float) -> SigningKey:
        key: Key = (
            ECKey.generate_key("P-256", private=True, auto_kid=True)
            if self._alg == "ES256"
            else RSAKey.generate_key(2048, private=True, auto_kid=True)
        )
        private = json.dumps(key.as_dict(private=True)).encode()
        return SigningKey(
            kid=str(key.kid),
            alg=self._alg,
            state=state,  # type: ignore[arg-type]
            public_jwk=key.as_dict(private=False),
            private_jwk_encrypted=seal(self._seal_key, private, aad=str(key.kid).encode()),
            created_at=now,
            activated_at=now if state == "active" else None,
        )

    async def _reload(self) -> None:
        self._records = sorted(await self._store.list_keys(), key=lambda r: r.created_at)
        self._public = {
            r.kid: (r.alg, _KEY_TYPES[r.alg].import_key(r.public_jwk)) for r in self._records if r.alg in _KEY_TYPES
        }
        active = [r for r in self._records if r.state == "active" and r.alg in _KEY_TYPES]
        if active:
            newest = max(active, key=lambda r: (r.activated_at or 0, r.created_at))
            try:
                sealed = unseal(self._seal_key, newest.private_jwk_encrypted, aad=newest.kid.encode())
            except SealError:
                raise ConfigError(
                    "secret_key",
                    "it does not open the signing keys stored in the database",
                    "start with the secret_key these keys were sealed with (every replica needs the same one)",
                ) from None
            private = json.loads(sealed)
            self._signing = (newest.kid, newest.alg, _KEY_TYPES[newest.alg].import_key(private))
        self._last_reload = self._clock()
