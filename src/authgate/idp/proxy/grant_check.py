"""Proxy mode's `RefreshCheck` (oauth/authority.py): before authgate rotates the refresh token
of a person who signed in upstream, the upstream grant behind it must still stand.

| the stored upstream tokens                         | upstream answer      | the authgate refresh        |
| -------------------------------------------------- | -------------------- | --------------------------- |
| access token valid beyond REFRESH_MARGIN, or none  | (no call)            | issued                      |
| expiring, a refresh token held                     | new tokens           | issued; new tokens sealed   |
|                                                    | invalid_grant        | invalid_grant; family revoked |
|                                                    | down, 5xx, 429       | temporarily_unavailable (503) |
|                                                    | another OAuth error  | server_error; nothing revoked |
| expired, no refresh token (Google without offline) | (no call)            | issued (logged at DEBUG)    |

`temporarily_unavailable` is the answer authgate already gives for transient failures (a full
client table at /register, an unreachable JWKS or introspection endpoint): RFC 6749 defines it
for the authorization endpoint only, and the token endpoint has no standard code for "try
again", so 503 with a description saying the refresh token stays valid is the honest answer.
"""

from __future__ import annotations

import logging

from authgate.errors import InvalidGrant, ServerError, TemporarilyUnavailable
from authgate.idp.proxy.upstream_idp import TokenEndpointUnavailable, TokenRequestRefused
from authgate.idp.proxy.vault import Refresher, UpstreamVault
from authgate.oauth.sealing import SealError

# RFC 6749 §5.2 invalid_grant; GitHub (apps with expiring user tokens) says bad_refresh_token
GRANT_ENDED = frozenset({"invalid_grant", "bad_refresh_token"})
RETRY_AFTER = 30
log = logging.getLogger("authgate.proxy")


class UpstreamGrantCheck:
    def __init__(self, vault: UpstreamVault, client: Refresher, upstream_name: str) -> None:
        self.vault = vault
        self.client = client
        self.upstream_name = upstream_name

    async def __call__(self, user_id: str) -> None:
        name = self.upstream_name
        where = f"the identity provider ({name})"
        try:
            await self.vault.fresh(user_id, self.client)
        except SealError:
            log.warning("the stored %s tokens of %s do not open (was secret_key changed?)", name, user_id)
            raise InvalidGrant(f"the sign-in at {where} can no longer be checked; sign in again") from None
        except TokenRequestRefused as exc:
            if exc.error in GRANT_ENDED:
                log.info("the %s grant of %s has ended (%s): its authgate grant is revoked", name, user_id, exc.error)
                raise InvalidGrant(
                    f"the sign-in at {where} has ended (revoked or expired there); sign in again"
                ) from None
            log.error("%s refused authgate's own refresh request for %s: %s", name, user_id, exc)
            raise ServerError(
                f"authgate could not renew the sign-in at {where} "
                f"({exc.error or 'refused'}); the operator must check idp_client_id / "
                "idp_client_secret"
            ) from None
        except TokenEndpointUnavailable as exc:
            log.warning("cannot renew the %s sign-in of %s: %s", name, user_id, exc)
            raise TemporarilyUnavailable(
                f"{where} cannot be reached to renew the sign-in; retry later (this refresh token stays valid)",
                retry_after=RETRY_AFTER,
            ) from None
