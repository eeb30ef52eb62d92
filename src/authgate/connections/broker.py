"""`ConnectionBroker`: each user's tokens for third-party providers — given, refreshed, revoked.

| the stored connection of (user, provider)  | provider's answer | `token()` gives                      |
| ------------------------------------------ | ----------------- | ------------------------------------ |
| none                                       | (no call)         | None (RFC 8693 first where enabled)  |
| valid beyond `refresh_margin`              | (no call)         | the access token                     |
| expiring, a refresh token held             | new tokens        | the new access token (sealed again)  |
|                                            | invalid_grant     | None; the row removed (grant ended)  |
|                                            | down, other error | OutboundAuthError; the claim released|
| expired, no refresh token                  | (no call)         | None; the row removed                |

One refresh per (user, provider) at a time: in this process callers share one task
(`renewal.SingleFlight`); across replicas the renewing one first claims the row
(`renewing_until`, a compare-and-swap on its `version`, as idp/proxy/vault.py does on its sealed
blob) and the others wait for the row to change instead of spending the same refresh token (a
provider that rotates refresh tokens takes a second use for theft: RFC 9700 §4.14.2). A claim
lapses after CLAIM_SECONDS. Tokens are sealed per (user, provider) (AES-256-GCM, HKDF purpose
"connection-tokens", the pair as associated data) and never logged. The connect page's steps
are in `authgate.connections.links`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from authgate.connections import links
from authgate.connections.providers import ConnectionInfo, ProviderConfig
from authgate.connections.remote import RemoteServers
from authgate.connections.renewal import SingleFlight
from authgate.errors import ConnectionRequired
from authgate.oauth.sealing import SealError, derive_key, seal, unseal
from authgate.outbound import authorization
from authgate.outbound.authorization import Tokens
from authgate.outbound.errors import OutboundAuthError
from authgate.outbound.registration import ClientProfile
from authgate.store.models import StoredConnection
from authgate.store.protocols import ConnectionStore

__all__ = ["ConnectionBroker", "TokenExchanger"]

CLAIM_SECONDS = 30.0  # the refresh's own timeout (10 s) with room for the writes around it
POLL_SECONDS = 0.1
GRANT_ENDED = frozenset({"invalid_grant"})  # RFC 6749 §5.2: the refresh token is dead
log = logging.getLogger("authgate.connections")


class TokenExchanger(Protocol):
    """RFC 8693 toward a provider that trusts authgate's issuer (authgate.outbound.exchange):
    tokens for `user_id` without a browser, or None when not possible for this provider."""

    async def exchange(self, user_id: str, provider: ProviderConfig) -> Tokens | None: ...


class ConnectionBroker:
    """One per app (server/app.py); on the ASGI scope at `guard.identity.CONNECTION_BROKER_KEY`."""

    def __init__(
        self,
        providers: Mapping[str, ProviderConfig],
        store: ConnectionStore,
        secret: bytes,
        *,
        public_url: str,
        link_ttl: float = 900.0,
        refresh_margin: float = 60.0,
        allow_loopback_http: bool = False,
        cimd_url: str | None = None,
        client_name: str = "authgate",
        clock: Callable[[], float] = time.time,
        remote: RemoteServers | None = None,
    ) -> None:
        self.providers: dict[str, ProviderConfig] = dict(providers)
        self.store = store
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.redirect_uri = f"{self.public_url}/connect/callback"
        self.link_ttl = link_ttl
        self.refresh_margin = refresh_margin
        profile = ClientProfile(redirect_uri=self.redirect_uri, client_name=client_name, cimd_url=cimd_url)
        self.remote = remote or RemoteServers(
            store, secret, profile, allow_loopback_http=allow_loopback_http, clock=clock
        )
        self.exchanger: TokenExchanger | None = None  # RFC 8693 (helper S plugs it in)
        self._key = derive_key(secret, "connection-tokens")
        self._pending_key = derive_key(secret, "connect-pending")
        self._flight: SingleFlight[tuple[str, str], str | None] = SingleFlight()
        self.refreshes = 0  # refresh requests this process sent (tests, logs)

    # -- what tools and the gateway ask ---------------------------------------------------------
    async def token(self, user_id: str, provider: str) -> str | None:
        """A fresh access token of `user_id` at `provider`, or None (not connected, or the grant
        ended: the row is then removed). Raises OutboundAuthError when the provider cannot renew
        it now (retry later), KeyError for a provider that is not configured."""
        found = await self._fresh(user_id, self.providers[provider])
        return found[0] if found else None

    async def require(self, user_id: str, client_id: str, provider: str, scopes: tuple[str, ...] = ()) -> str:
        """The token when the connection holds every scope of `scopes`; else ConnectionRequired
        with a fresh connect link for (user, client), asking the provider's configured scopes,
        those held so far and `scopes` (a step-up asks for the union)."""
        config = self.providers[provider]
        found = await self._fresh(user_id, config)
        if found is not None and set(scopes) <= set(found[1]):
            return found[0]
        held = found[1] if found else ()
        wanted = tuple(dict.fromkeys((*config.scopes, *held, *scopes)))
        link = await links.make(self, user_id, client_id, provider, wanted)
        raise ConnectionRequired(provider, self.connect_url(link), link, wanted)

    async def renew(self, user_id: str, provider: str, rejected: str) -> str | None:
        """The provider refused `rejected` (a 401, gateway/http/upstream_oauth.py): the token that
        replaced it meanwhile, else a refresh now whatever its expiry says; `rejected` itself
        when there is nothing to renew it with, None when the connection is gone."""
        config = self.providers[provider]
        return await self._flight.run((user_id, provider), lambda: self._renewal(user_id, config, rejected))

    async def revoke(self, user_id: str, provider: str) -> bool:
        """Remove the connection; also revoke its tokens at the provider's revocation endpoint
        (RFC 7009) when it has one (best effort: the connection is gone here either way)."""
        row = await self.store.get_connection(user_id, provider)
        if row is None or not await self.store.delete_connection(user_id, provider):
            return False
        config = self.providers.get(provider)
        if config is not None:
            try:
                await self._revoke_remote(config, self._open(row))
            except (OutboundAuthError, SealError) as exc:
                log.warning("revoking the %s tokens of %s at the provider failed: %s", provider, user_id, exc)
        log.info("connection of %s to %s revoked", user_id, provider)
        return True

    async def revoke_all(self, user_id: str) -> int:
        """Revoke every connection of `user_id` (before the person is removed); how many."""
        return sum([await self.revoke(user_id, c.provider) for c in await self.list(user_id)])

    async def list(self, user_id: str | None = None) -> list[ConnectionInfo]:
        """A user's connections (everyone's when None): never a token."""
        return [self._info(row) for row in await self.store.list_connections(user_id)]

    def connect_url(self, elicitation_id: str) -> str:
        return f"{self.public_url}/connect/{elicitation_id}"

    # -- the connect page (server/routes/connect.py) -------------------------------------------
    async def begin(self, elicitation_id: str, user_id: str, session: str) -> str:
        """The provider's authorization URL for the link, opened by `user_id` in the browser
        session `session`; raises ConnectLinkError (not theirs, unknown, expired, completed)."""
        return await links.begin(self, elicitation_id, user_id, session)

    async def complete(self, callback_query: str, session: str) -> ConnectionInfo:
        """The provider's redirect back (its query string) in the browser session `session`:
        state, session and iss checked, the code redeemed, the connection stored."""
        return await links.complete(self, callback_query, session)

    async def aclose(self) -> None:
        await self.remote.aclose()

    # -- refresh ---------------------------------------------------------------------------------
    async def _fresh(self, user_id: str, config: ProviderConfig) -> tuple[str, tuple[str, ...]] | None:
        row = await self.store.get_connection(user_id, config.name)
        if row is None:
            return await self._exchanged(user_id, config)
        if not self._expiring(row, self.clock()):
            return str(self._open(row)["access_token"]), row.scopes
        token = await self._flight.run((user_id, config.name), lambda: self._renewal(user_id, config))
        if token is None:  # the grant ended (the row is gone): RFC 8693 again where enabled
            return await self._exchanged(user_id, config)
        latest = await self.store.get_connection(user_id, config.name)
        return token, latest.scopes if latest else ()

    async def _exchanged(self, user_id: str, config: ProviderConfig) -> tuple[str, tuple[str, ...]] | None:
        if not (config.token_exchange and self.exchanger is not None):
            return None
        tokens = await self.exchanger.exchange(user_id, config)
        if tokens is None:
            return None
        await self.save(user_id, config.name, tokens)
        return tokens.access_token, tokens.scopes

    async def _renewal(self, user_id: str, config: ProviderConfig, rejected: str | None = None) -> str | None:
        """One pass per change of the row: use it, wait for another replica's renewal, or claim
        the renewal (a lost race to claim reads the row again). `rejected`: a token the provider
        refused, renewed whatever its expiry says."""
        waited = False
        deadline = time.monotonic() + 2 * CLAIM_SECONDS
        while time.monotonic() < deadline:
            row = await self.store.get_connection(user_id, config.name)
            if row is None:
                return None
            now = self.clock()
            data = self._open(row)
            fresh = not self._expiring(row, now) and data["access_token"] != rejected
            if fresh or (waited and row.renewing_until <= now and not _expired(row, now)):
                return str(data["access_token"])  # valid, or just renewed by the replica waited for
            if not isinstance(data.get("refresh_token"), str):
                if _expired(row, now):  # nothing to renew it with: the person connects again
                    await self.store.delete_connection(user_id, config.name, version=row.version)
                    return None
                return str(data["access_token"])
            if row.renewing_until > now:  # another replica is renewing: its answer is ours
                waited = True
                await asyncio.sleep(POLL_SECONDS)
                continue
            claimed = await self.store.swap_connection(replace(row, renewing_until=now + CLAIM_SECONDS), row.version)
            if claimed is not None:
                return await self._renew(claimed, data, config)
        raise OutboundAuthError(f"the renewal of the {config.name} connection did not finish in time")

    async def _renew(self, claimed: StoredConnection, data: dict[str, Any], config: ProviderConfig) -> str | None:
        """Spend the refresh token; the claim is replaced by the new tokens, or released on a
        passing failure, or the row removed when the grant ended at the provider."""
        old = Tokens(data["access_token"], claimed.issuer, claimed.scopes, data["refresh_token"], claimed.expires_at)
        try:
            endpoint = await self.remote.endpoint(config)
            creds = await self.remote.credentials(config, endpoint.server)
            self.refreshes += 1
            fresh = await authorization.refresh(endpoint.server, creds, old, endpoint.resource, self.remote.post_form)
        except OutboundAuthError as exc:
            if exc.error in GRANT_ENDED:
                log.info(
                    "the %s grant of %s has ended (%s): connection removed", config.name, claimed.user_id, exc.error
                )
                await self.store.delete_connection(claimed.user_id, config.name, version=claimed.version)
                return None
            await self.store.swap_connection(replace(claimed, renewing_until=0.0), claimed.version)
            raise
        now = self.clock()
        written = await self.store.swap_connection(
            self._row(claimed.user_id, config.name, fresh, now, claimed), claimed.version
        )
        if written is None:  # our claim lapsed and another replica renewed meanwhile: theirs stands
            latest = await self.store.get_connection(claimed.user_id, config.name)
            return str(self._open(latest)["access_token"]) if latest else None
        return fresh.access_token

    def _expiring(self, row: StoredConnection, now: float) -> bool:
        return row.expires_at is not None and row.expires_at - self.refresh_margin <= now

    # -- rows ------------------------------------------------------------------------------------
    async def save(self, user_id: str, provider: str, tokens: Tokens) -> ConnectionInfo:
        """Store new tokens of (user, provider) (a connect, a reconnect, an exchange)."""
        now = self.clock()
        stored = await self.store.put_connection(self._row(user_id, provider, tokens, now, None))
        return self._info(stored)

    def _row(
        self, user_id: str, provider: str, tokens: Tokens, now: float, old: StoredConnection | None
    ) -> StoredConnection:
        kept = {"access_token": tokens.access_token}
        if tokens.refresh_token is not None:
            kept["refresh_token"] = tokens.refresh_token
        return StoredConnection(
            user_id=user_id,
            provider=provider,
            issuer=tokens.issuer,
            sealed_tokens=seal(self._key, json.dumps(kept).encode(), _aad(user_id, provider)),
            scopes=tokens.scopes,
            expires_at=tokens.expires_at,
            created_at=old.created_at if old else now,
            updated_at=now,
            renewing_until=0.0,
            version=old.version if old else 1,
        )

    def _open(self, row: StoredConnection) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(unseal(self._key, row.sealed_tokens, _aad(row.user_id, row.provider)))
        return data

    def _info(self, row: StoredConnection) -> ConnectionInfo:
        try:
            refreshable = isinstance(self._open(row).get("refresh_token"), str)
        except SealError:
            refreshable = False
        return ConnectionInfo(
            row.user_id,
            row.provider,
            row.issuer,
            row.scopes,
            row.expires_at,
            refreshable,
            row.created_at,
            row.updated_at,
        )

    async def _revoke_remote(self, config: ProviderConfig, data: dict[str, Any]) -> None:
        endpoint = await self.remote.endpoint(config)
        url = endpoint.server.revocation_endpoint
        if url is None:
            return
        creds = await self.remote.credentials(config, endpoint.server)
        for hint in ("refresh_token", "access_token"):  # the refresh token first: it ends the grant
            value = data.get(hint)
            if isinstance(value, str):
                form = {"token": value, "token_type_hint": hint}
                headers = authorization.client_auth(creds, form)
                await self.remote.post_form(url, form, headers, "token revocation")


def _aad(user_id: str, provider: str) -> bytes:
    return f"{user_id}\x00{provider}".encode()


def _expired(row: StoredConnection, now: float) -> bool:
    return row.expires_at is not None and row.expires_at <= now
