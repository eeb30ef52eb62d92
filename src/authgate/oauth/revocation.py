"""Token revocation (RFC 7009). Revoking either token of a grant revokes the whole grant."""

from __future__ import annotations

from authgate.errors import InvalidRequest, OAuthError
from authgate.oauth import access_tokens
from authgate.oauth.authority import Authority
from authgate.oauth.clients import authenticate
from authgate.oauth.opaque import digest


async def revoke(auth: Authority, form: dict[str, str], authorization: str | None) -> None:
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    client = await authenticate(auth, form, authorization)
    now = auth.clock()
    family_id: str | None = None
    record = await auth.store.get_refresh_token(digest(token))
    if record is not None:
        family_id = record.family_id
    elif token.count(".") == 2:
        try:
            claims = await access_tokens.verify(
                token, auth.keys, issuer=auth.issuer, audience=auth.resources[0], now=now
            )
        except OAuthError:
            return  # RFC 7009 §2.2: invalid tokens need no error
        if claims.client_id == client.client_id:
            family_id = claims.grant_id
    if family_id is None:
        return
    family = await auth.store.get_family(family_id)
    # RFC 7009 §2.1: only the client the token was issued to may revoke it
    if family is not None and family.client_id == client.client_id:
        await auth.store.revoke_family(family_id, "revoked by client", now)
