"""Connect links and the authorization they start: the connect page's core (framework-free).

1. `make`: `broker.require` stores a link (an unguessable `elicitation_id`, 128 bits) for one
   user and MCP client, a provider and scopes, valid `link_ttl` seconds.
2. `begin`: the page opened by that same user (the authgate session's; anyone else: 403)
   starts an authorization request at the provider: PKCE S256, a fresh `state`, `resource`
   (`authgate.outbound.authorization.begin`). The link row keeps SHA-256(state), SHA-256 of
   the browser session that opened it, and the pending request sealed (its verifier).
   Opening the link again starts anew: the earlier `state` then fails.
3. `complete`: the callback's `state` takes the link (single use on every replica), the
   session must be the one that opened it (a callback replayed into another browser fails),
   `iss` is checked (RFC 9207) and the code redeemed; the connection is stored sealed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from authgate.connections.errors import ConnectLinkError
from authgate.connections.providers import ConnectionInfo, ProviderConfig
from authgate.connections.remote import Endpoint
from authgate.oauth.sealing import SealError, seal, unseal
from authgate.outbound import authorization
from authgate.outbound.authorization import Pending
from authgate.store.models import ConnectRequest

if TYPE_CHECKING:
    from authgate.connections.broker import ConnectionBroker

MAX_QUERY = 8192  # a callback's query string
ID_BYTES = 16
MAX_SCOPES = 50  # a link's scopes: a tool or an upstream's signal names them, so bounded here
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 §3.3 scope-token


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def valid_id(elicitation_id: str) -> bool:
    return 16 <= len(elicitation_id) <= 64 and all(c.isalnum() or c in "-_" for c in elicitation_id)


async def make(broker: ConnectionBroker, user_id: str, client_id: str, provider: str, scopes: tuple[str, ...]) -> str:
    scopes = tuple(s for s in scopes if _SCOPE.fullmatch(s))[:MAX_SCOPES]  # what no AS could take: dropped
    now = broker.clock()
    link = secrets.token_urlsafe(ID_BYTES)
    await broker.store.add_connect_request(
        ConnectRequest(link, user_id, client_id[:2048], provider, scopes, now, now + broker.link_ttl)
    )
    return link


async def pending_link(broker: ConnectionBroker, elicitation_id: str) -> ConnectRequest:
    """The link, usable now; ConnectLinkError(404) when unknown, expired or completed."""
    request = await broker.store.get_connect_request(elicitation_id) if valid_id(elicitation_id) else None
    if request is None or request.expires_at <= broker.clock() or request.provider not in broker.providers:
        raise ConnectLinkError("this connect link is unknown or has expired", status=404)
    if request.completed_at is not None:
        raise ConnectLinkError("this connect link was already used", status=404)
    return request


def scopes_for(config: ProviderConfig, endpoint: Endpoint, asked: tuple[str, ...]) -> tuple[str, ...]:
    """The link's scopes, else the PRM's (mcp kind); `offline_access` where the AS lists it
    (MCP 2026-07-28, SEP-2207), so the connection outlives its first access token."""
    scopes = asked or endpoint.scopes_supported or config.scopes
    if scopes and "offline_access" in (endpoint.server.scopes_supported or ()) and "offline_access" not in scopes:
        scopes = (*scopes, "offline_access")
    return tuple(scopes)


async def begin(broker: ConnectionBroker, elicitation_id: str, user_id: str, session: str) -> str:
    request = await pending_link(broker, elicitation_id)
    if not hmac.compare_digest(request.user_id.encode(), user_id.encode()):
        raise ConnectLinkError("this connect link was made for another person", status=403)
    config = broker.providers[request.provider]
    endpoint = await broker.remote.endpoint(config)
    creds = await broker.remote.credentials(config, endpoint.server)
    scopes = scopes_for(config, endpoint, request.scopes)
    pending = authorization.begin(endpoint.server, creds, broker.redirect_uri, endpoint.resource, scopes)
    sealed = seal(broker._pending_key, json.dumps(asdict(pending)).encode(), elicitation_id.encode())
    if not await broker.store.open_connect_request(elicitation_id, _sha256(pending.state), _sha256(session), sealed):
        raise ConnectLinkError("this connect link was already used", status=404)
    return pending.url


async def complete(broker: ConnectionBroker, callback_query: str, session: str) -> ConnectionInfo:
    if len(callback_query) > MAX_QUERY:
        raise ConnectLinkError("the provider's answer is too long")
    query = {k: v[0] for k, v in parse_qs(callback_query, keep_blank_values=True).items() if v}
    state = query.get("state", "")
    if not state or len(state) > 512:
        raise ConnectLinkError("the provider's answer has no state: start again from your app")
    request = await broker.store.take_connect_request(_sha256(state), broker.clock())
    if request is None or request.sealed_pending is None:
        raise ConnectLinkError("this sign-in is unknown, expired or already used: start again from your app")
    if not hmac.compare_digest((request.session_hash or "").encode(), _sha256(session).encode()):
        raise ConnectLinkError("this sign-in was started in another browser session", status=403)
    try:
        raw = json.loads(unseal(broker._pending_key, request.sealed_pending, request.elicitation_id.encode()))
        pending = Pending(**{**raw, "scopes": tuple(raw.get("scopes") or ())})
    except (SealError, TypeError, ValueError):
        raise ConnectLinkError("this sign-in cannot be read: start again from your app") from None
    config = broker.providers.get(request.provider)
    if config is None:
        raise ConnectLinkError("this provider is no longer configured", status=404)
    # state again (constant time), iss (RFC 9207), error, code: outbound.authorization
    code = authorization.code_from(pending, f"{broker.redirect_uri}?{callback_query}")
    endpoint = await broker.remote.endpoint(config)
    if endpoint.server.issuer != pending.issuer:
        broker.remote.forget(config)
        raise ConnectLinkError("the provider's authorization server changed meanwhile: start again")
    creds = await broker.remote.credentials(config, endpoint.server)
    tokens = await authorization.redeem(endpoint.server, creds, pending, code, broker.remote.post_form)
    return await broker.save(request.user_id, request.provider, tokens)
