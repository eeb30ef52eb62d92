"""Signing keys: generated, sealed at rest, shared by every replica through the store.

Lifecycle: next → active → retired → deleted. JWKS lists all three states, so a key is
published before it signs (caches pick it up ahead of rotation) and stays published after it
stops signing, for the longest access-token lifetime plus leeway. Any replica may rotate;
the others learn of new keys when they meet an unknown `kid` or on their periodic reload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from joserfc.jwk import RSAKey

from authgate.errors import ConfigError
from authgate.oauth.sealing import SealError, derive_key, seal, unseal
from authgate.store.models import SigningKey
from authgate.store.protocols import KeyStore

ALG = "RS256"  # RFC 9068 §2.1 / RFC 7518: the algorithm every resource server supports
_RELOAD_MIN_INTERVAL = 5.0


class SigningKeys:
    def __init__(
        self, store: KeyStore, secret: bytes, *, retire_after: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._seal_key = derive_key(secret, "signing-keys")
        self.nonce_key = derive_key(secret, "dpop-nonce")  # the same on every replica (oauth/dpop.py)
        self._retire_after = retire_after
        self._clock = clock
        self._records: list[SigningKey] = []
        self._public: dict[str, RSAKey] = {}
        self._signing: tuple[str, RSAKey] | None = None
        self._last_reload = 0.0

    async def load(self) -> None:
        """Read keys; create an active and a next key if missing; drop long-retired ones."""
        await self._reload()
        now = self._clock()
        if not any(r.state == "active" for r in self._records):
            await self._store.add_key(self._generate("active", now))
        if not any(r.state == "next" for r in self._records):
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

    def signing_key(self) -> tuple[str, RSAKey]:
        if self._signing is None:
            raise RuntimeError("SigningKeys.load() was not awaited")
        return self._signing

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(r.public_jwk, use="sig", alg=r.alg) for r in self._records]}

    async def verification_key(self, kid: str) -> RSAKey | None:
        key = self._public.get(kid)
        if key is None and self._clock() - self._last_reload > _RELOAD_MIN_INTERVAL:
            await self._reload()  # another replica may have rotated
            key = self._public.get(kid)
        return key

    def cached_verification_key(self, kid: str) -> RSAKey | None:
        return self._public.get(kid)

    def _generate(self, state: str, now: float) -> SigningKey:
        key = RSAKey.generate_key(2048, private=True, auto_kid=True)
        private = json.dumps(key.as_dict(private=True)).encode()
        return SigningKey(
            kid=str(key.kid),
            alg=ALG,
            state=state,  # type: ignore[arg-type]
            public_jwk=key.as_dict(private=False),
            private_jwk_encrypted=seal(self._seal_key, private, aad=str(key.kid).encode()),
            created_at=now,
            activated_at=now if state == "active" else None,
        )

    async def _reload(self) -> None:
        self._records = sorted(await self._store.list_keys(), key=lambda r: r.created_at)
        self._public = {r.kid: RSAKey.import_key(r.public_jwk) for r in self._records}
        active = [r for r in self._records if r.state == "active"]
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
            self._signing = (newest.kid, RSAKey.import_key(private))
        self._last_reload = self._clock()
