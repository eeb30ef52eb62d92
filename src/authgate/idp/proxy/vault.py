"""Upstream tokens at rest: sealed with AES-256-GCM under a key derived from `secret_key`
(HKDF, purpose "upstream-tokens"), the user id as associated data so a sealed blob cannot be
moved to another user. They are never handed to MCP clients. Upstream refresh is used where the
IdP gave a refresh token (GitHub OAuth apps give none): `fresh()` renews an access token about
to expire, once per user however many callers ask at the same moment."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from authgate.idp.proxy.identity import UpstreamIdentity
from authgate.idp.proxy.upstream_idp import TokenRequestRefused
from authgate.oauth.sealing import derive_key, seal, unseal
from authgate.store.models import UpstreamTokens
from authgate.store.protocols import UpstreamTokenStore

KEPT = ("access_token", "refresh_token", "id_token", "scope", "token_type")
REFRESH_MARGIN = 60.0
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
        self._renewals: dict[str, asyncio.Future[dict[str, Any] | None]] = {}

    async def save(self, who: UpstreamIdentity, tokens: dict[str, Any], now: float) -> dict[str, Any]:
        """Seals what is worth keeping of a token response (no `expires_in`: no expiry)."""
        kept: dict[str, Any] = {k: tokens[k] for k in KEPT if isinstance(tokens.get(k), str)}
        if isinstance(tokens.get("expires_in"), int | float):
            kept["expires_at"] = now + float(tokens["expires_in"])
        blob = seal(self._key, json.dumps(kept).encode(), who.subject.encode())
        await self.store.save_upstream(
            UpstreamTokens(
                user_id=who.subject,
                provider=self.provider,
                username=who.username,
                email=who.email,
                sealed_tokens=blob,
                updated_at=now,
            )
        )
        return kept

    async def tokens(self, user_id: str) -> dict[str, Any] | None:
        record = await self.store.get_upstream(user_id)
        return self._open(record) if record is not None else None

    async def fresh(self, user_id: str, client: Refresher) -> dict[str, Any] | None:
        """The user's upstream tokens, refreshed first when the access token expires within
        REFRESH_MARGIN and a refresh token is held; as stored when it is still valid (no call)
        or when there is nothing to refresh it with. None: nothing stored for `user_id`.
        Concurrent callers for one user share one refresh (an upstream that rotates refresh
        tokens would take a second use of the old one for theft). Raises what
        `client.refresh` raises, or SealError when the stored tokens do not open."""
        running = self._renewals.get(user_id)
        if running is None:
            running = asyncio.ensure_future(self._fresh(user_id, client))
            self._renewals[user_id] = running
            running.add_done_callback(lambda done: self._settled(user_id, done))
        # shielded: a caller that gives up (client gone) must not cancel the others' refresh
        return await asyncio.shield(running)

    async def access_token(self, user_id: str, client: Refresher) -> str | None:
        """A live upstream access token for `user_id` (refreshed if need be); None when there
        is none, or it expired and cannot be renewed."""
        data = await self.fresh(user_id, client)
        if data is None or _expiring(data, self.clock()):
            return None
        return str(data["access_token"])

    async def _fresh(self, user_id: str, client: Refresher) -> dict[str, Any] | None:
        record = await self.store.get_upstream(user_id)
        if record is None:
            return None
        data = self._open(record)
        now = self.clock()
        if not _expiring(data, now):
            return data
        if not isinstance(data.get("refresh_token"), str):
            log.debug(
                "the %s access token of %s has expired and no refresh token is held: "
                "the authgate grant stands on its own",
                self.provider,
                user_id,
            )
            return data
        try:
            answer = await client.refresh(data["refresh_token"])
        except TokenRequestRefused:
            latest = await self.store.get_upstream(user_id)
            if latest is not None and latest.sealed_tokens != record.sealed_tokens:
                return self._open(latest)  # another replica renewed it meanwhile: its answer stands
            raise
        who = UpstreamIdentity(subject=user_id, username=record.username, email=record.email)
        # rotation: a new refresh token replaces the old; an answer without one keeps the old
        return await self.save(who, {**data, **answer}, now)

    def _open(self, record: UpstreamTokens) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(unseal(self._key, record.sealed_tokens, record.user_id.encode()))
        return data

    def _settled(self, user_id: str, done: asyncio.Future[dict[str, Any] | None]) -> None:
        if self._renewals.get(user_id) is done:
            del self._renewals[user_id]
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have given up on it


def _expiring(data: dict[str, Any], now: float) -> bool:
    """No `expires_at` (the upstream gave no `expires_in`, as GitHub OAuth apps): never."""
    return float(data.get("expires_at", math.inf)) <= now + REFRESH_MARGIN
