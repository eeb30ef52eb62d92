"""Upstream tokens at rest: sealed with AES-256-GCM under a key derived from `secret_key`
(HKDF, purpose "upstream-tokens"), the user id as associated data so a sealed blob cannot be
moved to another user. They are never handed to MCP clients. Upstream refresh is used where the
IdP gave a refresh token (GitHub OAuth apps give none)."""

from __future__ import annotations

import json
import time
from typing import Any

from authgate.oauth.sealing import derive_key, seal, unseal
from authgate.proxy.identity import UpstreamIdentity
from authgate.proxy.upstream import UpstreamClient
from authgate.store.models import UpstreamTokens
from authgate.store.protocols import UpstreamTokenStore

KEPT = ("access_token", "refresh_token", "id_token", "scope", "token_type")
REFRESH_MARGIN = 60.0


class UpstreamVault:
    def __init__(self, store: UpstreamTokenStore, secret: bytes, provider: str) -> None:
        self.store = store
        self.provider = provider
        self._key = derive_key(secret, "upstream-tokens")

    async def save(self, who: UpstreamIdentity, tokens: dict[str, Any], now: float) -> None:
        kept: dict[str, Any] = {k: tokens[k] for k in KEPT if isinstance(tokens.get(k), str)}
        if isinstance(tokens.get("expires_in"), int | float):
            kept["expires_at"] = now + float(tokens["expires_in"])
        blob = seal(self._key, json.dumps(kept).encode(), who.subject.encode())
        await self.store.save_upstream(UpstreamTokens(user_id=who.subject, provider=self.provider,
                                                      username=who.username, email=who.email,
                                                      sealed_tokens=blob, updated_at=now))

    async def tokens(self, user_id: str) -> dict[str, Any] | None:
        record = await self.store.get_upstream(user_id)
        if record is None:
            return None
        data: dict[str, Any] = json.loads(unseal(self._key, record.sealed_tokens, user_id.encode()))
        return data

    async def access_token(self, user_id: str, client: UpstreamClient) -> str | None:
        """A live upstream access token for `user_id`, refreshed first when it is about to
        expire and a refresh token is held; None when there is none (or it cannot be renewed)."""
        data = await self.tokens(user_id)
        if data is None:
            return None
        now = time.time()
        if float(data.get("expires_at", now + 3600)) > now + REFRESH_MARGIN:
            return str(data["access_token"])
        if "refresh_token" not in data:
            return None
        fresh = {**data, **await client.refresh(str(data["refresh_token"]))}
        record = await self.store.get_upstream(user_id)
        assert record is not None
        who = UpstreamIdentity(subject=user_id, username=record.username, email=record.email)
        await self.save(who, fresh, now)
        return str(fresh["access_token"])
