"""`UpstreamOAuth`: an OAuth-protected upstream MCP server, reached as each person with their own
token there (`upstream_oauth`, docs/protected-upstream.md).

The upstream answers 401 with RFC 9728 protected resource metadata: to the gateway it is a
connection provider of the MCP kind (`authgate.connections`, named `UPSTREAM_PROVIDER`) whose
discovery, registration and per-person tokens the broker keeps, every URL it advertises fetched
through the outbound client's SSRF guard. The client's own token is never sent (token
passthrough, MCP authorization §Access Token Privilege Restriction), nor anyone else's: the
upstream token is looked up by the authgate user the guard verified, and nothing else.

| the request                                   | what the gateway does                                  |
| --------------------------------------------- | ------------------------------------------------------ |
| a person's, connected                         | `Authorization: Bearer <their token there>`            |
| a person's, not connected (or revoked)        | sent without; the upstream's 401 names the scopes: the |
|                                               | connect link for them (`ConnectionNeeded`)             |
| the upstream answers 401 to a person's token  | the broker renews it, the request goes once more; no   |
|                                               | renewal (or refused again): connection dropped, link   |
| 403 `insufficient_scope`                      | a connect link for the union of the scopes held and    |
|                                               | challenged (step-up); the client retries after it      |
| 403 for scopes the connection already holds   | 403 `upstream_insufficient_scope`: asking would loop   |
| a machine client's (no person signed in)      | 403 `upstream_needs_a_person` on the upstream's 401    |
| the remote's metadata refused, AS unreachable | 502 `upstream_oauth_failed`, the reason in the message |
| a due renewal the AS cannot make now          | 503 `upstream_oauth_unavailable`, Retry-After: retryable |

A request goes again at most once, and only after a 401, which the upstream answered without
acting on it. `auto` (the default while no static credential is set): a probe at start (an
empty POST, no credential) that gets a 401 with a Bearer challenge makes the upstream
protected, any other answer not; without an answer at start, the first 401 with a Bearer
challenge to a request sent without credentials decides.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
from starlette.types import Scope
from yarl import URL

from authgate.connections.elicitation import SIGNAL_CODE, SIGNAL_KEY
from authgate.connections.upstream import UPSTREAM_PROVIDER
from authgate.errors import ConnectionRequired
from authgate.gateway.errors import GatewayError, JsonRpcId, UpstreamError
from authgate.gateway.http.upstream import Upstream
from authgate.guard.identity import CONNECTION_BROKER_KEY, CONNECTION_PENDING_KEY, SCOPE_KEY, Identity
from authgate.outbound.challenge import Challenge, parse_challenge
from authgate.outbound.errors import OutboundAuthError
from authgate.www_authenticate import find_challenge

if TYPE_CHECKING:
    from authgate.connections.broker import ConnectionBroker

__all__ = [
    "UPSTREAM_PROVIDER",
    "ConnectionNeeded",
    "UpstreamAuthFailed",
    "UpstreamAuthUnavailable",
    "UpstreamNeedsAPerson",
    "UpstreamOAuth",
    "UpstreamScopeRefused",
]

log = logging.getLogger("authgate.gateway")

Mode = Literal["off", "auto", "on"]


class UpstreamNeedsAPerson(GatewayError):
    """A machine client (client_credentials, a workload): the upstream wants a person's own
    account there, and nobody signed in to connect one."""

    status = 403
    code = -32603

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": "upstream_needs_a_person"}


class UpstreamScopeRefused(UpstreamError):
    """The upstream refuses a token that holds every scope it challenged for: asking the person
    again would only send them in a loop."""

    status = 403
    reason = "upstream_insufficient_scope"


class ConnectionNeeded(GatewayError):
    """The person must connect (again, or with more scopes): `required` holds the link. Sent as
    the one connection signal (JSON-RPC -32012, connections/elicitation.py) with HTTP 200, the
    ConnectionRequired left in the scope for the elicitation layer (server/elicitations.py),
    which turns it into the URL elicitation of the client's revision or a tool error; without
    that layer the client reads the link in the error's message and `data.url`."""

    status = 200
    code = SIGNAL_CODE

    def __init__(self, required: ConnectionRequired, *, request_id: JsonRpcId = None) -> None:
        super().__init__(str(required), request_id=request_id)
        self.required = required

    def data(self) -> dict[str, Any] | None:
        asked = {"provider": self.required.provider, "scopes": list(self.required.scopes)}
        return {SIGNAL_KEY: asked, "source": "authgate", "reason": "connection_required", "url": self.required.url}


class UpstreamAuthFailed(UpstreamError):
    """authgate could not obtain or renew the person's token at the upstream's authorization
    server: its metadata refused (a PRM naming another resource, an issuer that does not match,
    an address authgate may not fetch), or the AS unreachable. The refusal's reason is the message."""

    reason = "upstream_oauth_failed"


class UpstreamAuthUnavailable(UpstreamAuthFailed):
    """The person's token is due for renewal and the upstream's AS cannot renew it now
    (unreachable, 5xx, another error than a grant ended): retryable."""

    status = 503
    reason = "upstream_oauth_unavailable"

    def data(self) -> dict[str, Any] | None:
        return {"source": "authgate", "reason": self.reason, "retryable": True}

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"5")]


class UpstreamOAuth:
    """Per-person upstream credentials; `mode` off makes every method a no-op."""

    def __init__(self, mode: Mode = "off", *, provider: str = UPSTREAM_PROVIDER, other_providers: bool = False) -> None:
        self.mode: Mode = mode
        self.provider = provider
        self.protected: bool | None = {"off": False, "on": True, "auto": None}[mode]
        self.other_providers = other_providers  # connection_providers configured: tools may need them

    @property
    def needs_broker(self) -> bool:
        """The broker (and the elicitation layer it turns on) for each request: not for a plain
        upstream, found so by the probe, without other providers."""
        return self.other_providers or self.protected is not False

    # -- start ------------------------------------------------------------------------------

    async def probe(self, upstream: Upstream) -> None:
        """`auto`: ask the upstream once, without credentials, whether it wants OAuth. Any answer
        decides (a 401 with a Bearer challenge: protected; else not); none leaves it open."""
        if self.protected is not None:
            return
        quick = aiohttp.ClientTimeout(total=upstream.connect_timeout + 5.0, sock_connect=upstream.connect_timeout)
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        # a connection of its own, closed after: the pool's connections are the requests' (upstream.py)
        connector = aiohttp.TCPConnector(force_close=True)
        try:
            async with aiohttp.ClientSession(
                connector=connector, timeout=quick, cookie_jar=aiohttp.DummyCookieJar()
            ) as http:
                async with http.post(upstream.url, data=b"{}", headers=headers, allow_redirects=False) as response:
                    self.protected = _wants_oauth(response)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info(
                "upstream_oauth auto: no answer from %s at start (%s); its first 401 decides",
                upstream.shown,
                type(exc).__name__,
            )
            return
        if self.protected:
            log.info("the upstream asks for OAuth (401, Bearer challenge): each person connects their own account")

    async def ready(self, upstream: Upstream, static: list[tuple[str, str]]) -> tuple[bool, str]:
        """/health/ready: a protected upstream's 401 to a request without a person's token is
        its normal answer."""
        return await upstream.check(static, unauthorized_is_up=self.protected is True)

    # -- per request ------------------------------------------------------------------------

    async def header(self, scope: Scope, request_id: JsonRpcId) -> list[tuple[str, str]]:
        """`Authorization` with the person's token there, when they are connected. Without one
        the request goes without: the upstream's 401 names the scopes to connect with."""
        if self.protected is not True:
            return []
        user_id = _person(scope)
        if user_id is None:
            return []
        token = await self._broker_call(_broker(scope).token(user_id, self.provider), request_id, renewal=True)
        return [("Authorization", f"Bearer {token}")] if token else []

    async def send(
        self,
        upstream: Upstream,
        scope: Scope,
        wire: tuple[str, URL, list[tuple[str, str]], bytes | None],
        request_id: JsonRpcId,
        *,
        replayable: bool,
    ) -> aiohttp.ClientResponse:
        """Send; a protected upstream's 401 or 403: renew and send once more, or ask the person."""
        response = await upstream.send(*wire, replayable=replayable)
        if self.protected is False or response.status not in (401, 403):
            return response
        sent = _bearer(wire[2])
        if self.protected is None and sent is None and response.status == 401:
            self.protected = _wants_oauth(response)  # auto, nothing learnt at start: this 401 decides
        if self.protected is not True:
            return response  # not OAuth: a 401 is authgate's own credential refused (proxy.py)
        challenge = parse_challenge(response.headers.getall("www-authenticate", []))
        retry = await self._after(scope, response.status, challenge, sent, request_id)
        if retry is None:
            return response  # a 403 of the upstream's own: relayed
        response.close()
        method, url, headers, body = wire
        again = [(k, v) for k, v in headers if k.lower() != "authorization"] + [("Authorization", f"Bearer {retry}")]
        response = await upstream.send(method, url, again, body, replayable=replayable)
        if response.status == 401:  # the renewed token refused too: the person connects again
            response.close()
            challenge = parse_challenge(response.headers.getall("www-authenticate", []))
            await self._ask(scope, challenge.scope, request_id, dropped=True)
        return response

    async def _after(
        self, scope: Scope, status: int, challenge: Challenge, sent: str | None, request_id: JsonRpcId
    ) -> str | None:
        """The token to send once more, or None to relay the answer; else raises the connect link."""
        user_id = _person(scope)
        if user_id is None:
            raise UpstreamNeedsAPerson(_NO_PERSON, request_id=request_id)
        if status == 401:
            if sent is not None:  # refused: renewed (by the broker, or another request meanwhile)?
                broker = _broker(scope)
                renewed = await self._broker_call(broker.renew(user_id, self.provider, sent), request_id, renewal=True)
                if renewed is not None and renewed != sent:
                    return renewed
            return await self._ask(scope, challenge.scope, request_id, dropped=sent is not None)
        if challenge.error != "insufficient_scope":
            return None
        # MCP authorization §Scope Challenge Handling: a new consent for the union of the scopes
        # held and challenged. The connection holding them all already: asking again would loop.
        await self._ask(scope, challenge.scope, request_id, dropped=False)
        raise UpstreamScopeRefused(
            "authgate: the upstream MCP server refuses the connection's token although it holds the scopes it "
            f"asks for ({' '.join(challenge.scope)[:200] or 'none named'}); connecting again would not help",
            request_id=request_id,
        )

    async def _ask(self, scope: Scope, scopes: tuple[str, ...], request_id: JsonRpcId, *, dropped: bool) -> str:
        """The broker's connect link for `scopes` (ConnectionNeeded); returns only when the person
        holds them already. `dropped`: the token was refused and not renewed, so it goes first."""
        user_id, identity = _person(scope), scope.get(SCOPE_KEY)
        if user_id is None or not isinstance(identity, Identity):
            raise UpstreamNeedsAPerson(_NO_PERSON, request_id=request_id)
        broker = _broker(scope)
        if dropped:
            await self._broker_call(broker.revoke(user_id, self.provider), request_id)
        # the remote's metadata checked now (RFC 9728 §3.3, RFC 8414 §3.3, the SSRF guard): a
        # refusal is this answer, not a connect page that fails later
        await self._broker_call(broker.remote.endpoint(broker.providers[self.provider]), request_id)
        try:
            return await self._broker_call(
                broker.require(user_id, identity.client_id, self.provider, scopes), request_id
            )
        except ConnectionRequired as required:
            pending = scope.get(CONNECTION_PENDING_KEY)
            if isinstance(pending, dict):  # the elicitation layer asks with this link (no second one)
                pending[required.provider] = required
            raise ConnectionNeeded(required, request_id=request_id) from None

    async def _broker_call(self, call: Awaitable[T], request_id: JsonRpcId, *, renewal: bool = False) -> T:
        """`renewal`: a refresh the AS could not make now (a grant that ended is None, not this)."""
        try:
            return await call
        except OutboundAuthError as exc:  # the remote's metadata refused, or its AS unreachable (logged: proxy.py)
            failed = UpstreamAuthUnavailable if renewal else UpstreamAuthFailed
            raise failed(f"authgate: no token for the upstream MCP server: {exc}", request_id=request_id) from None


T = TypeVar("T")

_NO_PERSON = (
    "authgate: the upstream MCP server needs each person's own account there, connected through authgate's "
    "connect page; a machine client (client_credentials, a workload) has no person to connect it"
)


def _wants_oauth(response: aiohttp.ClientResponse) -> bool:
    """A 401 with a Bearer challenge (RFC 6750 §3; RFC 9728 §5.1 adds resource_metadata)."""
    return (
        response.status == 401 and find_challenge(response.headers.getall("www-authenticate", []), "bearer") is not None
    )


def _person(scope: Scope) -> str | None:
    """The authgate user behind the token, if a person: only a grant someone signed in for
    carries `gid` (oauth/access_tokens.py); client_credentials and workload tokens do not."""
    identity = scope.get(SCOPE_KEY)
    if not isinstance(identity, Identity) or not isinstance(identity.claims.get("gid"), str):
        return None
    return identity.subject


def _broker(scope: Scope) -> ConnectionBroker:
    broker: ConnectionBroker | None = scope.get(CONNECTION_BROKER_KEY)
    if broker is None:  # AuthgateApp builds one whenever upstream_oauth is not off (settings.py)
        raise RuntimeError("upstream_oauth needs authgate's connection broker in the scope")
    return broker


def _bearer(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == "authorization" and value[:7].lower() == "bearer ":
            return value[7:]
    return None
