"""The caller's upstream IdP access token, for the app behind authgate (issue 15): what
`authgate.upstream_token(ctx)` returns in library mode, and what the HTTP gateway sends in
`upstream_token_header`. Never the token the MCP client presented (that one is for authgate:
MCP authorization §Token Passthrough); this is the IdP's own token for the person, for the
upstream API (GitHub, Google, Graph, any OIDC userinfo), renewed like `UpstreamGrantCheck`:

| the stored upstream tokens               | upstream answer    | the caller gets                          |
| ---------------------------------------- | ------------------ | ---------------------------------------- |
| none (not signed in upstream, a machine) | (no call)          | NoUpstreamToken                          |
| valid beyond REFRESH_MARGIN              | (no call)          | the access token                         |
| expiring, a refresh token held           | new tokens         | the new access token (sealed again)      |
|                                          | invalid_grant      | UpstreamGrantEnded; its grant revoked    |
|                                          | down, 5xx, 429     | UpstreamTokenUnavailable (retry_after)   |
|                                          | another OAuth error| UpstreamTokenUnavailable; nothing revoked|
| expired, no refresh token                | (no call)          | NoUpstreamToken                          |
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from authgate.errors import NoUpstreamToken, UpstreamGrantEnded, UpstreamTokenUnavailable
from authgate.guard.identity import Identity
from authgate.idp.proxy.grant_check import GRANT_ENDED, RETRY_AFTER
from authgate.idp.proxy.upstream_idp import TokenEndpointUnavailable, TokenRequestRefused
from authgate.idp.proxy.vault import Refresher, UpstreamVault, expired
from authgate.oauth.sealing import SealError
from authgate.store.protocols import GrantStore

__all__ = ["UpstreamAccess"]

log = logging.getLogger("authgate.proxy")


class UpstreamAccess:
    """`await access.token(identity)`: the caller's live upstream access token, or a typed
    `UpstreamTokenError` saying why not (never holding a token)."""

    def __init__(
        self, vault: UpstreamVault, client: Refresher, grants: GrantStore, clock: Callable[[], float], name: str
    ) -> None:
        self.vault = vault
        self.client = client
        self.grants = grants
        self.clock = clock
        self.name = name

    async def token(self, identity: Identity) -> str:
        where = f"the identity provider ({self.name})"
        user_id = identity.subject
        try:
            data = await self.vault.fresh(user_id, self.client)
        except SealError:
            log.warning("the stored %s tokens of %s do not open (was secret_key changed?)", self.name, user_id)
            raise NoUpstreamToken(f"the sign-in at {where} can no longer be read; sign in again") from None
        except TokenRequestRefused as exc:
            if exc.error in GRANT_ENDED:
                await self._end_grant(identity, exc.error)
                raise UpstreamGrantEnded(
                    f"the sign-in at {where} has ended (revoked or expired there); sign in again"
                ) from None
            log.error("%s refused authgate's own refresh request for %s: %s", self.name, user_id, exc)
            raise UpstreamTokenUnavailable(
                f"authgate could not renew the sign-in at {where} ({exc.error or 'refused'}); "
                "the operator must check idp_client_id / idp_client_secret",
                retry_after=RETRY_AFTER,
            ) from None
        except TokenEndpointUnavailable as exc:
            log.warning("cannot renew the %s token of %s: %s", self.name, user_id, exc)
            raise UpstreamTokenUnavailable(
                f"{where} cannot be reached to renew the token; retry later", retry_after=RETRY_AFTER
            ) from None
        if data is None or not isinstance(data.get("access_token"), str):
            raise NoUpstreamToken(
                f"there is no token from {where} for this caller (a machine client, or a sign-in elsewhere)"
            )
        if expired(data, self.clock()):
            raise NoUpstreamToken(
                f"the token from {where} has expired and {self.name} gave no refresh token; sign in again"
            )
        return str(data["access_token"])

    async def _end_grant(self, identity: Identity, error: str | None) -> None:
        """As the refresh check does (oauth/grants.py): the authgate grant this caller's token
        belongs to ends with the upstream one, so its next refresh sends the person to sign in."""
        log.info("the %s grant of %s has ended (%s): its authgate grant is revoked", self.name, identity.subject, error)
        grant_id = identity.claims.get("gid")
        if isinstance(grant_id, str):
            await self.grants.revoke_family(
                grant_id, f"the sign-in at the identity provider ({self.name}) has ended", self.clock()
            )
