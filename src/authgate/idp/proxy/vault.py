"""Upstream tokens at rest: sealed with AES-256-GCM under a key derived from `secret_key`
(HKDF, purpose "upstream-tokens"), the user id as associated data so a sealed blob cannot be
moved to another user. They are never handed to MCP clients. Upstream refresh is used where the
IdP gave a refresh token (GitHub OAuth apps give none): `fresh()` renews an access token about
to expire, once per user however many callers ask at the same moment — in this process (one
shared task) and across replicas: the renewing replica first swaps a claim into the user's row
(`swap_upstream`, a compare-and-swap on the sealed blob), and the others wait for the row to
change instead of spending the same refresh token (an IdP that rotates refresh tokens takes a
second use of the old one for theft and ends the grant: RFC 9700 §4.14.2). A claim lapses after
CLAIM_SECONDS, so a replica that died mid-renewal holds nobody up for longer."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from authgate.connections.renewal import SingleFlight
from authgate.idp.proxy.identity import UpstreamIdentity
from authgate.idp.proxy.upstream_idp import TIMEOUT, TokenEndpointUnavailable, TokenRequestRefused
from authgate.oauth.sealing import derive_key, seal, unseal
from authgate.store.models import UpstreamTokens
from authgate.store.protocols import UpstreamTokenStore

KEPT = ("access_token", "refresh_token", "id_token", "scope", "token_type")
REFRESH_MARGIN = 60.0
CLAIM = "renewing_until"  # in the sealed blob: another replica is renewing these tokens until then
CLAIM_SECONDS = 3 * TIMEOUT  # the upstream call's own timeout, with room for the writes around it
POLL_SECONDS = 0.1
log = logging.getLogger("authgate.proxy")


class Refresher(Protocol):
    """What the vault needs of the upstream client (`UpstreamClient.refresh`)."""

    async def refresh(self, refresh_token: str) -> dict[str, Any]: ...


class UpstreamVault:
    def __init__(
        self, store: UpstreamTokenStore, secret: bytes, provider: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.provider = provider
        self.clock = clock
        self._key = derive_key(secret, "upstream-tokens")
        self._renewals: SingleFlight[str, dict[str, Any] | None] = SingleFlight()  # one per user, this process

    async def save(self, who: UpstreamIdentity, tokens: dict[str, Any], now: float) -> dict[str, Any]:
        """Seals what is worth keeping of a token response (no `expires_in`: no expiry)."""
        kept: dict[str, Any] = {k: tokens[k] for k in KEPT if isinstance(tokens.get(k), str)}
        if isinstance(tokens.get("expires_in"), int | float):
            kept["expires_at"] = now + float(tokens["expires_in"])
        await self.store.save_upstream(
            UpstreamTokens(
                user_id=who.subject,
                provider=self.provider,
                username=who.username,
                email=who.email,
                sealed_tokens=self._sealed(who.subject, kept),
                updated_at=now,
            )
        )
        return kept

    async def tokens(self, user_id: str) -> dict[str, Any] | None:
        record = await self.store.get_upstream(user_id)
        if record is None:
            return None
        data = self._open(record)
        data.pop(CLAIM, None)
        return data

    async def fresh(self, user_id: str, client: Refresher) -> dict[str, Any] | None:
        """The user's upstream tokens, refreshed first when the access token expires within
        REFRESH_MARGIN and a refresh token is held; as stored when it is still valid (no call)
        or when there is nothing to refresh it with. None: nothing stored for `user_id`.
        Concurrent callers for one user share one refresh, in this process and across replicas
        (an upstream that rotates refresh tokens would take a second use of the old one for
        theft); a caller that waited for another replica's renewal takes its result. Raises what
        `client.refresh` raises (TokenEndpointUnavailable also when a renewal waited for does
        not end in time), or SealError when the stored tokens do not open."""
        # shielded there: a caller that gives up (client gone) must not cancel the others' refresh
        return await self._renewals.run(user_id, lambda: self._fresh(user_id, client))

    async def access_token(self, user_id: str, client: Refresher) -> str | None:
        """A live upstream access token for `user_id` (refreshed if need be); None when there
        is none, or it expired and cannot be renewed."""
        data = await self.fresh(user_id, client)
        if data is None or expired(data, self.clock()):
            return None
        return str(data["access_token"])

    async def _fresh(self, user_id: str, client: Refresher) -> dict[str, Any] | None:
        """One pass per change of the row: use it, wait for another replica's renewal, or claim
        the renewal (a lost race to claim reads the row again)."""
        waited = False
        deadline = time.monotonic() + 2 * CLAIM_SECONDS
        while time.monotonic() < deadline:
            record = await self.store.get_upstream(user_id)
            if record is None:
                return None
            data = self._open(record)
            now = self.clock()
            renewing = float(data.pop(CLAIM, 0.0))
            if not _expiring(data, now) or (waited and renewing <= now and not expired(data, now)):
                return data  # valid, or just renewed by the replica this one waited for
            if not isinstance(data.get("refresh_token"), str):
                log.debug(
                    "the %s access token of %s has expired and no refresh token is held: "
                    "the authgate grant stands on its own",
                    self.provider,
                    user_id,
                )
                return data
            if renewing > now:  # another replica is renewing: its answer is ours
                waited = True
                await asyncio.sleep(POLL_SECONDS)
                continue
            claimed = self._sealed(user_id, {**data, CLAIM: now + CLAIM_SECONDS})
            if await self.store.swap_upstream(
                replace(record, sealed_tokens=claimed, updated_at=now), record.sealed_tokens
            ):
                return await self._renew(replace(record, sealed_tokens=claimed), data, client, now)
        raise TokenEndpointUnavailable(f"the renewal of the {self.provider} tokens of {user_id} did not finish in time")

    async def _renew(
        self, claimed: UpstreamTokens, data: dict[str, Any], client: Refresher, now: float
    ) -> dict[str, Any]:
        """Spends the refresh token; the claim in `claimed` (the row as this replica left it) is
        replaced by the new tokens, or released on failure so that the next caller tries again."""
        user_id = claimed.user_id
        try:
            answer = await client.refresh(data["refresh_token"])
        except (TokenRequestRefused, TokenEndpointUnavailable):
            latest = await self.store.get_upstream(user_id)
            if latest is not None and latest.sealed_tokens != claimed.sealed_tokens:
                renewed = self._open(latest)  # another replica renewed it meanwhile (our claim lapsed)
                renewed.pop(CLAIM, None)
                return renewed
            released = replace(claimed, sealed_tokens=self._sealed(user_id, data), updated_at=self.clock())
            await self.store.swap_upstream(released, claimed.sealed_tokens)
            raise
        who = UpstreamIdentity(subject=user_id, username=claimed.username, email=claimed.email)
        # rotation: a new refresh token replaces the old; an answer without one keeps the old
        return await self.save(who, {**data, **answer}, now)

    def _sealed(self, user_id: str, data: dict[str, Any]) -> bytes:
        return seal(self._key, json.dumps(data).encode(), user_id.encode())

    def _open(self, record: UpstreamTokens) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(unseal(self._key, record.sealed_tokens, record.user_id.encode()))
        return data


def _expiring(data: dict[str, Any], now: float) -> bool:
    """No `expires_at` (the upstream gave no `expires_in`, as GitHub OAuth apps): never."""
    return expired(data, now + REFRESH_MARGIN)


def expired(data: dict[str, Any], now: float) -> bool:
    """The access token in `data` (as `fresh()` returns it) can no longer be used at `now`."""
    return float(data.get("expires_at", math.inf)) <= now
