"""The DPoP scheme on the MCP endpoint (RFC 9449 §7): `Authorization: DPoP <token>` and one
`DPoP` header holding a proof of this request, by the key the token is bound to.

The token is checked as a bearer token is (guard/bearer.py, the verifier's cache included);
then the proof (oauth/dpop.py): `htm` the request's method, `htu` authgate's public MCP URL,
`ath` the token's hash, the key's thumbprint the token's `cnf.jkt`, `jti` once on every
replica, and a server nonce when `dpop_nonce` is on. A refusal is a 401 whose DPoP challenge
carries the error (`invalid_token`, `invalid_dpop_proof`, `use_dpop_nonce` with `DPoP-Nonce`).
A token that is not DPoP-bound is refused with this scheme: it is a Bearer token.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Scope

from authgate.errors import InvalidDpopProof, InvalidToken, UseDpopNonce
from authgate.guard.bearer import BearerCheck, JsonAnswer
from authgate.guard.identity import Identity
from authgate.oauth import dpop
from authgate.oauth.dpop import JtiLedger

__all__ = ["DpopCheck", "MemoryJtis", "dpop_token"]


class MemoryJtis:
    """Proofs' `jti`s in this process, for external mode (no database): single use per replica
    only (docs/dpop.md). Bounded: the oldest entries go first past `max_entries`."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._max = max_entries

    async def use_jti(self, kind: str, jti_hash: str, expires_at: float, now: float) -> bool:
        while self._seen and next(iter(self._seen.values())) < now:  # expired first: insertion ≈ expiry order
            self._seen.popitem(last=False)
        key = (kind, jti_hash)
        if key in self._seen and self._seen[key] >= now:
            return False
        self._seen[key] = expires_at
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        return True


def dpop_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: DPoP …` value (scheme case-insensitive), else None."""
    if not authorization or authorization[:5].lower() != "dpop ":
        return None
    return authorization[5:].strip() or None


class DpopCheck:
    def __init__(
        self,
        bearer: BearerCheck,
        store: JtiLedger,
        *,
        url: str,
        nonce_key: bytes | None = None,
        max_age: int = dpop.MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bearer = bearer
        self.store = store
        self.url = url  # authgate's public MCP URL: what `htu` must name
        self.nonce_key = nonce_key
        self.max_age = max_age
        self.clock = clock

    async def identify(self, token: str, scope: Scope) -> Identity | ASGIApp:
        """The caller, once the token and this request's proof check; else the answer."""
        found = self.bearer.known(token) or await self.bearer.identify(token, dpop=True)
        if not isinstance(found, Identity):
            return found
        if found.jkt is None:
            return self._refused(InvalidToken("this token is not DPoP-bound: send it with the Bearer scheme"))
        proofs = [value for name, value in scope["headers"] if name == b"dpop"]
        if len(proofs) > 1:  # RFC 9449 §4.3 item 1: exactly one
            return self._refused(InvalidDpopProof("send exactly one DPoP header"))
        try:
            await dpop.check(
                proofs[0].decode("latin-1") if proofs else None,
                method=scope["method"],
                url=self.url,
                now=self.clock(),
                store=self.store,
                access_token=token,
                jkt=found.jkt,
                nonce_key=self.nonce_key,
                max_age=self.max_age,
            )
        except (InvalidDpopProof, InvalidToken) as exc:
            return self._refused(exc)
        return found

    def _refused(self, exc: InvalidDpopProof | InvalidToken) -> JsonAnswer:
        extra = ((b"dpop-nonce", exc.nonce.encode()),) if isinstance(exc, UseDpopNonce) else ()
        return self.bearer.challenge(401, exc.error, exc.description, dpop_error=True, extra=extra)
